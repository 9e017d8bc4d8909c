"""Thresholds where the verdict is decided: the interpret step weighs P(yes) against a rule's or a label's threshold."""

from __future__ import annotations

import math

import pytest

from custom_components.miloco.engine.camera_state import PRESENCE_KEY, CameraState, CameraStateSettings
from custom_components.miloco.engine.prompt import (
    CheckSpec,
    Observation,
    RuleSpec,
    decide,
    interpret_combined,
    interpret_conditions,
)

STRICT = RuleSpec("strict", "someone is waving", threshold=0.8)
PLAIN = RuleSpec("plain", "someone is reading")


def test_decide() -> None:
    assert decide(True, 0.7, 0.8) is False
    assert decide(False, 0.45, 0.4) is True
    assert decide(True, 0.8, 0.8) is True
    # Without a threshold, or without a probability, the model's own answer stands.
    assert decide(True, 0.1, None) is True
    assert decide(False, None, 0.2) is False


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.5, 0.0, 1.5])
def test_a_threshold_is_a_probability(bad: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        RuleSpec("r", "someone is waving", threshold=bad)
    with pytest.raises(ValueError, match="threshold"):
        CheckSpec(presence=True, label_threshold=bad)


def test_a_rule_edited_to_a_new_threshold_is_a_new_question() -> None:
    assert RuleSpec("r", "someone is waving", 3, 0.8) != RuleSpec("r", "someone is waving", 3, 0.9)


def test_combined_rules_and_presence_against_their_thresholds() -> None:
    spec = CheckSpec(presence=True, rules=(STRICT, PLAIN), label_threshold=0.9)
    answer = {"person_present": "yes", "rules": {"r1": "yes", "r2": "yes"}}
    observation = interpret_combined(
        answer, spec, presence_probability=0.85, rule_probabilities={"strict": 0.7, "plain": 0.6}
    )
    # The strict rule's "yes" at 0.7 is under its 0.8; the plain rule keeps the model's yes; presence misses 0.9.
    assert observation.rules == {"strict": False, "plain": True}
    assert observation.person_present is False
    assert observation.rule_probabilities == {"strict": 0.7, "plain": 0.6}
    assert observation.presence_probability == 0.85

    sure = interpret_combined(
        answer, spec, presence_probability=0.95, rule_probabilities={"strict": 0.9, "plain": 0.6}
    )
    assert sure.rules == {"strict": True, "plain": True}
    assert sure.person_present is True


def test_combined_without_probabilities_is_as_before() -> None:
    spec = CheckSpec(presence=True, rules=(STRICT,), label_threshold=0.9)
    observation = interpret_combined({"person_present": "yes", "rules": {"r1": "yes"}}, spec)
    assert observation == Observation(person_present=True, rules={"strict": True})


def test_per_condition_labels_take_the_camera_threshold_and_rules_their_own() -> None:
    spec = CheckSpec(gestures=("wave",), activities=("reading",), rules=(STRICT, PLAIN), label_threshold=0.6)
    results = {
        "gesture:wave": {"result": "yes"},
        "activity:reading": {"result": "no"},
        "rule:strict": {"result": "yes"},
        "rule:plain": {"result": "yes"},
    }
    probabilities = {
        "gesture:wave": 0.55,
        "activity:reading": 0.4,
        "rule:strict": 0.85,
        "rule:plain": 0.52,
        "gesture:unknown": 0.99,
    }
    observation = interpret_conditions(results, spec, probabilities)
    # Wave's "yes" at 0.55 is under the camera's 0.6; the plain rule has no threshold of its own: its "yes" stands.
    assert observation.gestures == frozenset()
    assert observation.activities == frozenset()
    assert observation.rules == {"strict": True, "plain": True}
    assert observation.label_probabilities == {"wave": 0.55, "reading": 0.4}
    assert observation.rule_probabilities == {"strict": 0.85, "plain": 0.52}

    lenient = interpret_conditions(
        results, CheckSpec(activities=("reading",), label_threshold=0.3), probabilities
    )
    # A "no" at P(yes) = 0.4 holds at a threshold of 0.3: a lower threshold catches what the model half sees.
    assert lenient.activities == frozenset({"reading"})


def test_the_camera_state_keeps_the_last_probabilities() -> None:
    state = CameraState(
        CameraStateSettings(activities=("reading",), presence=True, hold_s=5, window_s=3, check_interval_s=1)
    )
    seen = Observation(
        activities=frozenset({"reading"}),
        person_present=True,
        label_probabilities={"reading": 0.9, "wave": 0.2},
        presence_probability=0.97,
        rule_probabilities={"strict": 0.81},
    )
    changes = state.answered(seen, 10.0, window_end=10.0, moving=True, asked=(STRICT,))
    assert changes.rule_probabilities == {STRICT: 0.81}
    # Only what the camera watches (wave is not) is kept and published.
    assert changes.probabilities == {"reading": 0.9, PRESENCE_KEY: 0.97}
    assert state.probability("reading") == 0.9
    # A check without probabilities leaves none behind: the attribute shows the last check, not an older one.
    state.answered(Observation(person_present=True), 11.0, window_end=11.0, moving=True)
    assert state.probabilities == {}
    assert state.probability(PRESENCE_KEY) is None
