"""Tests of the frame clock: a watching camera keeps its phase, resting cameras share a few wake-up points."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, strategies as st
import pytest

from custom_components.miloco.engine.frame_clock import REST_SLOTS, next_frame_at

PERIOD = 0.5  # 2 fps, the default
REST_STRIDE = 2


def _on_grid(value: float, step: float, anchor: float = 0.0) -> bool:
    """Return True when `value` is a point anchor + k·step (to float precision)."""
    units = (value - anchor) / step
    return math.isclose(units, round(units), abs_tol=1e-6)


def test_a_watching_camera_keeps_its_own_phase() -> None:
    start = 1000.0 + 0.3 * PERIOD
    times = [start]
    for _ in range(10):
        times.append(next_frame_at(times[-1], PERIOD, stride=1, phase=0.3))
    assert all(math.isclose(b - a, PERIOD) for a, b in itertools.pairwise(times))
    assert all(_on_grid(t, PERIOD, 0.3 * PERIOD) for t in times)


def test_resting_cameras_wake_together_at_a_few_points() -> None:
    """32 cameras spread over the period wake at REST_SLOTS instants a rest interval, not at 32."""
    cameras = 32
    clocks = [1000.0 + index / cameras * PERIOD for index in range(cameras)]
    for _ in range(3):
        clocks = [next_frame_at(t, PERIOD, stride=REST_STRIDE, phase=0.0) for t in clocks]
    interval = PERIOD * REST_STRIDE
    instants = {round(t % interval, 6) for t in clocks}
    assert len(instants) <= REST_SLOTS
    # Spread over those points, not all on one: a large home's frames do not land on the executor at once.
    assert len(instants) > 1


@given(
    scheduled=st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False),
    phase=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    fps=st.sampled_from([0.5, 1.0, 2.0, 5.0, 10.0]),
)
def test_at_rest_frames_stay_a_rest_interval_apart(scheduled: float, phase: float, fps: float) -> None:
    """Resting moves a frame to the grid by at most half a grid step: the stride's wait, no more on average."""
    period = 1.0 / fps
    interval = period * REST_STRIDE
    step = interval / REST_SLOTS
    after = next_frame_at(scheduled, period, stride=REST_STRIDE, phase=phase)
    assert _on_grid(after, step)
    assert interval - step / 2 - 1e-6 <= after - scheduled <= interval + step / 2 + 1e-6
    # Once on the grid, frames are exactly one rest interval apart.
    assert math.isclose(next_frame_at(after, period, stride=REST_STRIDE, phase=phase) - after, interval)


@pytest.mark.parametrize("phase", [0.0, 0.2, 0.5, 0.9])
def test_a_camera_that_stops_resting_returns_to_its_own_phase(phase: float) -> None:
    rested = next_frame_at(1000.0, PERIOD, stride=REST_STRIDE, phase=phase)
    awake = next_frame_at(rested, PERIOD, stride=1, phase=phase)
    assert _on_grid(awake, PERIOD, phase * PERIOD)
    assert PERIOD / 2 - 1e-6 <= awake - rested <= PERIOD * 1.5 + 1e-6


def test_without_rest_slots_a_resting_camera_keeps_its_phase() -> None:
    """The benchmark's "every frame" variant and a stride of one take no grid."""
    after = next_frame_at(1000.0 + 0.3 * PERIOD, PERIOD, stride=REST_STRIDE, phase=0.3, rest_slots=0)
    assert _on_grid(after, PERIOD, 0.3 * PERIOD)
    assert math.isclose(after - (1000.0 + 0.3 * PERIOD), PERIOD * REST_STRIDE)
