"""Rule conditions: states are accepted, past events and empty or endless text are refused."""

from __future__ import annotations

import pytest

from custom_components.miloco.engine.condition_text import MAX_CONDITION_CHARS, condition_problem


@pytest.mark.parametrize(
    "text",
    [
        "someone is waving at the camera",
        "a person is lying on the floor",
        "the front door is open",
        "someone is showing a thumbs-up",
        "有人在挥手",
        "a cat is on the kitchen counter",
    ],
)
def test_states_are_fine(text: str) -> None:
    assert condition_problem(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "detected someone waving",
        "Detect if someone waves",
        "someone has entered the room",
        "a person has just arrived",
        "the dog was walked",
        "a fall happened",
        "someone entered the kitchen",
        "检测到有人挥手",
        "有人出现了",
    ],
)
def test_past_events_are_refused(text: str) -> None:
    assert condition_problem(text) == "past_event"


@pytest.mark.parametrize("text", ["", "   ", " . ", "\n\t"])
def test_empty(text: str) -> None:
    assert condition_problem(text) == "empty"


def test_too_long() -> None:
    assert condition_problem("someone is waving " * 40) == "too_long"
    assert condition_problem("a" * MAX_CONDITION_CHARS) is None
