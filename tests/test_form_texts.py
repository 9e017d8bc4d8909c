"""The forms' texts state no default or bound that differs from the settings table.

Every label, help text and description of the forms is read (strings.json with its references resolved, as
the UI shows it). A help text of a setting states its default ("default 0.5", "tuned on 2", "every 2 seconds")
and bounds ("1 to 500") only as the table has them; a text about no one setting may state a default only in
words that name its setting ("6 frames", "every 0.5 seconds").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import re
from typing import Any

import pytest

from custom_components.miloco import settings
from custom_components.miloco.engine.frames import DETAIL_BUDGETS

from .strings_files import ENGLISH, STRINGS, make_translations

TEXTS: dict[str, Any] = make_translations().resolved(STRINGS)
_NUMBER = r"(\d+(?:,\d{3})*(?:\.\d+)?)"
_SECONDS = r"(?:seconds?|s)\b"
# Phrases that state a setting's default: "default 0.5", "defaults to 2", "2 by default", "tuned on 6",
# "every 2 seconds".
_DEFAULT_PHRASES = (
    rf"\bdefaults?(?: is| of| to)?:? {_NUMBER}",
    rf"\b{_NUMBER}\S* by default\b",
    rf"\btuned on {_NUMBER}",
    rf"\bevery {_NUMBER} ?{_SECONDS}",
)
_RANGE = re.compile(rf"\b{_NUMBER} to {_NUMBER}\b")
# In a text about no one setting, the words after a number name the setting it is about.
_NAMED_DEFAULTS = (
    (re.compile(rf"\b{_NUMBER} (?:frames per second|fps)\b"), settings.FPS),
    (re.compile(rf"\b{_NUMBER} frames\b(?! per second)"), settings.WINDOW_FRAMES),
    (re.compile(rf"\bevery {_NUMBER} ?{_SECONDS}"), settings.CHECK_INTERVAL),
    (re.compile(rf"\bthreshold (?:of )?{_NUMBER} ?%"), settings.CHANGE_THRESHOLD),
)
# "6 frames over 3 seconds": the span of a check's window, the frames over the frame rate.
_WINDOW_SPAN = re.compile(rf"\b{_NUMBER} frames over {_NUMBER} ?{_SECONDS}")

# Each form's settings, by form: the subentry forms and the backend steps that show table settings.
_BACKEND_SETTINGS: dict[str, tuple[settings.Setting, ...]] = {
    "remote": (settings.REMOTE_TIMEOUT, settings.MAX_CONCURRENT),
    "embedded": (settings.EMBEDDED_TIMEOUT, settings.THREADS, settings.CONTEXT_SIZE),
}
_SUBENTRY_SETTINGS: dict[str, tuple[settings.Setting, ...]] = {
    "camera": settings.CAMERA_SETTINGS,
    "rule": settings.RULE_SETTINGS,
    "ai_task_data": settings.AI_TASK_SETTINGS,
}


@dataclass(frozen=True)
class FormText:
    """One text of a form, and the setting it describes (None: the form, a section, or a field off the table)."""

    where: str
    text: str
    setting: settings.Setting | None


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _form_texts(
    step_path: str, step: dict[str, Any], table: tuple[settings.Setting, ...]
) -> Iterator[FormText]:
    """Yield the step's own texts, its sections' texts, and each field's label and help text."""
    by_key = {setting.key: setting for setting in table}
    groups = [(step_path, step)]
    groups += [
        (f"{step_path}.sections.{name}", section) for name, section in step.get("sections", {}).items()
    ]
    for path, group in groups:
        for key in ("title", "description", "name"):
            if key in group:
                yield FormText(f"{path}.{key}", group[key], None)
        for part in ("data", "data_description"):
            for key, text in group.get(part, {}).items():
                yield FormText(f"{path}.{part}.{key}", text, by_key.get(key))


def all_form_texts() -> Iterator[FormText]:
    """Yield every text of every form that shows table settings."""
    for step_id, step in TEXTS["config"]["step"].items():
        yield from _form_texts(f"config.step.{step_id}", step, _BACKEND_SETTINGS.get(step_id, ()))
    for form, table in _SUBENTRY_SETTINGS.items():
        for step_id, step in TEXTS["config_subentries"][form]["step"].items():
            yield from _form_texts(f"config_subentries.{form}.step.{step_id}", step, table)


def _stated_defaults(text: str) -> list[float]:
    return [
        _number(number) for phrase in _DEFAULT_PHRASES for number in re.findall(phrase, text, re.IGNORECASE)
    ]


def disagreements(item: FormText) -> list[str]:
    """Return what the text states about a default or a bound that the table does not say."""
    found: list[str] = []
    setting = item.setting
    if setting is not None:
        default = setting.default if isinstance(setting, settings.NumberSetting) else None
        found += [
            f"{item.where} states the default {stated:g}, the table {default}"
            for stated in _stated_defaults(item.text)
            if default is None or stated != default
        ]
        for low, high in _RANGE.findall(item.text):
            bounds = (
                (setting.minimum, setting.maximum) if isinstance(setting, settings.NumberSetting) else None
            )
            if bounds != (_number(low), _number(high)):
                found.append(f"{item.where} states the range {low} to {high}, the table {bounds}")
        return found
    for sentence in re.split(r"(?<=[.;!?])\s+", item.text):
        if _states_a_default(sentence):
            found += _sentence_disagreements(item.where, sentence)
    return found


def _states_a_default(sentence: str) -> bool:
    return re.search(r"\bdefault", sentence, re.IGNORECASE) is not None or bool(_stated_defaults(sentence))


def _sentence_disagreements(where: str, sentence: str) -> list[str]:
    """Return what a sentence about no one setting states against the table, or states without naming whose."""
    found: list[str] = []
    named: list[tuple[int, int]] = []
    for match in _WINDOW_SPAN.finditer(sentence):
        named.append(match.span())
        frames, seconds = (_number(number) for number in match.groups())
        span = settings.WINDOW_FRAMES.default / settings.FPS.default
        if (frames, seconds) != (settings.WINDOW_FRAMES.default, span):
            found.append(f"{where} states {match.group(0)!r}, the table's window is {span:g} s")
    for pattern, setting in _NAMED_DEFAULTS:
        for match in pattern.finditer(sentence):
            named.append(match.span())
            if _number(match.group(1)) != setting.default:
                found.append(
                    f"{where} states {match.group(0)!r}, the table's {setting.key} is {setting.default}"
                )
    # Any other number of the sentence is a default whose setting the words do not name: it cannot be checked.
    found += [
        f"{where} states {match.group(0)} in {sentence!r} without naming its setting"
        for match in re.finditer(_NUMBER, sentence)
        if not any(start <= match.start() < end for start, end in named)
    ]
    return found


def test_every_form_text_agrees_with_the_settings_table() -> None:
    texts = list(all_form_texts())
    # Every table setting's help text was read, on the add and the change form.
    described = {
        (item.where.split(".step.")[0], item.setting.key) for item in texts if item.setting is not None
    }
    for form, table in _SUBENTRY_SETTINGS.items():
        assert {(f"config_subentries.{form}", setting.key) for setting in table} <= described
    assert [problem for item in texts for problem in disagreements(item)] == []


@pytest.mark.parametrize(
    ("setting", "text"),
    [
        # The camera form's text before the interval's default went from 2 s to 0.5 s.
        (
            None,
            "Defaults follow the reference Miloco pipeline: 6 frames over 3 seconds, checked every 2 seconds.",
        ),
        (None, "Defaults: 8 frames."),
        (None, "The defaults keep 20 saved frames."),
        (settings.CHECK_INTERVAL, "Least time between two checks (default 2 s)."),
        (settings.FPS, "Miloco's model was tuned on 3."),
        (settings.HEARTBEAT, "Checks of an unchanged scene run every 30 seconds."),
        (settings.SAVED_FRAMES_MAX, "How many saved frames this camera keeps (1 to 400)."),
        (settings.DETAIL, "Medium (default 2) is a good start."),
    ],
)
def test_a_drifted_text_is_found(setting: settings.Setting | None, text: str) -> None:
    assert disagreements(FormText("form", text, setting))


@pytest.mark.parametrize(
    ("setting", "text"),
    [
        (
            None,
            "Defaults follow the reference Miloco pipeline: 6 frames over 3 seconds, checked every 0.5 seconds.",
        ),
        (
            settings.CHECK_INTERVAL,
            "Least time between two checks (default 0.5 s, {check_interval_min} to 3,600).",
        ),
        (settings.FPS, "Miloco's model was tuned on 2."),
        (settings.HEARTBEAT, "Checks of an unchanged scene run every 60 seconds (0 turns it off)."),
        (settings.SAVED_FRAMES_MAX, "How many saved frames this camera keeps (1 to 500)."),
    ],
)
def test_a_text_that_agrees_passes(setting: settings.Setting | None, text: str) -> None:
    assert disagreements(FormText("form", text, setting)) == []


def test_the_detail_options_name_the_engine_budgets() -> None:
    options = TEXTS["selector"]["detail"]["options"]
    assert options.keys() == DETAIL_BUDGETS.keys()
    for detail, text in options.items():
        assert [_number(number) for number in re.findall(_NUMBER, text)] == [DETAIL_BUDGETS[detail]]


def test_the_texts_read_are_the_ones_shown() -> None:
    assert ENGLISH == TEXTS
