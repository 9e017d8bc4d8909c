"""Every tunable setting of a backend, camera and rule, defined once: default, bounds, unit and form section.

The config dataclasses, the flows' schemas and checks, and the diagnostics all read these descriptions,
so a default or a bound is changed here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
import math
from typing import Any, Final

from .const import (
    CAPTURE_SNAPSHOT,
    CAPTURE_STREAM,
    CONF_ACTIVITIES,
    CONF_API_KEY,
    CONF_CAPTURE_MODE,
    CONF_CHANGE_THRESHOLD,
    CONF_CHECK_INTERVAL,
    CONF_CONDITION,
    CONF_CONTEXT_SIZE,
    CONF_COOLDOWN,
    CONF_DETAIL,
    CONF_ENABLED,
    CONF_FPS,
    CONF_GESTURES,
    CONF_HEARTBEAT,
    CONF_HOLD_TIME,
    CONF_LABEL_THRESHOLD,
    CONF_MAX_CONCURRENT,
    CONF_MMPROJ_PATH,
    CONF_MODE,
    CONF_MODEL,
    CONF_MODEL_PATH,
    CONF_OFF_DELAY,
    CONF_ON_CHECKS,
    CONF_PRESENCE,
    CONF_PRESET,
    CONF_PROMPT_MODE,
    CONF_RULE_NAME,
    CONF_SAVE_FRAMES,
    CONF_SAVED_FRAMES_MAX,
    CONF_SPARE_SLOTS,
    CONF_THREADS,
    CONF_THRESHOLD,
    CONF_TIMEOUT,
    CONF_URL,
    CONF_WINDOW_FRAMES,
    MODE_EVENT,
    MODE_STATE,
    PRESET_CUSTOM,
    PROMPT_COMBINED,
    PROMPT_PER_CONDITION,
)
from .engine.backend_defaults import DEFAULT_CONTEXT_SIZE, EMBEDDED_TIMEOUT_S, REMOTE_TIMEOUT_S
from .engine.condition_text import MAX_CONDITION_CHARS
from .engine.frames import DEFAULT_DETAIL, DETAIL_BUDGETS
from .engine.gate import DEFAULT_THRESHOLD
from .engine.labels import ACTIVITIES, ALL_LABELS, GESTURES
from .engine.rules import DEFAULT_COOLDOWN_S, DEFAULT_OFF_DELAY_S, DEFAULT_ON_CHECKS
from .engine.window import DEFAULT_FPS, DEFAULT_FRAMES_PER_CHECK

# The form sections the settings are shown in (the subentries store them flat).
SECTION_CAPTURE: Final = "capture"
SECTION_TIMING: Final = "timing"


class InvalidSubentryData(ValueError):
    """A stored subentry lacks what it cannot work without (its camera, its condition); it cannot run."""

    def __init__(self, key: str, problem: str) -> None:
        """Name the key and what is wrong with it (never the value: it may be long or odd)."""
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class InvalidValue(ValueError):
    """A value entered for a setting is not acceptable; the message says why, for the log."""


class TextTooLong(InvalidValue):
    """A text is longer than its setting allows."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberSetting:
    """A number with a default, inclusive bounds, a step and a unit; `integer` ones are whole numbers."""

    key: str
    default: float | None
    minimum: float
    maximum: float
    step: float = 1
    unit: str | None = None
    integer: bool = False
    section: str | None = None
    # May be left out of a form: a setting newer than forms and scripts that users saved.
    optional: bool = False
    # The translated form error shown when a value is refused; its text states the bounds by placeholders.
    error: str

    def parse(self, value: Any) -> float:
        """Return the value as stored (an int for whole-number settings); raise InvalidValue otherwise."""
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidValue(f"{self.key} is not a number")
        if isinstance(value, int):
            number: float = value
        else:
            try:
                number = float(value)
            except (ValueError, OverflowError):
                raise InvalidValue(f"{self.key} is not a number") from None
        # Comparisons with nan are all false, so finiteness is checked before the bounds.
        if isinstance(number, float) and not math.isfinite(number):
            raise InvalidValue(f"{self.key} is not finite")
        if not self.minimum <= number <= self.maximum:
            raise InvalidValue(f"{self.key} is outside {self.minimum:g} to {self.maximum:g}")
        if not self.integer:
            return float(number)
        if number != int(number):
            raise InvalidValue(f"{self.key} is not a whole number")
        return int(number)

    def placeholders(self) -> dict[str, str]:
        """Return the bounds as the placeholders the error and help texts use."""
        return {f"{self.key}_min": f"{self.minimum:g}", f"{self.key}_max": f"{self.maximum:g}"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceSetting:
    """One option out of a fixed list (a translated select)."""

    key: str
    default: str
    options: tuple[str, ...]
    section: str | None = None
    # May be left out of a form: a setting newer than forms and scripts that users saved.
    optional: bool = False

    def parse(self, value: Any) -> str:
        """Return the option; raise InvalidValue for anything else."""
        if not isinstance(value, str) or value not in self.options:
            raise InvalidValue(f"{self.key} is not one of its options")
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelsSetting:
    """Any number of catalogue labels (a translated checklist), kept in catalogue order."""

    key: str
    options: tuple[str, ...]
    section: str | None = None

    @property
    def default(self) -> list[str]:
        """Return every label: a new camera looks for everything."""
        return list(self.options)

    def parse(self, value: Any) -> list[str]:
        """Return the known labels among the value, in catalogue order; raise InvalidValue for a non-list."""
        if not isinstance(value, list | tuple):
            raise InvalidValue(f"{self.key} is not a list")
        chosen = {item for item in value if isinstance(item, str)}
        return [option for option in self.options if option in chosen]


@dataclass(frozen=True, slots=True, kw_only=True)
class FlagSetting:
    """An on/off switch."""

    key: str
    default: bool
    section: str | None = None
    # May be left out of a form: a setting newer than forms and scripts that users saved.
    optional: bool = False

    def parse(self, value: Any) -> bool:
        """Return the flag; raise InvalidValue for anything but a bool."""
        if not isinstance(value, bool):
            raise InvalidValue(f"{self.key} is not on or off")
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class TextSetting:
    """Free text with a length cap; NUL and other control characters are refused."""

    key: str
    max_length: int
    multiline: bool = False

    def parse(self, value: Any) -> str:
        """Return the text as entered; raise InvalidValue when it is not text, too long, or has control bytes."""
        if not isinstance(value, str):
            raise InvalidValue(f"{self.key} is not text")
        if len(value) > self.max_length:
            raise TextTooLong(f"{self.key} is longer than {self.max_length} characters")
        allowed = "\n\t" if self.multiline else ""
        if any(ord(char) < 32 and char not in allowed for char in value) or "\x7f" in value:
            raise InvalidValue(f"{self.key} holds control characters")
        return value


type Setting = NumberSetting | ChoiceSetting | LabelsSetting | FlagSetting

# Backend entry (the engine states the defaults the evaluation toolkit shares).
REMOTE_TIMEOUT: Final = NumberSetting(
    key=CONF_TIMEOUT,
    default=REMOTE_TIMEOUT_S,
    minimum=5,
    maximum=300,
    unit="s",
    integer=True,
    error="timeout_out_of_range",
)
EMBEDDED_TIMEOUT: Final = NumberSetting(
    key=CONF_TIMEOUT,
    default=EMBEDDED_TIMEOUT_S,
    minimum=5,
    maximum=1200,
    unit="s",
    integer=True,
    error="timeout_out_of_range",
)
MAX_CONCURRENT: Final = NumberSetting(
    key=CONF_MAX_CONCURRENT,
    default=2,
    minimum=1,
    maximum=16,
    integer=True,
    error="max_concurrent_out_of_range",
)
# Empty lets llama.cpp choose.
THREADS: Final = NumberSetting(
    key=CONF_THREADS, default=None, minimum=1, maximum=64, integer=True, error="threads_out_of_range"
)
# Below 4096 tokens a check hardly fits.
CONTEXT_SIZE: Final = NumberSetting(
    key=CONF_CONTEXT_SIZE,
    default=DEFAULT_CONTEXT_SIZE,
    minimum=4096,
    maximum=131072,
    integer=True,
    error="context_size_out_of_range",
)

URL_TEXT: Final = TextSetting(key=CONF_URL, max_length=2048)
API_KEY_TEXT: Final = TextSetting(key=CONF_API_KEY, max_length=4096)
MODEL_TEXT: Final = TextSetting(key=CONF_MODEL, max_length=256)
# Linux's PATH_MAX; longer paths cannot be opened anyway.
MODEL_PATH_TEXT: Final = TextSetting(key=CONF_MODEL_PATH, max_length=4096)
MMPROJ_PATH_TEXT: Final = TextSetting(key=CONF_MMPROJ_PATH, max_length=4096)

# Camera subentry: the frame rate and frames per check are the window the model was tuned on (the engine's
# defaults); Miloco's reference pipeline checked every 2 s, here a changing scene is checked as often as it may.
GESTURES_SETTING: Final = LabelsSetting(key=CONF_GESTURES, options=tuple(label.key for label in GESTURES))
ACTIVITIES_SETTING: Final = LabelsSetting(
    key=CONF_ACTIVITIES, options=tuple(label.key for label in ACTIVITIES)
)
PRESENCE: Final = FlagSetting(key=CONF_PRESENCE, default=True)
CAPTURE_MODE: Final = ChoiceSetting(
    key=CONF_CAPTURE_MODE,
    default=CAPTURE_SNAPSHOT,
    options=(CAPTURE_SNAPSHOT, CAPTURE_STREAM),
    section=SECTION_CAPTURE,
)
FPS: Final = NumberSetting(
    key=CONF_FPS,
    default=DEFAULT_FPS,
    minimum=0.1,
    maximum=10.0,
    step=0.1,
    unit="fps",
    section=SECTION_CAPTURE,
    error="fps_out_of_range",
)
WINDOW_FRAMES: Final = NumberSetting(
    key=CONF_WINDOW_FRAMES,
    default=DEFAULT_FRAMES_PER_CHECK,
    minimum=1,
    maximum=16,
    integer=True,
    section=SECTION_CAPTURE,
    error="window_out_of_range",
)
# The least time between the starts of two checks of a camera. While the scene keeps changing, the next check
# starts as soon as the previous one answers (never queued); raising this saves model time.
CHECK_INTERVAL: Final = NumberSetting(
    key=CONF_CHECK_INTERVAL,
    default=0.5,
    minimum=0.5,
    maximum=3600.0,
    step=0.1,
    unit="s",
    section=SECTION_CAPTURE,
    error="interval_out_of_range",
)
# While a check runs and the scene moves, a second check may go out on a model slot nobody waits for.
SPARE_SLOTS: Final = FlagSetting(key=CONF_SPARE_SLOTS, default=True, section=SECTION_CAPTURE, optional=True)
DETAIL: Final = ChoiceSetting(
    key=CONF_DETAIL, default=DEFAULT_DETAIL, options=tuple(DETAIL_BUDGETS), section=SECTION_CAPTURE
)
# Percent of the picture that must change to open the gate: the form shows the engine's default fraction.
CHANGE_THRESHOLD: Final = NumberSetting(
    key=CONF_CHANGE_THRESHOLD,
    default=DEFAULT_THRESHOLD * 100,
    minimum=0.0,
    maximum=100.0,
    step=0.1,
    unit="%",
    section=SECTION_CAPTURE,
    error="change_threshold_out_of_range",
)
HEARTBEAT: Final = NumberSetting(
    key=CONF_HEARTBEAT,
    default=60,
    minimum=0,
    maximum=3600,
    unit="s",
    integer=True,
    section=SECTION_CAPTURE,
    error="duration_out_of_range",
)
HOLD_TIME: Final = NumberSetting(
    key=CONF_HOLD_TIME,
    default=15,
    minimum=0,
    maximum=3600,
    unit="s",
    integer=True,
    section=SECTION_CAPTURE,
    error="duration_out_of_range",
)
PROMPT_MODE: Final = ChoiceSetting(
    key=CONF_PROMPT_MODE,
    default=PROMPT_COMBINED,
    options=(PROMPT_COMBINED, PROMPT_PER_CONDITION),
    section=SECTION_CAPTURE,
)
# Key frames: the frames of the checks that fired may be kept in the media folder, a bounded number per camera.
SAVE_FRAMES: Final = FlagSetting(key=CONF_SAVE_FRAMES, default=False, section=SECTION_CAPTURE, optional=True)
SAVED_FRAMES_MAX: Final = NumberSetting(
    key=CONF_SAVED_FRAMES_MAX,
    default=20,
    minimum=1,
    maximum=500,
    integer=True,
    section=SECTION_CAPTURE,
    error="saved_frames_out_of_range",
    optional=True,
)
# How sure the model must be, as P(yes) in percent, where the server gives log-probabilities. Empty (the default)
# keeps the model's own yes/no, so nothing changes for whoever leaves it; 0 and 100 would be "always" and "never".
LABEL_THRESHOLD: Final = NumberSetting(
    key=CONF_LABEL_THRESHOLD,
    default=None,
    minimum=1,
    maximum=99,
    step=1,
    unit="%",
    section=SECTION_CAPTURE,
    error="label_threshold_out_of_range",
    optional=True,
)
# A window longer than this holds too little of "now" to judge it.
MAX_WINDOW_SECONDS: Final = 60.0

# In the order the form shows them (the camera entity and the motion sensor are entity fields of the flow). A new
# setting goes here and into strings.json (label, help text, error); the forms, their checks, the defaults and
# the diagnostics follow, and CameraConfig holds its value in the one field that `reads` it.
CAMERA_SETTINGS: Final[tuple[Setting, ...]] = (
    GESTURES_SETTING,
    ACTIVITIES_SETTING,
    PRESENCE,
    CAPTURE_MODE,
    FPS,
    WINDOW_FRAMES,
    CHECK_INTERVAL,
    SPARE_SLOTS,
    DETAIL,
    CHANGE_THRESHOLD,
    HEARTBEAT,
    HOLD_TIME,
    PROMPT_MODE,
    SAVE_FRAMES,
    SAVED_FRAMES_MAX,
    LABEL_THRESHOLD,
)

# AI Task subentry: how much detail the task's images keep, as a camera's checks do.
AI_TASK_SETTINGS: Final[tuple[Setting, ...]] = (DETAIL,)

# Rule subentry: the timing defaults are the engine's.
RULE_NAME_TEXT: Final = TextSetting(key=CONF_RULE_NAME, max_length=100)
# Longer than any valid condition, so the condition check can say "too long" in its own words.
CONDITION_TEXT: Final = TextSetting(key=CONF_CONDITION, max_length=MAX_CONDITION_CHARS * 4, multiline=True)
PRESET: Final = ChoiceSetting(
    key=CONF_PRESET, default=PRESET_CUSTOM, options=(PRESET_CUSTOM, *(label.key for label in ALL_LABELS))
)
MODE: Final = ChoiceSetting(key=CONF_MODE, default=MODE_EVENT, options=(MODE_EVENT, MODE_STATE))
COOLDOWN: Final = NumberSetting(
    key=CONF_COOLDOWN,
    default=DEFAULT_COOLDOWN_S,
    minimum=0,
    maximum=86400,
    unit="s",
    integer=True,
    section=SECTION_TIMING,
    error="timing_out_of_range",
)
ON_CHECKS: Final = NumberSetting(
    key=CONF_ON_CHECKS,
    default=DEFAULT_ON_CHECKS,
    minimum=1,
    maximum=20,
    integer=True,
    section=SECTION_TIMING,
    error="timing_out_of_range",
)
OFF_DELAY: Final = NumberSetting(
    key=CONF_OFF_DELAY,
    default=DEFAULT_OFF_DELAY_S,
    minimum=0,
    maximum=3600,
    unit="s",
    integer=True,
    section=SECTION_TIMING,
    error="timing_out_of_range",
)
ENABLED: Final = FlagSetting(key=CONF_ENABLED, default=True)
# The rule's own sensitivity, shown with its timing: as LABEL_THRESHOLD, for the rule's condition.
THRESHOLD: Final = NumberSetting(
    key=CONF_THRESHOLD,
    default=None,
    minimum=1,
    maximum=99,
    step=1,
    unit="%",
    section=SECTION_TIMING,
    error="threshold_out_of_range",
    optional=True,
)

RULE_SETTINGS: Final[tuple[Setting, ...]] = (PRESET, MODE, COOLDOWN, ON_CHECKS, OFF_DELAY, THRESHOLD, ENABLED)


def defaults(settings: Iterable[Setting]) -> dict[str, Any]:
    """Return the default of each setting that has one, by key."""
    return {setting.key: setting.default for setting in settings if setting.default is not None}


def section_keys(settings: Iterable[Setting], section: str) -> tuple[str, ...]:
    """Return the keys of the settings shown in a form section."""
    return tuple(setting.key for setting in settings if setting.section == section)


def placeholders(settings: Iterable[Setting | TextSetting]) -> dict[str, str]:
    """Return the bound placeholders of the number settings, for a form's error and help texts."""
    values: dict[str, str] = {}
    for setting in settings:
        if isinstance(setting, NumberSetting):
            values.update(setting.placeholders())
    return values


def stored_value(setting: Setting, data: Mapping[str, Any]) -> tuple[Any, str | None]:
    """Return a stored setting, or its default with the problem when the value is missing or not valid.

    Stored data can come from an older version or a hand edit: a bad value never stops the rest from running.
    """
    if setting.key not in data:
        return setting.default, None
    try:
        return setting.parse(data[setting.key]), None
    except InvalidValue as err:
        return setting.default, str(err)


def form_errors(settings: Iterable[Setting | TextSetting], data: dict[str, Any]) -> dict[str, str]:
    """Parse each entered number and text in place; return the translated error of each refused one, by field.

    Choices, labels and flags are checked by their selectors. A setting in a section reports on its section
    (where the form shows it), the first problem only.
    """
    errors: dict[str, str] = {}
    for setting in settings:
        if setting.key not in data or not isinstance(setting, NumberSetting | TextSetting):
            continue
        try:
            data[setting.key] = setting.parse(data[setting.key])
        except TextTooLong:
            errors.setdefault(setting.key, "text_too_long")
        except InvalidValue:
            if isinstance(setting, TextSetting):
                errors.setdefault(setting.key, "invalid_text")
            else:
                errors.setdefault(setting.section or setting.key, setting.error)
    return errors
