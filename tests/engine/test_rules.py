"""Tests of the episode, hold, edge and debounce state machines, with skipped checks and gaps."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.miloco.engine import rules

STARTED = rules.Transition.STARTED
ENDED = rules.Transition.ENDED

# One check step: (seconds since the previous step, the model's answer, whether the check ran).
steps = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=10.0), st.booleans(), st.booleans()),
    max_size=60,
)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rules.EpisodeTracker(-1.0),
        lambda: rules.HoldState(float("nan")),
        lambda: rules.EdgeTrigger(float("inf")),
        lambda: rules.Debounce(0, 1.0),
        lambda: rules.Debounce(1, -1.0),
    ],
)
def test_invalid_settings(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        make()


# --- EpisodeTracker -----------------------------------------------------------------------------------


def test_a_held_gesture_fires_once() -> None:
    episode = rules.EpisodeTracker(max_gap_s=3.0)
    assert episode.update(True, 0.0)
    assert episode.active
    assert not episode.update(True, 2.0)
    assert not episode.update(True, 4.0)


def test_an_absent_check_ends_the_episode() -> None:
    episode = rules.EpisodeTracker(max_gap_s=3.0)
    assert episode.update(True, 0.0)
    assert not episode.update(False, 2.0)
    assert not episode.active
    assert episode.update(True, 4.0)


def test_skipped_checks_keep_the_episode() -> None:
    episode = rules.EpisodeTracker(max_gap_s=3.0)
    assert episode.update(True, 0.0)
    # The gate saw no change for a long while: whatever the answer field says, nothing is new.
    for now in (2.0, 4.0, 6.0, 8.0):
        assert not episode.update(False, now, checked=False)
        assert episode.active
    assert not episode.update(True, 10.0)


def test_a_skipped_check_does_not_start_an_episode() -> None:
    episode = rules.EpisodeTracker(max_gap_s=3.0)
    assert not episode.update(True, 0.0, checked=False)
    assert not episode.active
    assert episode.update(True, 1.0)


def test_a_gap_ends_the_episode() -> None:
    episode = rules.EpisodeTracker(max_gap_s=3.0)
    assert episode.update(True, 0.0)
    # Exactly the window length later is still the same episode ...
    assert not episode.update(True, 3.0)
    # ... longer without any check (the backend was down) is a new one.
    assert episode.update(True, 6.5)


def test_episode_reset() -> None:
    episode = rules.EpisodeTracker(max_gap_s=3.0)
    episode.update(True, 0.0)
    episode.reset()
    assert episode.update(True, 0.5)


@settings(max_examples=150, deadline=None)
@given(sequence=steps, max_gap=st.floats(min_value=0.5, max_value=6.0))
def test_episode_never_fires_twice_without_an_end(
    sequence: list[tuple[float, bool, bool]], max_gap: float
) -> None:
    episode = rules.EpisodeTracker(max_gap)
    now = 0.0
    last = None
    ended_since_fire = True
    for dt, present, checked in sequence:
        now += dt
        if last is not None and now - last > max_gap:
            ended_since_fire = True
        last = now
        fired = episode.update(present, now, checked)
        if fired:
            assert ended_since_fire
            ended_since_fire = False
        if checked and not present:
            ended_since_fire = True
        if checked and present:
            assert episode.active


@settings(max_examples=200, deadline=None)
@given(sequence=steps, max_gap=st.floats(min_value=0.5, max_value=6.0))
def test_episode_fires_whenever_a_new_one_begins(
    sequence: list[tuple[float, bool, bool]], max_gap: float
) -> None:
    episode = rules.EpisodeTracker(max_gap)
    now = 0.0
    last = None
    active = False
    for dt, present, checked in sequence:
        now += dt
        if last is not None and now - last > max_gap:
            active = False
        last = now
        fired = episode.update(present, now, checked)
        expected = checked and present and not active
        assert fired == expected
        if checked:
            active = present


# --- HoldState ----------------------------------------------------------------------------------------


def test_hold_turns_on_when_seen_and_holds() -> None:
    state = rules.HoldState(hold_s=10.0)
    assert state.update(True, 0.0) is STARTED
    assert state.update(True, 2.0) is None
    # Not seen for a moment (a misread, a person turning away): still on within the hold.
    assert state.update(False, 5.0) is None
    assert state.is_on
    assert state.update(False, 11.9) is None
    assert state.update(False, 12.0) is ENDED
    assert not state.is_on


def test_skipped_checks_refresh_the_hold() -> None:
    state = rules.HoldState(hold_s=10.0)
    assert state.update(True, 0.0) is STARTED
    # A person reading barely moves: the gate skips for a minute, the state is still on.
    for now in range(5, 65, 5):
        assert state.refresh(float(now)) is None
    # The heartbeat check runs: gone now, but the hold counts from the last refresh.
    assert state.update(False, 65.0) is None
    assert state.is_on
    assert state.tick(70.0) is ENDED


def test_skipped_checks_after_an_absent_check_do_not_refresh() -> None:
    state = rules.HoldState(hold_s=10.0)
    state.update(True, 0.0)
    assert state.update(False, 2.0) is None
    # The room is empty and static: skipped checks carry the "absent" answer on, so the hold runs out.
    assert state.refresh(6.0) is None
    assert state.refresh(10.0) is ENDED


def test_the_hold_does_not_run_out_without_an_absent_check() -> None:
    state = rules.HoldState(hold_s=10.0)
    state.update(True, 0.0)
    # No check at all for a long while (the backend is down): no news, so no transition.
    assert state.tick(100.0) is None
    assert state.is_on


def test_zero_hold_and_reset() -> None:
    state = rules.HoldState(hold_s=0.0)
    assert state.update(True, 0.0) is STARTED
    assert state.update(False, 0.5) is ENDED
    assert state.update(False, 1.0) is None
    assert state.refresh(1.5) is None
    state.update(True, 2.0)
    state.reset()
    assert not state.is_on
    assert state.update(True, 3.0) is STARTED


@settings(max_examples=150, deadline=None)
@given(sequence=steps, hold=st.floats(min_value=0.0, max_value=20.0))
def test_hold_invariants(sequence: list[tuple[float, bool, bool]], hold: float) -> None:
    state = rules.HoldState(hold)
    now = 0.0
    last_ran_saw = False
    last_fresh = None
    was_on = False
    for dt, present, checked in sequence:
        now += dt
        transition = state.update(present, now) if checked else state.refresh(now)
        if checked:
            last_ran_saw = present
            if present:
                last_fresh = now
        elif was_on and last_ran_saw:
            last_fresh = now
        # Transitions alternate and match the state.
        if transition is STARTED:
            assert not was_on
            assert checked
            assert present
        if transition is ENDED:
            assert was_on
            assert not last_ran_saw
            assert last_fresh is not None
            assert now - last_fresh >= hold
        assert state.is_on == (was_on if transition is None else transition is STARTED)
        # A state whose last check that ran saw it never ends.
        if last_ran_saw:
            assert state.is_on
        was_on = state.is_on


# --- EdgeTrigger --------------------------------------------------------------------------------------


def test_edge_fires_on_false_to_true_only() -> None:
    trigger = rules.EdgeTrigger(cooldown_s=10.0)
    assert trigger.update(True, 0.0)
    assert trigger.value
    assert not trigger.update(True, 2.0)
    assert not trigger.update(True, 20.0)
    assert not trigger.update(False, 22.0)
    assert trigger.update(True, 24.0)


def test_edges_within_the_cooldown_are_swallowed() -> None:
    trigger = rules.EdgeTrigger()
    assert trigger.update(True, 0.0)
    assert not trigger.update(False, 2.0)
    assert not trigger.update(True, 4.0)
    # The swallowed edge is not replayed once the cooldown is over.
    assert not trigger.update(True, 12.0)
    assert not trigger.update(False, 14.0)
    assert trigger.update(True, 16.0)


def test_edge_cooldown_boundary_and_reset() -> None:
    trigger = rules.EdgeTrigger(cooldown_s=10.0)
    assert trigger.update(True, 0.0)
    trigger.update(False, 5.0)
    assert trigger.update(True, 10.0)
    trigger.reset()
    assert trigger.update(True, 11.0)


def test_a_restored_edge_keeps_its_cooldown_and_its_last_answer() -> None:
    trigger = rules.EdgeTrigger(cooldown_s=10.0)
    # Fired 2 s before a restart at 100.0; the answer then was "yes".
    trigger.restore(value=True, last_fired=98.0)
    assert trigger.value
    # The same "yes" after the restart is no edge.
    assert not trigger.update(True, 100.0)
    assert not trigger.update(False, 101.0)
    # A new edge inside the cooldown is swallowed; after it, it fires.
    assert not trigger.update(True, 102.0)
    trigger.update(False, 107.0)
    assert trigger.update(True, 108.0)


@settings(max_examples=150, deadline=None)
@given(sequence=steps, cooldown=st.floats(min_value=0.0, max_value=30.0))
def test_edge_invariants(sequence: list[tuple[float, bool, bool]], cooldown: float) -> None:
    trigger = rules.EdgeTrigger(cooldown)
    now = 0.0
    previous = False
    last_fired = None
    for dt, value, _checked in sequence:
        now += dt
        fired = trigger.update(value, now)
        if fired:
            assert value
            assert not previous
            assert last_fired is None or now - last_fired >= cooldown
            last_fired = now
        elif value and not previous:
            # An edge that did not fire was inside the cooldown.
            assert last_fired is not None
            assert now - last_fired < cooldown
        previous = value


# --- Debounce -----------------------------------------------------------------------------------------


def test_debounce_on_after_consecutive_positives() -> None:
    debounce = rules.Debounce(on_checks=3, off_delay_s=5.0)
    assert debounce.update(True, 0.0) is None
    assert debounce.update(True, 2.0) is None
    # A misread breaks the run.
    assert debounce.update(False, 4.0) is None
    assert debounce.update(True, 6.0) is None
    assert debounce.update(True, 8.0) is None
    assert debounce.update(True, 10.0) is STARTED
    assert debounce.is_on
    assert debounce.update(True, 12.0) is None


def test_a_debounce_restored_on_starts_nothing_until_it_went_off() -> None:
    debounce = rules.Debounce(on_checks=2, off_delay_s=5.0)
    debounce.restore_on()
    assert debounce.is_on
    assert debounce.update(True, 0.0) is None
    assert debounce.update(False, 1.0) is None
    assert debounce.update(False, 6.0) is ENDED
    assert debounce.update(True, 7.0) is None
    assert debounce.update(True, 8.0) is STARTED


def test_debounce_off_after_the_delay() -> None:
    debounce = rules.Debounce(on_checks=1, off_delay_s=5.0)
    assert debounce.update(True, 0.0) is STARTED
    assert debounce.update(False, 2.0) is None
    # One positive check in between restarts the off-delay.
    assert debounce.update(True, 4.0) is None
    assert debounce.update(False, 6.0) is None
    assert debounce.update(False, 10.0) is None
    assert debounce.tick(10.9) is None
    assert debounce.tick(11.0) is ENDED
    assert not debounce.is_on
    assert debounce.update(False, 12.0) is None


def test_debounce_zero_delay_and_reset() -> None:
    debounce = rules.Debounce(on_checks=1, off_delay_s=0.0)
    assert debounce.update(True, 0.0) is STARTED
    assert debounce.update(False, 1.0) is ENDED
    debounce.update(True, 2.0)
    debounce.reset()
    assert not debounce.is_on
    assert debounce.tick(100.0) is None


@settings(max_examples=150, deadline=None)
@given(
    sequence=steps,
    on_checks=st.integers(min_value=1, max_value=4),
    off_delay=st.floats(min_value=0.0, max_value=20.0),
)
def test_debounce_invariants(
    sequence: list[tuple[float, bool, bool]], on_checks: int, off_delay: float
) -> None:
    debounce = rules.Debounce(on_checks, off_delay)
    now = 0.0
    run = 0
    negative_since = None
    for dt, value, _checked in sequence:
        now += dt
        was_on = debounce.is_on
        transition = debounce.update(value, now)
        run = run + 1 if value else 0
        if value:
            negative_since = None
        elif negative_since is None:
            negative_since = now
        if transition is STARTED:
            assert not was_on
            assert run >= on_checks
        if transition is ENDED:
            assert was_on
            assert negative_since is not None
            assert now - negative_since >= off_delay
        if debounce.is_on and not was_on:
            assert transition is STARTED
