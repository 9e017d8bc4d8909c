"""Tests of the label catalogue: the model-facing names, the keys and the report's numbers."""

from __future__ import annotations

import re

import pytest

from custom_components.miloco.engine import labels

LabelKind = labels.LabelKind


def test_gestures_are_the_five_trained_plus_wave() -> None:
    assert [label.key for label in labels.GESTURES] == [
        "thumbs_up",
        "v_sign",
        "open_palm",
        "ok",
        "shaka",
        "wave",
    ]
    assert [label.prompt_name for label in labels.GESTURES] == [
        "Thumbs Up",
        "V Sign",
        "Open Palm",
        "OK",
        "Shaka Sign",
        "Wave",
    ]
    assert all(label.kind is LabelKind.GESTURE for label in labels.GESTURES)


def test_activities_use_the_training_names() -> None:
    assert [label.key for label in labels.ACTIVITIES] == [
        "watch_tv",
        "reading",
        "phone",
        "esports",
        "workout",
    ]
    assert [label.prompt_name for label in labels.ACTIVITIES] == [
        "Watch TV",
        "Reading",
        "Play on the Phone",
        "Play Esports",
        "Workout",
    ]
    assert all(label.kind is LabelKind.ACTIVITY for label in labels.ACTIVITIES)


def test_presence() -> None:
    assert labels.PRESENCE.key == "person"
    assert labels.PRESENCE.kind is LabelKind.PRESENCE
    assert labels.by_key("person") is labels.PRESENCE


def test_report_f1_for_trained_labels_only() -> None:
    expected = {
        "ok": 86.3,
        "thumbs_up": 90.5,
        "v_sign": 90.3,
        "shaka": 88.3,
        "open_palm": 87.5,
        "watch_tv": 98.3,
        "reading": 90.8,
        "phone": 90.5,
        "esports": 99.2,
        "workout": 96.7,
    }
    for label in labels.ALL_LABELS:
        assert label.trained is (label.key in expected)
        assert label.report_f1 == expected.get(label.key)


def test_keys_are_unique_translation_keys() -> None:
    keys = [label.key for label in labels.ALL_LABELS]
    assert len(keys) == len(set(keys))
    # Home Assistant translation keys and event types: lower-case snake case.
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", key) for key in keys)


def test_texts_are_states_not_past_events() -> None:
    for label in labels.ALL_LABELS:
        for text in (label.description, label.condition):
            assert text == text.strip()
            assert text[0].islower()
            assert not text.endswith(".")
            assert not re.search(r"\b(detected|was|were|has been|did)\b", text), text


def test_gesture_conditions_name_the_trained_gesture() -> None:
    for label in labels.GESTURES:
        if label.trained:
            assert re.fullmatch(
                rf"someone is showing an? {re.escape(label.prompt_name)} gesture", label.condition
            )


def test_by_key_and_unknown_key() -> None:
    assert labels.by_key("shaka").prompt_name == "Shaka Sign"
    with pytest.raises(KeyError, match="nope"):
        labels.by_key("nope")


def test_labels_are_frozen() -> None:
    with pytest.raises(AttributeError):
        labels.GESTURES[0].key = "other"
