"""Tests of how a check gets its frames: picked when prepared at capture, resized when given raw JPEGs."""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image, ImageDraw

from custom_components.miloco.engine import check, frames, window
from custom_components.miloco.engine.backends.base import BackendStats, VisionReply, VisionRequest
from custom_components.miloco.engine.prompt import CheckSpec

SPEC = CheckSpec(presence=True)
MEDIUM = frames.FramePlan(frames=6, budget=512)


class RecordingBackend:
    """The model at its outermost boundary: records each request and says someone is there."""

    def __init__(self) -> None:
        self.requests: list[VisionRequest] = []

    @property
    def model(self) -> str:
        return "recorder"

    @property
    def max_concurrency(self) -> int:
        return 1

    @property
    def stats(self) -> BackendStats:
        return BackendStats()

    async def async_start(self) -> None:
        return None

    async def async_complete(self, request: VisionRequest) -> VisionReply:
        self.requests.append(request)
        return VisionReply(
            text=json.dumps({"person_present": True, "reason": "a person"}), model="m", latency_s=0.1
        )

    async def async_close(self) -> None:
        return None

    def diagnostics(self) -> dict[str, Any]:
        return {}


def _jpeg(shift: int) -> bytes:
    image = Image.new("RGB", (1280, 720), (120, 110, 100))
    ImageDraw.Draw(image).ellipse((300 + shift, 150, 460 + shift, 400), fill=(230, 190, 160))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _captured(count: int) -> list[window.Frame]:
    result = []
    for index in range(count):
        jpeg = _jpeg(12 * index)
        thumb, prepared = window.prepare_capture(jpeg, MEDIUM)
        result.append(window.Frame(index * 0.5, jpeg, thumb, prepared))
    return result


def _sizes(request: VisionRequest) -> list[tuple[int, int]]:
    return [Image.open(io.BytesIO(data)).size for data in request.frames]


async def test_prepared_frames_are_sent_as_prepared() -> None:
    backend = RecordingBackend()
    captured = _captured(6)
    answer = await check.ask(backend, SPEC, captured, budget=512, per_condition=False)
    (request,) = backend.requests
    assert answer.observation.person_present is True
    assert answer.image_tokens == 506
    # The bytes made when each frame was captured, by identity: the check resized nothing.
    expected = [
        frame.prepared.by_size[frame.prepared.sizes[i]] for i, frame in enumerate(captured) if frame.prepared
    ]
    assert len(request.frames) == len(expected) == 6
    assert all(sent is version.jpeg for sent, version in zip(request.frames, expected, strict=True))
    assert _sizes(request) == [(504, 280), (196, 112), (196, 112), (252, 140), (252, 140), (504, 280)]


async def test_raw_jpegs_and_unfit_frames_are_resized_in_the_check() -> None:
    backend = RecordingBackend()
    captured = _captured(6)
    # Raw JPEGs (the services, the evaluation toolkit) follow the same plan.
    await check.ask(backend, SPEC, [frame.jpeg for frame in captured], budget=512, per_condition=False)
    # Frames prepared for medium detail, asked at high detail (the user just changed it): resized anew.
    await check.ask(backend, SPEC, captured, budget=1024, per_condition=False)
    # Frames captured without preparation.
    bare = [window.Frame(frame.timestamp, frame.jpeg) for frame in captured]
    await check.ask(backend, SPEC, bare, budget=512, per_condition=False)
    raw, high, unprepared = backend.requests
    assert _sizes(raw) == _sizes(unprepared) == [size for size in frames.plan_sizes(16 / 9, 6, 512)]
    assert _sizes(high) == frames.plan_sizes(16 / 9, 6, 1024)
    assert all(sent is not frame.jpeg for sent, frame in zip(raw.frames, captured, strict=True))


async def test_an_extreme_frame_in_a_check_is_answered() -> None:
    # A 4000×16 strip used to raise ValueError out of the check instead of reaching the model.
    strip = Image.new("RGB", (4000, 16), (30, 30, 200))
    buffer = io.BytesIO()
    strip.save(buffer, format="JPEG")
    backend = RecordingBackend()
    answer = await check.ask(backend, SPEC, [buffer.getvalue()] * 6, budget=512, per_condition=False)
    assert answer.frames_sent == 6
    assert answer.image_tokens <= 512
