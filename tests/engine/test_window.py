"""Tests of the per-camera frame window: bounded memory, and the frames chosen for a check."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import given, settings, strategies as st
from PIL import Image, ImageChops, ImageDraw, ImageStat
import pytest

from custom_components.miloco.engine import frames as frames_module, gate, window

Frame = window.Frame


def _filled(times: list[float], capacity: int = 64) -> Any:
    frames = window.FrameWindow(capacity)
    for t in times:
        frames.add(Frame(t, f"{t}".encode()))
    return frames


def _times(frames: list[Any]) -> list[float]:
    return [f.timestamp for f in frames]


def test_capacity_bounds_memory() -> None:
    frames = _filled([i * 0.5 for i in range(100)], capacity=8)
    assert len(frames) == frames.capacity == 8
    assert _times(list(frames)) == [i * 0.5 for i in range(92, 100)]
    assert frames.newest.timestamp == 49.5


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        window.FrameWindow(0)


def test_out_of_order_frames_are_refused() -> None:
    frames = _filled([1.0, 2.0])
    assert not frames.add(Frame(1.5, b"late"))
    assert frames.add(Frame(2.0, b"same instant"))
    assert _times(list(frames)) == [1.0, 2.0, 2.0]


def test_newest_clear_and_stale() -> None:
    frames = window.FrameWindow(4)
    assert frames.newest is None
    assert frames.stale(10.0, 5.0)
    frames.add(Frame(8.0, b"x"))
    assert not frames.stale(10.0, 5.0)
    assert frames.stale(13.5, 5.0)
    frames.clear()
    assert len(frames) == 0
    assert frames.stale(8.0, 5.0)


def test_select_evenly_spaced_oldest_first() -> None:
    frames = _filled([i * 0.5 for i in range(21)])  # 2 fps for 10 s
    # Targets 7.0, 7.6, 8.2, 8.8, 9.4, 10.0.
    assert _times(frames.select(6, 3.0, 10.0)) == [7.0, 7.5, 8.0, 9.0, 9.5, 10.0]


def test_select_reference_pipeline_window() -> None:
    frames = _filled([i * 0.5 for i in range(21)])
    # Miloco's window: the latest 6 frames at 2 fps.
    assert _times(frames.select(6, 2.5, 10.0)) == [7.5, 8.0, 8.5, 9.0, 9.5, 10.0]


def test_select_ties_go_to_the_newer_frame() -> None:
    frames = _filled([0.0, 1.0, 2.0, 3.0])
    # Targets 0, 1.5, 3: the middle one is equally far from 1.0 and 2.0.
    assert _times(frames.select(3, 3.0, 3.0)) == [0.0, 2.0, 3.0]


def test_select_with_fewer_frames_than_asked() -> None:
    frames = _filled([5.0, 9.0, 9.5])
    assert _times(frames.select(6, 3.0, 10.0)) == [9.0, 9.5]
    assert frames.select(6, 3.0, 20.0) == []
    assert frames.select(0, 3.0, 10.0) == []


def test_select_ignores_frames_after_now() -> None:
    frames = _filled([1.0, 2.0, 3.0, 4.0])
    assert _times(frames.select(2, 2.0, 3.0)) == [1.0, 3.0]


def test_select_single_frame_is_the_newest() -> None:
    frames = _filled([1.0, 2.0, 3.0])
    assert _times(frames.select(1, 3.0, 3.2)) == [3.0]


def test_select_across_a_gap() -> None:
    # The camera stalled between 1.5 s and 8 s.
    frames = _filled([0.0, 0.5, 1.0, 1.5, 8.0, 8.5, 9.0, 9.5, 10.0])
    picked = _times(frames.select(4, 10.0, 10.0))
    # Targets 0, 3.3, 6.7, 10: each frame once, in order, the gap bridged by its nearest frames.
    assert picked == [0.0, 1.5, 8.0, 10.0]


def quarters(low: int, high: int) -> st.SearchStrategy[float]:
    return st.integers(min_value=low, max_value=high).map(lambda q: q / 4)


@settings(max_examples=200, deadline=None)
@given(
    # Quarter seconds add up exactly in binary floating point, so a tie in the test is a tie in the code.
    gaps=st.lists(quarters(0, 12), min_size=0, max_size=40),
    n=st.integers(min_value=1, max_value=10),
    span=quarters(2, 80),
    lag=quarters(0, 8),
)
def test_select_invariants(gaps: list[float], n: int, span: float, lag: float) -> None:
    times = []
    t = 0.0
    for gap in gaps:
        t += gap
        times.append(t)
    now = t + lag
    frames = _filled(times, capacity=32)
    picked = frames.select(n, span, now)
    candidates = [f for f in frames if now - span <= f.timestamp <= now]
    assert len(picked) == min(n, len(candidates))
    # Distinct frames from the span, oldest first.
    assert len({id(f) for f in picked}) == len(picked)
    assert all(any(f is c for c in candidates) for f in picked)
    assert _times(picked) == sorted(_times(picked))
    if picked:
        # The newest frame of the span is always part of the check, and the oldest anchors it when n > 1.
        assert picked[-1] is candidates[-1]
        if n > 1:
            assert picked[0].timestamp == candidates[0].timestamp


# --- each frame prepared once, when captured ------------------------------------------------------------

MEDIUM = frames_module.FramePlan(frames=6, budget=frames_module.DETAIL_BUDGETS["medium"])


def _camera_jpeg(shift: int = 0, size: tuple[int, int] = (1280, 720)) -> bytes:
    """Return a real camera-like JPEG: a gradient wall, furniture and a bright figure moved by `shift`."""
    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.rectangle((width // 10, height * 6 // 10, width * 6 // 10, height * 9 // 10), fill=(60, 40, 30))
    x = width // 3 + shift
    draw.ellipse((x, height // 5, x + width // 8, height // 2), fill=(230, 190, 160))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _captured(times: list[float], plan: Any = MEDIUM, size: tuple[int, int] = (1280, 720)) -> list[Any]:
    """Return frames as the watcher captures them: each decoded once into its thumb and model sizes."""
    captured = []
    for index, t in enumerate(times):
        jpeg = _camera_jpeg(shift=8 * index, size=size)
        thumb, prepared = window.prepare_capture(jpeg, plan)
        captured.append(Frame(t, jpeg, thumb, prepared))
    return captured


def test_a_captured_frame_holds_every_size_its_window_position_needs() -> None:
    jpeg = _camera_jpeg()
    thumb, prepared = window.prepare_capture(jpeg, MEDIUM)
    # Today's plan for a 16:9 camera at medium detail: 504×280 ends, 196×112 and 252×140 between.
    assert prepared.sizes == tuple(frames_module.plan_sizes(16 / 9, 6, 512, source=(1280, 720)))
    assert set(prepared.by_size) == {(504, 280), (252, 140), (196, 112)}
    for (width, height), version in prepared.by_size.items():
        image = Image.open(io.BytesIO(version.jpeg))
        assert (image.format, image.size) == ("JPEG", (width, height))
        assert version.tokens == frames_module.image_tokens(width, height)
    # The thumb made from the model-scale decode is the gate's usual thumb of these bytes.
    assert (thumb.width, thumb.height) == (64, 36)
    assert gate.change_score(thumb, gate.thumbnail(jpeg)) == 0.0


def test_prepared_versions_look_like_the_window_preparation() -> None:
    jpeg = _camera_jpeg()
    _, prepared = window.prepare_capture(jpeg, MEDIUM)
    reference = frames_module.prepare_window([jpeg] * 6, MEDIUM.budget)
    for position, expected in enumerate(reference):
        version = prepared.at(position, 6)
        assert (version.width, version.height) == (expected.width, expected.height)
        ours = Image.open(io.BytesIO(version.jpeg)).convert("RGB")
        theirs = Image.open(io.BytesIO(expected.jpeg)).convert("RGB")
        # Same picture: a grey level or two of resampling difference, not a shift or a crop.
        assert ImageStat.Stat(ImageChops.difference(ours, theirs).convert("L")).mean[0] < 3


def test_overlapping_windows_only_pick_what_capture_prepared() -> None:
    ring = window.FrameWindow.for_checks_of(6)
    captured = _captured([i * 0.5 for i in range(10)])
    for frame in captured:
        ring.add(frame)
    # Two checks 2 s apart on 2.5 s windows (6 frames at 2 fps): they share the frame at 2.0 s.
    first = ring.select(6, 2.5, 2.5)
    second = ring.select(6, 2.5, 4.5)
    assert [f.timestamp for f in first] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [f.timestamp for f in second] == [2.0, 2.5, 3.0, 3.5, 4.0, 4.5]
    for chosen in (first, second):
        picked = frames_module.pick_window([f.prepared for f in chosen], MEDIUM.budget)
        assert picked is not None
        assert [(p.width, p.height) for p in picked] == list(chosen[-1].prepared.sizes)
        assert sum(p.tokens for p in picked) == 506
        # The very objects made at capture: nothing decoded, resized or encoded again.
        for position, (frame, version) in enumerate(zip(chosen, picked, strict=True)):
            assert version is frame.prepared.by_size[frame.prepared.sizes[position if position < 5 else 5]]
    # A frame in the middle of the first window is the oldest end of the second: its large size was ready.
    assert second[0] is first[4]
    assert frames_module.pick_window([f.prepared for f in second], 512)[0].width == 504


def test_a_short_window_keeps_the_end_sizes_and_the_budget() -> None:
    captured = _captured([0.0, 0.5, 1.0])
    picked = frames_module.pick_window([f.prepared for f in captured], 512)
    assert picked is not None
    assert [(p.width, p.height) for p in picked] == [(504, 280), (196, 112), (504, 280)]
    (single,) = frames_module.pick_window([captured[-1].prepared], 512) or []
    assert (single.width, single.height) == (504, 280)


def test_frames_that_cannot_serve_the_window_are_refused() -> None:
    captured = _captured([0.0, 0.5, 1.0])
    versions = [f.prepared for f in captured]
    # Prepared for another detail, a window longer than planned, or never prepared: the caller resizes.
    assert frames_module.pick_window(versions, 1024) is None
    assert frames_module.pick_window(versions * 3, 512) is None
    assert frames_module.pick_window([None, *versions[1:]], 512) is None
    # Frames of a camera that changed resolution mid-window, when together over the budget.
    square = _captured([1.5, 2.0], size=(720, 720))
    mixed = [*versions, *(f.prepared for f in square)]
    picked = frames_module.pick_window(mixed, 512)
    assert picked is None or sum(p.tokens for p in picked) <= 512


@pytest.mark.parametrize("size", [(4000, 16), (16, 4000), (1, 1), (1, 8000), (57, 3)])
def test_any_shape_of_frame_is_prepared(size: tuple[int, int]) -> None:
    image = Image.new("RGB", size, (90, 160, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    thumb, prepared = window.prepare_capture(buffer.getvalue(), MEDIUM)
    assert (thumb.width, thumb.height) == gate.thumb_size(*size)
    picked = frames_module.pick_window([prepared] * 6, 512)
    assert picked is not None
    assert sum(p.tokens for p in picked) <= 512


@pytest.mark.parametrize("data", [b"", b"not an image", _camera_jpeg()[:400]])
def test_undecodable_captures_raise_frame_decode_error(data: bytes) -> None:
    with pytest.raises(frames_module.FrameDecodeError):
        window.prepare_capture(data, MEDIUM)


def test_a_plan_no_window_can_follow_is_refused() -> None:
    with pytest.raises(ValueError, match="fits"):
        frames_module.FramePlan(frames=0, budget=512)
    with pytest.raises(ValueError, match="fits"):
        frames_module.FramePlan(frames=6, budget=23)
