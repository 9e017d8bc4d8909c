"""Tests of how a check gets its frames: sized once, the same way for captured frames, raw JPEGs and photos."""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image, ImageDraw
import pytest

from custom_components.miloco.engine import check, frames, window
from custom_components.miloco.engine.backends.base import BackendStats, VisionReply, VisionRequest
from custom_components.miloco.engine.evaluation.check import ask as evaluate_ask
from custom_components.miloco.engine.evaluation.settings import Setting
from custom_components.miloco.engine.prompt import CheckSpec, QuestionSpec

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
        schema = request.json_schema or {}
        if "answer" in schema.get("properties", {}):
            return VisionReply(text=json.dumps({"answer": "two photos"}), model="m", latency_s=0.1)
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
    answer = await check.ask(backend, SPEC, captured, plan=MEDIUM, per_condition=False)
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
    await check.ask(backend, SPEC, [frame.jpeg for frame in captured], plan=MEDIUM, per_condition=False)
    # Frames prepared for medium detail, asked at high detail (the user just changed it): resized anew.
    high_plan = frames.FramePlan(frames=6, budget=1024)
    await check.ask(backend, SPEC, captured, plan=high_plan, per_condition=False)
    # Frames captured without preparation.
    bare = [window.Frame(frame.timestamp, frame.jpeg) for frame in captured]
    await check.ask(backend, SPEC, bare, plan=MEDIUM, per_condition=False)
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
    answer = await check.ask(backend, SPEC, [buffer.getvalue()] * 6, plan=MEDIUM, per_condition=False)
    assert answer.frames_sent == 6
    assert answer.image_tokens <= 512


async def test_the_same_jpegs_give_the_same_request_images_on_every_route() -> None:
    """A live check (prepared at capture), a service's raw JPEGs and the evaluation toolkit send the same bytes."""
    backend = RecordingBackend()
    captured = _captured(6)
    # Still frames are kept without their sizes (the watcher only thumbnails them): the check makes them.
    half_prepared = [
        frame if index % 2 else window.Frame(frame.timestamp, frame.jpeg)
        for index, frame in enumerate(captured)
    ]
    await check.ask(backend, SPEC, captured, plan=MEDIUM, per_condition=False)
    await check.ask(backend, SPEC, half_prepared, plan=MEDIUM, per_condition=False)
    await check.ask(backend, SPEC, [frame.jpeg for frame in captured], plan=MEDIUM, per_condition=False)
    toolkit_frames = [window.Frame(frame.timestamp, frame.jpeg) for frame in captured]
    await evaluate_ask(backend, SPEC, toolkit_frames, Setting(frames=6, budget=512))
    live, mixed, raw, toolkit = backend.requests
    assert [bytes(image) for image in mixed.frames] == [bytes(image) for image in live.frames]
    assert [bytes(image) for image in raw.frames] == [bytes(image) for image in live.frames]
    assert [bytes(image) for image in toolkit.frames] == [bytes(image) for image in live.frames]


async def test_a_clip_whose_camera_changed_resolution_stays_within_the_budget() -> None:
    backend = RecordingBackend()
    # Three 1280×720 frames, then three 4:3 ones: the newest frame's shape sets the newest size.
    clip = [*(_jpeg(12 * index) for index in range(3)), *[_photo((640, 480), (120, 110, 100))] * 3]
    answer = await check.ask(backend, SPEC, clip, plan=MEDIUM, per_condition=False)
    (request,) = backend.requests
    assert _sizes(request)[-1] == frames.plan_sizes(4 / 3, 6, 512, source=(640, 480))[-1]
    assert answer.frames_sent == 6
    assert answer.image_tokens <= 512


def _photo(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


async def test_separate_images_keep_their_own_shapes_and_names() -> None:
    backend = RecordingBackend()
    question = QuestionSpec(question="What is in the photos?")
    images = check.SeparateImages(
        (
            check.NamedImage("portrait.jpg", _photo((600, 1200), (200, 30, 30))),
            check.NamedImage("landscape.jpg", _photo((1600, 900), (30, 30, 200))),
        )
    )
    answer = await check.ask(backend, question, images, plan=MEDIUM, per_condition=False)
    (request,) = backend.requests
    (portrait_w, portrait_h), (landscape_w, landscape_h) = _sizes(request)
    # Each keeps its own aspect ratio (to within a 28-px cell), neither stretched to the other's.
    assert abs(portrait_w / portrait_h - 0.5) < 0.1
    assert abs(landscape_w / landscape_h - 16 / 9) < 0.2
    assert answer.image_tokens <= 512
    assert list(request.frame_labels) == ["Image 1: portrait.jpg", "Image 2: landscape.jpg"]
    assert "separate images" in request.system_prompt
    assert "frames per second" not in request.system_prompt


async def test_no_images_are_still_separate_images_not_an_empty_clip() -> None:
    backend = RecordingBackend()
    question = QuestionSpec(question="Say hello.")
    answer = await check.ask(backend, question, check.SeparateImages(), plan=MEDIUM, per_condition=False)
    (request,) = backend.requests
    assert answer.structured == {"answer": "two photos"}
    assert list(request.frames) == []
    assert "no images" in request.system_prompt
    assert "frames per second" not in request.system_prompt


async def test_a_camera_check_is_never_about_separate_images() -> None:
    backend = RecordingBackend()
    images = check.SeparateImages((check.NamedImage("a.jpg", _jpeg(0)),))
    with pytest.raises(TypeError):
        await check.ask(backend, SPEC, images, plan=MEDIUM, per_condition=False)
    assert backend.requests == []
