"""The per-camera loop that drives the engine from Home Assistant: capture, gate, check, dispatch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, replace
from datetime import datetime
import time
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import STATE_ON
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.util import dt as dt_util

from .camera_config import CameraConfig
from .capture import CaptureError, create_source
from .const import EVENT_MILOCO, FAILURES_BEFORE_UNAVAILABLE, LOGGER, PROMPT_PER_CONDITION
from .devices import async_device_id
from .engine.backends.base import VisionBackend
from .engine.backends.errors import BackendError, BadReply
from .engine.check import ask
from .engine.frames import FrameDecodeError, FramePlan
from .engine.gate import ChangeGate, GateDecision
from .engine.labels import PRESENCE
from .engine.parse import ReplyParseError
from .engine.prompt import (
    CheckSpec,
    Observation,
    RuleSpec,
)
from .engine.rules import EpisodeTracker, HoldState, Transition
from .engine.scheduling import FairLimiter
from .engine.window import Frame, FrameWindow, prepare_capture
from .health import BackendHealth
from .keyframes import KeyFrames
from .listeners import Listeners

type GestureListener = Callable[[str], None]
type CheckListener = Callable[[Observation, float], None]
type RuleProvider = Callable[[], tuple[RuleSpec, ...]]
PRESENCE_KEY = PRESENCE.key


@dataclass(slots=True)
class WatcherStats:
    """Counters shown by the camera's diagnostic sensors."""

    checks: int = 0
    skipped_by_gate: int = 0
    skipped_busy: int = 0
    failures: int = 0
    last_analysis: datetime | None = None
    last_latency_s: float | None = None
    last_image_tokens: int | None = None
    last_reason: str | None = None


class CameraWatcher:
    """Watches one camera: frames in, gestures, activities and presence out."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        subentry_id: str,
        title: str,
        config: CameraConfig,
        *,
        backend: VisionBackend,
        limiter: FairLimiter,
        health: BackendHealth,
        cpu_slots: asyncio.Semaphore,
        phase: float = 0.0,
    ) -> None:
        """Prepare the state machines; nothing runs until async_start().

        `phase` (0 to 1) offsets this camera's frame and check clocks, so that an entry's cameras spread their
        image work over the period instead of all landing on the executor at the same instant.
        """
        self.hass = hass
        self.entry = entry
        self.subentry_id = subentry_id
        self.title = title
        self.config = config
        self.stats = WatcherStats()
        self._backend = backend
        self._limiter = limiter
        self._health = health
        self._cpu_slots = cpu_slots
        self._phase = phase
        self._base_spec = config.check_spec()
        self._rule_provider: RuleProvider = tuple
        # Enough room for the window plus a little slack; the buffer never grows past it.
        self._window = FrameWindow.for_checks_of(config.window_frames)
        self._gate = ChangeGate(config.change_threshold)
        self._source = create_source(hass, config)
        self._decision: GateDecision | None = None
        self._episodes = {
            key: EpisodeTracker(max_gap_s=max(config.window_s, config.check_interval_s * 2))
            for key in config.gestures
        }
        self._holds = {key: HoldState(config.hold_s) for key in config.activities}
        if config.presence:
            self._holds[PRESENCE_KEY] = HoldState(config.hold_s)
        self._listeners: Listeners[()] = Listeners()
        self._gesture_listeners: Listeners[str] = Listeners()
        self._check_listeners: Listeners[Observation, float] = Listeners()
        self._loop_task: asyncio.Task[None] | None = None
        self._check_task: asyncio.Task[None] | None = None
        self._next_check = 0.0
        self._next_skip_count = 0.0
        self._last_check_at: float | None = None
        self._busy_counted = False
        self._camera_failures = 0
        self._model_failures = 0
        # ecosystem hook (issue 14): the camera's key frames, fed with each check's newest frame.
        self.key_frames = KeyFrames(
            hass, entry, config.camera_entity_id, save=config.save_frames, keep=config.saved_frames_max
        )

    @property
    def available(self) -> bool:
        """Return False while the camera or the model keeps failing."""
        return (
            self._camera_failures < FAILURES_BEFORE_UNAVAILABLE
            and self._model_failures < FAILURES_BEFORE_UNAVAILABLE
        )

    @property
    def running(self) -> bool:
        """Return True while the capture loop runs."""
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def buffered_frames(self) -> tuple[int, int]:
        """Return how many frames the window holds, and how many it can hold at most."""
        return len(self._window), self._window.capacity

    def is_on(self, key: str) -> bool:
        """Return whether an activity (or presence, key 'person') is going on."""
        return self._holds[key].is_on

    @callback
    def async_add_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener` whenever states, availability or counters change; return the remover."""
        return self._listeners.add(listener)

    @callback
    def async_add_gesture_listener(self, listener: GestureListener) -> CALLBACK_TYPE:
        """Call `listener(gesture)` once per gesture episode; return the remover."""
        return self._gesture_listeners.add(listener)

    @callback
    def async_add_check_listener(self, listener: CheckListener) -> CALLBACK_TYPE:
        """Call `listener(observation, now)` after every check that ran (rules judge their verdicts there)."""
        return self._check_listeners.add(listener)

    @callback
    def set_rule_provider(self, provider: RuleProvider) -> None:
        """Ask, at every check, which enabled rules this camera judges (a switch changes them at once)."""
        self._rule_provider = provider

    def recent_frames(self) -> list[Frame]:
        """Return the frames the next check would use, oldest first (empty before the first frame)."""
        newest = self._window.newest
        if newest is None:
            return []
        # The window ends at the newest frame, which a stream decoded a little before now.
        return self._window.select(self.config.window_frames, self.config.window_s, newest.timestamp)

    @callback
    def async_start(self) -> None:
        """Start the capture loop as a task the entry owns (it ends when the entry unloads)."""
        self._loop_task = self.entry.async_create_background_task(
            self.hass, self._async_run(), f"miloco watcher {self.config.camera_entity_id}"
        )

    async def async_stop(self) -> None:
        """Stop capturing and abandon any check in flight."""
        for task in (self._loop_task, self._check_task):
            if task is not None and not task.done():
                task.cancel()
        for task in (self._loop_task, self._check_task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._limiter.forget(self.subentry_id)

    async def _async_run(self) -> None:
        """Start the frame source, run the capture loop, and release the source however the loop ends."""
        try:
            await self._source.async_start()
            await self._async_loop()
        finally:
            # Also when Home Assistant stops and cancels this task without unloading the entry.
            await self._source.async_stop()

    async def _async_loop(self) -> None:
        """Capture at the configured rate; start a check whenever one is due and worth it."""
        period = 1.0 / self.config.fps
        next_frame = time.monotonic() + self._phase * period
        self._next_check = time.monotonic() + self._phase * self.config.check_interval_s
        await asyncio.sleep(self._phase * period)
        while True:
            await self._async_capture()
            now = time.monotonic()
            self._maybe_start_check(now)
            self._tick(now)
            next_frame += period
            delay = next_frame - time.monotonic()
            if delay < 0:
                # Capture fell behind (a slow camera): carry on from now rather than burst to catch up.
                next_frame, delay = time.monotonic(), 0.0
            await asyncio.sleep(delay)

    async def _async_capture(self) -> None:
        """Take the source's next frame into the window and let the gate look at it."""
        # A gate decision belongs to its frame: with no new frame (a failure, or a stream between two
        # frames) no check starts on frames that were already judged.
        self._decision = None
        try:
            captured = await self._source.async_next()
            if captured is None:
                # A stream with no new frame since the last one: nothing to add, and nothing failed.
                return
            taken_at, jpeg = captured
            async with self._cpu_slots:
                thumb, prepared = await self.hass.async_add_executor_job(
                    prepare_capture,
                    jpeg,
                    FramePlan(frames=self.config.window_frames, budget=self.config.token_budget),
                )
        except (CaptureError, FrameDecodeError, OSError) as err:
            self._camera_failed(err)
            return
        now = time.monotonic()
        self._window.add(Frame(taken_at, jpeg, thumb, prepared))
        if self.config.motion_entity_id and self.hass.states.is_state(self.config.motion_entity_id, STATE_ON):
            self._gate.force()
        self._decision = self._gate.observe(thumb, now)
        self._camera_ok()

    @callback
    def _maybe_start_check(self, now: float) -> None:
        """Run a check when one is due, the scene changed (or the heartbeat is due) and a slot is free."""
        newest = self._window.newest
        if now < self._next_check or self._decision is None or newest is None:
            return
        if self._check_task is not None:
            self._count_busy()
            return
        heartbeat_due = self.config.heartbeat_s > 0 and (
            self._last_check_at is None or now - self._last_check_at >= self.config.heartbeat_s
        )
        if not (self._decision.changed or heartbeat_due):
            # No change, no news. The check stays due: a change in the very next frame is checked at once
            # instead of an interval later. The skip is counted (and the states refreshed) once per interval.
            if now >= self._next_skip_count:
                self._next_skip_count = now + self.config.check_interval_s
                self.stats.skipped_by_gate += 1
                self._scene_unchanged(now)
            return
        spec = replace(self._base_spec, rules=self._rule_provider())
        if spec.is_empty:
            # Only rules asked for this camera, and all of them are switched off.
            self._next_check = now + self.config.check_interval_s
            return
        if not self._limiter.try_acquire(self.subentry_id, now):
            # Skipped, not queued: the next frame tries again with newer frames.
            self._count_busy()
            return
        self._busy_counted = False
        self._next_check = self._next_skip_count = now + self.config.check_interval_s
        self._last_check_at = now
        frames = self.recent_frames()
        self._check_task = self.entry.async_create_background_task(
            self.hass, self._async_check(spec, frames), f"miloco check {self.config.camera_entity_id}"
        )

    def _count_busy(self) -> None:
        """Count a due check that found the backend busy, once per due check."""
        if not self._busy_counted:
            self._busy_counted = True
            self.stats.skipped_busy += 1
            self._notify()

    async def _async_check(self, spec: CheckSpec, frames: list[Frame]) -> None:
        """Ask the model about the frames and apply its answer."""
        try:
            answer = await ask(
                self._backend,
                spec,
                frames,
                budget=self.config.token_budget,
                per_condition=self.config.prompt_mode == PROMPT_PER_CONDITION,
                cpu_slots=self._cpu_slots,
            )
        except (BackendError, ReplyParseError, FrameDecodeError) as err:
            self._model_failed(err if isinstance(err, BackendError) else BadReply(str(err)))
            return
        finally:
            self._limiter.release(self.subentry_id)
            self._check_task = None
        if frames[-1].thumb is not None:
            self._gate.mark_checked(frames[-1].thumb)
        self.stats.checks += 1
        self.stats.last_analysis = dt_util.utcnow()
        self.stats.last_latency_s = answer.latency_s
        self.stats.last_image_tokens = answer.image_tokens
        self.stats.last_reason = answer.observation.reason
        self._model_ok()
        # ecosystem hook (issue 14): whatever this check fires, its newest frame is the key frame.
        self.key_frames.set_check_frame(frames[-1].jpeg)
        self._apply(answer.observation, time.monotonic())

    @callback
    def _apply(self, observation: Observation, now: float) -> None:
        """Feed a check's answer to the state machines and publish what changed."""
        for key, tracker in self._episodes.items():
            if tracker.update(key in observation.gestures, now):
                self._fire_gesture(key)
        for key, hold in self._holds.items():
            if key == PRESENCE_KEY:
                if observation.person_present is None:
                    continue
                transition = hold.update(observation.person_present, now)
            else:
                transition = hold.update(key in observation.activities, now)
            self._publish_transition(key, transition)
        self._check_listeners(observation, now)
        self._notify()

    @callback
    def _scene_unchanged(self, now: float) -> None:
        """No change, no news: episodes and states stay as the last check left them."""
        for tracker in self._episodes.values():
            tracker.update(False, now, checked=False)
        for key, hold in self._holds.items():
            self._publish_transition(key, hold.refresh(now))
        self._notify()

    @callback
    def _tick(self, now: float) -> None:
        """Let hold times run out."""
        for key, hold in self._holds.items():
            if (transition := hold.tick(now)) is not None:
                self._publish_transition(key, transition)
                self._notify()

    @callback
    def _fire_gesture(self, gesture: str) -> None:
        """Tell the gesture entity and the bus about a new gesture episode."""
        self._gesture_listeners(gesture)
        # ecosystem hook (issue 14): the event says where the frame that showed the gesture is.
        self._fire_bus_event("gesture", gesture=gesture, **self.key_frames.record(gesture))

    @callback
    def _publish_transition(self, key: str, transition: Transition | None) -> None:
        """Put an activity or presence change on the bus."""
        if transition is None:
            return
        if key == PRESENCE_KEY:
            self._fire_bus_event(f"presence_{transition}")
        else:
            self._fire_bus_event(f"activity_{transition}", activity=key)

    @callback
    def _fire_bus_event(self, event_type: str, **data: str) -> None:
        """Fire a miloco_event for YAML automations, naming the device and the camera."""
        self.hass.bus.async_fire(
            EVENT_MILOCO,
            {
                "device_id": async_device_id(self.hass, self.entry.entry_id, self.subentry_id),
                "type": event_type,
                "camera_entity_id": self.config.camera_entity_id,
                **data,
            },
        )

    @callback
    def _camera_failed(self, err: Exception) -> None:
        """Count a failed capture; the camera's entities go unavailable after a few in a row."""
        self._camera_failures += 1
        if self._camera_failures == FAILURES_BEFORE_UNAVAILABLE:
            LOGGER.warning("Camera %s gives no images: %s", self.config.camera_entity_id, err)
            self._notify()

    @callback
    def _camera_ok(self) -> None:
        """Reset the capture failure streak."""
        recovered = self._camera_failures >= FAILURES_BEFORE_UNAVAILABLE
        self._camera_failures = 0
        if recovered:
            LOGGER.info("Camera %s gives images again", self.config.camera_entity_id)
            self._notify()

    @callback
    def _model_failed(self, err: BackendError) -> None:
        """Count a failed check; the entities go unavailable after a few in a row."""
        self.stats.failures += 1
        self._model_failures += 1
        self._health.record_failure(err)
        if self._model_failures == FAILURES_BEFORE_UNAVAILABLE:
            LOGGER.warning(
                "Miloco cannot analyse %s: the model backend fails (%s)",
                self.config.camera_entity_id,
                err.reason,
            )
        self._notify()

    @callback
    def _model_ok(self) -> None:
        """Reset the check failure streak."""
        if self._model_failures >= FAILURES_BEFORE_UNAVAILABLE:
            LOGGER.info("Miloco analyses %s again", self.config.camera_entity_id)
        self._model_failures = 0
        self._health.record_success()

    @callback
    def _notify(self) -> None:
        """Tell the entities to write their state."""
        self._listeners()
