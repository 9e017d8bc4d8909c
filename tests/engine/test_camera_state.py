"""The camera state model with a fake clock: episodes, holds, re-arming in a still room, rule verdicts."""

from __future__ import annotations

import math

import pytest

from custom_components.miloco.engine.backoff import RETRY_AFTER_MAX_S, Backoff
from custom_components.miloco.engine.camera_state import (
    PRESENCE_KEY,
    CameraState,
    CameraStateSettings,
)
from custom_components.miloco.engine.prompt import Observation, RuleSpec
from custom_components.miloco.engine.rules import Transition

SETTINGS = CameraStateSettings(
    gestures=("wave", "thumbs_up"),
    activities=("reading",),
    presence=True,
    hold_s=5.0,
    window_s=3.0,
    check_interval_s=2.0,
)


def seen(
    *gestures: str, activities: tuple[str, ...] = (), person: bool | None = True, **rules: bool
) -> Observation:
    """Return an observation."""
    return Observation(
        gestures=frozenset(gestures), activities=frozenset(activities), person_present=person, rules=rules
    )


def test_a_gesture_held_over_checks_is_one_episode() -> None:
    state = CameraState(SETTINGS)
    fired = [state.answered(seen("wave"), t, window_end=t, moving=True).gestures for t in (0.0, 2.0, 4.0)]
    assert fired == [["wave"], [], []]
    assert state.answered(seen(), 6.0, window_end=6.0, moving=True).gestures == []
    assert state.answered(seen("wave"), 8.0, window_end=8.0, moving=True).gestures == ["wave"]


def test_a_still_window_after_the_wave_rearms_it() -> None:
    state = CameraState(SETTINGS)
    assert state.answered(seen("wave", r1=True), 0.0, window_end=0.0, moving=True).gestures == ["wave"]
    # Still frames, but not yet a whole window after the check's newest frame: nothing re-arms.
    assert not state.still(2.9)
    changes = state.still(3.0)
    assert changes.rearmed
    # Once per check: more still frames change nothing.
    assert not state.still(10.0)
    # The second wave is a new episode.
    assert state.answered(seen("wave"), 12.0, window_end=12.0, moving=True).gestures == ["wave"]


def test_a_gate_skip_keeps_the_episode_and_the_states() -> None:
    state = CameraState(SETTINGS)
    state.answered(seen("wave", activities=("reading",)), 0.0, window_end=0.0, moving=True)
    for now in (2.0, 4.0, 6.0, 8.0, 10.0):
        assert state.unchanged(now).transitions == []
        assert state.tick(now).transitions == []
    # Long past the 5 s hold: a reader barely moves, no change means no news.
    assert state.is_on("reading")
    assert state.answered(seen("wave"), 11.0, window_end=11.0, moving=True).gestures == []


def test_a_heartbeat_check_of_a_still_scene_starts_no_event_but_updates_states() -> None:
    state = CameraState(SETTINGS)
    asked = (RuleSpec("r1", "someone waves", revision=3), RuleSpec("r2", "the door is open", revision=1))
    changes = state.answered(
        seen("wave", activities=("reading",), r1=True), 0.0, window_end=0.0, moving=False, asked=asked
    )
    assert changes.gestures == []
    assert changes.transitions == [("reading", Transition.STARTED), (PRESENCE_KEY, Transition.STARTED)]
    # Each verdict is keyed by the rule as the check asked it (its revision included); unanswered is "no".
    assert changes.rules == {asked[0]: True, asked[1]: False}
    assert changes.moving is False


def test_holds_end_after_the_hold_time_once_a_check_says_absent() -> None:
    state = CameraState(SETTINGS)
    state.answered(seen(activities=("reading",)), 0.0, window_end=0.0, moving=True)
    assert state.answered(seen(), 2.0, window_end=2.0, moving=True).transitions == []
    assert state.tick(4.9).transitions == []
    assert state.tick(5.0).transitions == [("reading", Transition.ENDED)]
    assert not state.is_on("reading")


def test_presence_without_an_answer_is_left_alone() -> None:
    state = CameraState(SETTINGS)
    state.answered(seen(person=True), 0.0, window_end=0.0, moving=True)
    assert state.answered(seen(person=None), 100.0, window_end=100.0, moving=True).transitions == []
    assert state.is_on(PRESENCE_KEY)


def test_an_episode_ends_after_a_gap_without_contact() -> None:
    state = CameraState(SETTINGS)
    state.answered(seen("thumbs_up"), 0.0, window_end=0.0, moving=True)
    # Nothing for longer than max(window, 2 intervals) = 4 s: the camera was away; the same gesture is new.
    assert state.answered(seen("thumbs_up"), 4.5, window_end=4.5, moving=True).gestures == ["thumbs_up"]


def test_nothing_to_publish_is_falsy() -> None:
    state = CameraState(SETTINGS)
    assert not state.tick(1.0)
    assert not state.unchanged(1.0)
    assert not state.still(1.0)
    assert state.answered(seen(), 0.0, window_end=0.0, moving=True)


@pytest.mark.parametrize("hold", [math.nan, -1.0, math.inf])
def test_bad_durations_are_refused(hold: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        CameraState(CameraStateSettings(activities=("reading",), hold_s=hold, window_s=3, check_interval_s=2))


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(0.5, max_s=4.0)
    assert [backoff.failed() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.succeeded()
    assert backoff.failed() == 0.5


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        (30, 30.0),
        (0.1, 2.0),
        (None, 2.0),
        (math.nan, 2.0),
        (-5, 2.0),
        (math.inf, 2.0),
        (1e9, RETRY_AFTER_MAX_S),
    ],
)
def test_backoff_honours_a_sane_retry_after(retry_after: float | None, wait: float) -> None:
    backoff = Backoff(2.0)
    assert backoff.failed(retry_after) == wait


def test_backoff_survives_a_very_long_outage() -> None:
    backoff = Backoff(2.0)
    for _ in range(10_000):
        assert backoff.failed() <= 60.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 60.0), (math.nan, 60.0), (10.0, 5.0), (1.0, math.inf)])
def test_backoff_refuses_bad_settings(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="back-off"):
        Backoff(base, cap)
