"""Tests of the per-camera frame window: bounded memory, and the frames chosen for a check."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.miloco.engine import window

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
