"""The settings an evaluation compares: prompt mode, answer format, frames, image-token budget, thinking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..frames import DEFAULT_DETAIL, DETAIL_BUDGETS
from ..prompt import ANSWER_FORMATS, ANSWER_FULL, CheckSpec
from ..window import DEFAULT_FRAMES_PER_CHECK
from .errors import EvaluationError

MODE_COMBINED: Final = "combined"
MODE_PER_CONDITION: Final = "per_condition"
MODES: Final = (MODE_COMBINED, MODE_PER_CONDITION)
# The integration's defaults: the window MiMo-VL-Miloco was tuned on, and the medium detail preset.
DEFAULT_FRAMES: Final = DEFAULT_FRAMES_PER_CHECK
MAX_FRAMES: Final = 32
_SWITCH: Final = {
    "on": True,
    "true": True,
    "yes": True,
    "1": True,
    "off": False,
    "false": False,
    "no": False,
    "0": False,
}
_KEYS: Final = ("mode", "answer", "frames", "detail", "budget", "thinking", "name")


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """One way of running the checks; every clip is evaluated once per setting."""

    mode: str = MODE_COMBINED
    # The combined answer's shape: every yes/no field ("full") or only what holds ("compact").
    answer: str = ANSWER_FULL
    frames: int = DEFAULT_FRAMES
    # The detail preset, or None when an explicit token budget was given.
    detail: str | None = DEFAULT_DETAIL
    budget: int = DETAIL_BUDGETS[DEFAULT_DETAIL]
    thinking: bool = False
    name: str = ""

    @property
    def label(self) -> str:
        """Return the column title: the given name, or a short summary of the values."""
        if self.name:
            return self.name
        size = self.detail if self.detail is not None else f"{self.budget} tok"
        mode = self.mode if self.answer == ANSWER_FULL else f"{self.mode} {self.answer}"
        return f"{mode} · {self.frames} fr · {size}{' · think' if self.thinking else ''}"

    def describe(self) -> str:
        """Return the setting in --setting syntax, every value spelled out."""
        size = f"detail={self.detail}" if self.detail is not None else f"budget={self.budget}"
        # The default format is left out, so that settings written before it existed read the same.
        answer = "" if self.answer == ANSWER_FULL else f",answer={self.answer}"
        return f"mode={self.mode}{answer},frames={self.frames},{size},thinking={'on' if self.thinking else 'off'}"

    def check_spec(self, gestures: tuple[str, ...], activities: tuple[str, ...], fps: float) -> CheckSpec:
        """Return what each check asks under this setting, for a clip captured at `fps`."""
        return CheckSpec(
            gestures=gestures,
            activities=activities,
            fps=fps,
            thinking=self.thinking,
            answer_format=self.answer,
        )


def parse_setting(text: str) -> Setting:
    """Return the setting in 'mode=combined,frames=6,detail=medium,thinking=off' (any subset, any order)."""
    values: dict[str, str] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in _KEYS:
            raise EvaluationError(f"setting {text!r}: expected key=value with a key among {', '.join(_KEYS)}")
        if key in values:
            raise EvaluationError(f"setting {text!r}: {key} is given twice")
        values[key] = value
    if "detail" in values and "budget" in values:
        raise EvaluationError(f"setting {text!r}: give detail or budget, not both")
    mode = values.get("mode", MODE_COMBINED)
    if mode not in MODES:
        raise EvaluationError(f"setting {text!r}: mode must be {' or '.join(MODES)}")
    answer = values.get("answer", ANSWER_FULL)
    if answer not in ANSWER_FORMATS:
        raise EvaluationError(f"setting {text!r}: answer must be {' or '.join(ANSWER_FORMATS)}")
    if answer != ANSWER_FULL and mode != MODE_COMBINED:
        raise EvaluationError(f"setting {text!r}: answer={answer} needs mode={MODE_COMBINED}")
    detail: str | None = values.get("detail", DEFAULT_DETAIL)
    budget = DETAIL_BUDGETS.get(detail or "", 0)
    if "budget" in values:
        detail, budget = None, _integer(values["budget"], "budget", text, 1, 1 << 20)
    elif detail not in DETAIL_BUDGETS:
        raise EvaluationError(f"setting {text!r}: detail must be one of {', '.join(DETAIL_BUDGETS)}")
    thinking = _SWITCH.get(values.get("thinking", "off").lower())
    if thinking is None:
        raise EvaluationError(f"setting {text!r}: thinking must be on or off")
    return Setting(
        mode=mode,
        answer=answer,
        frames=_integer(values.get("frames", str(DEFAULT_FRAMES)), "frames", text, 1, MAX_FRAMES),
        detail=detail,
        budget=budget,
        thinking=thinking,
        name=values.get("name", ""),
    )


def _integer(value: str, key: str, text: str, low: int, high: int) -> int:
    """Return an integer in [low, high] or raise EvaluationError naming the setting."""
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise EvaluationError(f"setting {text!r}: {key} must be a whole number from {low} to {high}")
    return number
