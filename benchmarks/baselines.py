"""The two baselines, simulated here only: Miloco 1.x's reference pipeline, and a naive one.

Both run inside the same Home Assistant instance as plain asyncio tasks (one per camera), fed by the same
camera entities through `camera.async_get_image`, doing their image work in Home Assistant's executor and
sending their requests through the integration's own OpenAI-compatible client on Home Assistant's HTTP
session: only the pipeline differs from ours, not the plumbing.

- reference: a frame every 500 ms; every 2 s the latest 6 frames (3 s), oldest first; a difference-hash
  gate (16×16) on the first and last frame of the window, Hamming distance > 5 meaning "changed", else no
  model call and every rule counts as false; each frame centre-cropped to a square, 448×448 for the first
  and last, 224×224 for the four between; ONE request per rule, all of a check's requests at once.
- naive: the same frames and cadence, full resolution (the camera's 1280×720 JPEGs as they are), no gate,
  one request per rule.

Rules fire on a false→true edge, at most once per 10 s per rule (as Miloco does and as our event-mode rules
do by default). Checks never wait for the previous one: each starts on time (a fixed interval).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
import contextlib
from dataclasses import dataclass
import io
import json
import math
import time
from typing import Final

from homeassistant.components import camera
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from PIL import Image

from benchmarks.meter import Meter, MeteredBackend
from custom_components.miloco.engine.backends.base import VisionBackend, VisionRequest
from custom_components.miloco.engine.backends.errors import BackendError

FRAME_PERIOD_S: Final = 0.5
WINDOW_FRAMES: Final = 6
FRAMES_PER_CHECK: Final = 4  # a check every 2 s
HASH_SIZE: Final = 16
HAMMING_CHANGED: Final = 5
END_SIDE: Final = 448
MIDDLE_SIDE: Final = 224
# Miloco's camera sub-stream: the reference hashes frames at this size.
SUBSTREAM: Final = (640, 360)
COOLDOWN_S: Final = 10.0
LEAD_IN: Final = "Image sequence is as follows:"
SYSTEM_PROMPT: Final = (
    "You are a smart camera assistant. You receive a sequence of images from a home camera, "
    "2 frames per second, 6 frames in total, oldest first. Judge whether the images meet the condition. "
    'Reply with JSON only: {"result": "yes"} or {"result": "no"}.'
)
BASELINE_EVENT: Final = "miloco_bench_baseline"

type EventSink = Callable[[str, int, float], None]


def dhash(jpeg: bytes, size: int = HASH_SIZE) -> int:
    """Return the difference hash of a frame (as imagehash.dhash): size×size bits, right brighter than left."""
    image = Image.open(io.BytesIO(jpeg))
    image.draft("L", SUBSTREAM)
    gray = image.convert("L").resize((size + 1, size), Image.Resampling.LANCZOS)
    pixels = gray.tobytes()
    bits = 0
    for row in range(size):
        base = row * (size + 1)
        for col in range(size):
            bits = (bits << 1) | (pixels[base + col + 1] > pixels[base + col])
    return bits


def changed(first: bytes, last: bytes) -> bool:
    """Return the reference gate's verdict on the first and last frame of a window."""
    return (dhash(first) ^ dhash(last)).bit_count() > HAMMING_CHANGED


def center_crop(jpeg: bytes, side: int) -> bytes:
    """Return the frame centre-cropped to a square and scaled to side×side, as JPEG."""
    image = Image.open(io.BytesIO(jpeg))
    image.draft("RGB", (side, side))
    rgb = image.convert("RGB")
    width, height = rgb.size
    square = min(width, height)
    left, top = (width - square) // 2, (height - square) // 2
    cropped = rgb.crop((left, top, left + square, top + square)).resize(
        (side, side), Image.Resampling.BICUBIC
    )
    buffer = io.BytesIO()
    cropped.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def reference_prepare(jpegs: list[bytes]) -> list[bytes] | None:
    """Return the reference's cropped window, or None when its gate finds no change."""
    if not changed(jpegs[0], jpegs[-1]):
        return None
    last = len(jpegs) - 1
    return [center_crop(data, END_SIDE if i in (0, last) else MIDDLE_SIDE) for i, data in enumerate(jpegs)]


@dataclass(slots=True)
class EdgeCooldown:
    """A rule's trigger: fires on a false→true edge, at most once per cooldown."""

    cooldown_s: float = COOLDOWN_S
    value: bool = False
    last_fired: float = -math.inf

    def update(self, value: bool, now: float) -> bool:
        """Take a verdict; return True when the rule fires."""
        fired = value and not self.value and now - self.last_fired >= self.cooldown_s
        if fired:
            self.last_fired = now
        self.value = value
        return fired


@dataclass(slots=True)
class BaselineStats:
    """Counters of one baseline camera."""

    evaluations: int = 0
    gate_skips: int = 0
    failures: int = 0


class BaselineCamera:
    """One camera watched by a baseline pipeline ("reference" or "naive")."""

    def __init__(
        self,
        hass: HomeAssistant,
        policy: str,
        entity_id: str,
        *,
        conditions: list[str],
        backend: VisionBackend,
        meter: Meter,
    ) -> None:
        """Watch `entity_id` for the conditions (rule 1, 2, … in order)."""
        if policy not in ("reference", "naive"):
            raise ValueError(f"unknown baseline {policy!r}")
        self.hass = hass
        self.policy = policy
        self.entity_id = entity_id
        self.conditions = conditions
        self.stats = BaselineStats()
        self._backend = MeteredBackend(backend, meter, entity_id)
        self._meter = meter
        self._triggers = [EdgeCooldown() for _ in conditions]
        self._task: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start capturing."""
        self._task = self.hass.async_create_background_task(
            self._run(), f"bench {self.policy} {self.entity_id}"
        )

    async def stop(self) -> None:
        """Stop capturing and abandon the checks in flight."""
        tasks = [task for task in (self._task, *self._checks) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        window: deque[bytes] = deque(maxlen=WINDOW_FRAMES)
        next_frame = time.monotonic()
        since_check = FRAMES_PER_CHECK
        while True:
            try:
                image = await camera.async_get_image(self.hass, self.entity_id, timeout=10)
            except HomeAssistantError:
                self.stats.failures += 1
            else:
                window.append(image.content)
                since_check += 1
                if len(window) == WINDOW_FRAMES and since_check >= FRAMES_PER_CHECK:
                    since_check = 0
                    task = self.hass.async_create_background_task(
                        self._check(list(window)), f"bench {self.policy} check {self.entity_id}"
                    )
                    self._checks.add(task)
                    task.add_done_callback(self._checks.discard)
            next_frame += FRAME_PERIOD_S
            delay = next_frame - time.monotonic()
            if delay < 0:
                next_frame, delay = time.monotonic(), 0.0
            await asyncio.sleep(delay)

    async def _check(self, frames: list[bytes]) -> None:
        started = time.monotonic()
        self.stats.evaluations += 1
        if self.policy == "reference":
            prepared = await self.hass.async_add_executor_job(self._prepare, frames)
            if prepared is None:
                # The reference's gate: no change, no model call, and every rule counts as false.
                self.stats.gate_skips += 1
                now = time.monotonic()
                for trigger in self._triggers:
                    trigger.update(False, now)
                return
        else:
            prepared = frames
        check = self._meter.begin_check(self.entity_id)
        check.started = started
        try:
            await asyncio.gather(*(self._ask(index, prepared) for index in range(len(self.conditions))))
        finally:
            self._meter.end_check(check, concurrent=True)

    def _prepare(self, frames: list[bytes]) -> list[bytes] | None:
        """Run the reference's gate and crops (in the executor), timing them."""
        started = time.monotonic()
        prepared = reference_prepare(frames)
        self._meter.record_stage("prepare", time.monotonic() - started)
        return prepared

    async def _ask(self, index: int, frames: list[bytes]) -> None:
        request = VisionRequest(
            system_prompt=SYSTEM_PROMPT,
            lead_in=LEAD_IN,
            frames=tuple(frames),
            question=f"Do the images meet the following condition: {self.conditions[index]}.",
            max_tokens=32,
        )
        try:
            reply, model_s = await self._backend.async_complete_metered(request)
        except BackendError:
            self.stats.failures += 1
            return
        try:
            verdict = str(json.loads(reply.text).get("result", "")).lower() == "yes"
        except (ValueError, AttributeError):
            verdict = False
        if self._triggers[index].update(verdict, time.monotonic()):
            self.hass.bus.async_fire(
                BASELINE_EVENT,
                {
                    "policy": self.policy,
                    "camera_entity_id": self.entity_id,
                    "rule": index + 1,
                    "model_s": model_s,
                },
            )
