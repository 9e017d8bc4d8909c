"""The catalogue of what the engine can recognise: gestures, activities and presence."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class LabelKind(StrEnum):
    """What kind of thing a label names, which decides how its answers are tracked over time."""

    GESTURE = "gesture"
    ACTIVITY = "activity"
    PRESENCE = "presence"


@dataclass(frozen=True, slots=True, kw_only=True)
class Label:
    """One recognisable thing: its stable key, how the model is asked about it, and what is known of it."""

    # Stable identifier; doubles as Home Assistant translation key and event type, so never rename one.
    key: str
    kind: LabelKind
    # The English name exactly as the model saw it in training.
    prompt_name: str
    # A short visual description phrased as a state, for the combined prompt's catalogue.
    description: str
    # The per-condition question, phrased as a state (past-tense conditions make the model repeat "yes").
    condition: str
    # Whether MiMo-VL-Miloco-7B was trained on this label (the others work zero-shot, if at all).
    trained: bool
    # Per-class F1 (percent) of MiMo-VL-Miloco-7B in its technical report; None when not reported.
    report_f1: float | None


GESTURES: Final[tuple[Label, ...]] = (
    Label(
        key="thumbs_up",
        kind=LabelKind.GESTURE,
        prompt_name="Thumbs Up",
        description="a hand is held in a fist with the thumb pointing up",
        condition="someone is showing a Thumbs Up gesture",
        trained=True,
        report_f1=90.5,
    ),
    Label(
        key="v_sign",
        kind=LabelKind.GESTURE,
        prompt_name="V Sign",
        description="a hand is raised with the index and middle fingers spread in a V",
        condition="someone is showing a V Sign gesture",
        trained=True,
        report_f1=90.3,
    ),
    Label(
        key="open_palm",
        kind=LabelKind.GESTURE,
        prompt_name="Open Palm",
        description="a hand is raised with the palm facing the camera and all fingers extended",
        condition="someone is showing an Open Palm gesture",
        trained=True,
        report_f1=87.5,
    ),
    Label(
        key="ok",
        kind=LabelKind.GESTURE,
        prompt_name="OK",
        description="a hand has the thumb and index finger touching in a circle, the other fingers extended",
        condition="someone is showing an OK gesture",
        trained=True,
        report_f1=86.3,
    ),
    Label(
        key="shaka",
        kind=LabelKind.GESTURE,
        prompt_name="Shaka Sign",
        description="a hand has the thumb and little finger extended and the middle fingers curled",
        condition="someone is showing a Shaka Sign gesture",
        trained=True,
        report_f1=88.3,
    ),
    Label(
        key="wave",
        kind=LabelKind.GESTURE,
        prompt_name="Wave",
        description="someone is waving a raised hand from side to side",
        condition="someone is waving a hand",
        trained=False,
        report_f1=None,
    ),
)

ACTIVITIES: Final[tuple[Label, ...]] = (
    Label(
        key="watch_tv",
        kind=LabelKind.ACTIVITY,
        prompt_name="Watch TV",
        description="someone is facing a television that is on and watching it",
        condition="someone is watching TV",
        trained=True,
        report_f1=98.3,
    ),
    Label(
        key="reading",
        kind=LabelKind.ACTIVITY,
        prompt_name="Reading",
        description="someone is looking down at a book, magazine or paper held in front of them",
        condition="someone is reading",
        trained=True,
        report_f1=90.8,
    ),
    Label(
        key="phone",
        kind=LabelKind.ACTIVITY,
        prompt_name="Play on the Phone",
        description="someone is holding a phone and looking at its screen",
        condition="someone is playing on the phone",
        trained=True,
        report_f1=90.5,
    ),
    Label(
        key="esports",
        kind=LabelKind.ACTIVITY,
        prompt_name="Play Esports",
        description="someone is playing a video game with a controller, keyboard or mouse in front of a screen",
        condition="someone is playing esports",
        trained=True,
        report_f1=99.2,
    ),
    Label(
        key="workout",
        kind=LabelKind.ACTIVITY,
        prompt_name="Workout",
        description="someone is exercising, such as doing squats, push-ups, yoga or lifting weights",
        condition="someone is working out",
        trained=True,
        report_f1=96.7,
    ),
)

PRESENCE: Final = Label(
    key="person",
    kind=LabelKind.PRESENCE,
    prompt_name="Person",
    description="a person is visible in the frame",
    condition="a person is present",
    trained=False,
    report_f1=None,
)

ALL_LABELS: Final[tuple[Label, ...]] = (*GESTURES, *ACTIVITIES, PRESENCE)

_BY_KEY: Final[dict[str, Label]] = {label.key: label for label in ALL_LABELS}


def by_key(key: str) -> Label:
    """Return the label with this key; raise KeyError for an unknown one."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown label key {key!r}") from None
