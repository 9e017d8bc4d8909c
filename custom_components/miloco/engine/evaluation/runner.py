"""Run every clip of a set through a backend once per setting, one check at a time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
import time
from typing import Final

from ..backends.base import VisionBackend
from ..backends.errors import (
    BackendClosed,
    BackendError,
    CannotConnect,
    InvalidAuth,
    ModelLoadError,
    ModelNotFound,
    ModelRejectsImages,
    RuntimeMissing,
)
from ..frames import min_budget, open_image
from ..parse import ReplyParseError
from ..window import Frame
from .check import ask, select_window
from .clips import Clip
from .errors import EvaluationError
from .settings import Setting

# Failures that would fail every later check the same way: the run stops instead of scoring nonsense.
FATAL_ERRORS: Final = (
    CannotConnect,
    InvalidAuth,
    ModelNotFound,
    ModelRejectsImages,
    ModelLoadError,
    RuntimeMissing,
    BackendClosed,
)
_MAX_ERROR_CHARS: Final = 160


@dataclass(frozen=True, slots=True, kw_only=True)
class ClipOutcome:
    """One clip under one setting: the truth, the answer, and the cost of the check."""

    clip: str
    truth: frozenset[str]
    predicted: frozenset[str]
    frames_sent: int
    image_tokens: int
    requests: int
    # Wall-clock time of the whole check: resizing, every request and the parsing.
    latency_s: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reason: str | None = None
    # Why the check failed (it then counts as seeing nothing), or None.
    error: str | None = None
    # P(yes) by class, where the check gave one (per-condition mode, a server with log-probabilities).
    probabilities: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingRun:
    """Every clip's outcome under one setting, in clip-set order."""

    setting: Setting
    outcomes: tuple[ClipOutcome, ...]


type Progress = Callable[[Setting, ClipOutcome], None]


def check_budgets(
    clips: Sequence[Clip], footage: Mapping[str, Sequence[Frame]], settings: Sequence[Setting]
) -> None:
    """Raise EvaluationError when a setting's token budget cannot hold a clip's window, before any model call."""
    for setting in settings:
        for clip in clips:
            window = select_window(footage[clip.name], setting, clip.fps)
            width, height = open_image(window[-1].jpeg).size
            needed = min_budget(width / height, len(window))
            if setting.budget < needed:
                raise EvaluationError(
                    f"setting {setting.describe()}: {setting.budget} tokens cannot hold the {len(window)} frames "
                    f"of clip {clip.name} (at least {needed})"
                )


async def evaluate(
    backend: VisionBackend,
    clips: Sequence[Clip],
    footage: Mapping[str, Sequence[Frame]],
    settings: Sequence[Setting],
    *,
    gestures: tuple[str, ...],
    activities: tuple[str, ...],
    progress: Progress | None = None,
) -> list[SettingRun]:
    """Return one run per setting; raise EvaluationError when the backend fails in a way every check would."""
    classes = frozenset(gestures) | frozenset(activities)
    runs: list[SettingRun] = []
    for setting in settings:
        outcomes: list[ClipOutcome] = []
        for clip in clips:
            outcome = await _check_clip(
                backend, clip, footage[clip.name], setting, gestures=gestures, activities=activities
            )
            outcome = _restricted(outcome, classes)
            outcomes.append(outcome)
            if progress is not None:
                progress(setting, outcome)
        runs.append(SettingRun(setting=setting, outcomes=tuple(outcomes)))
    return runs


async def _check_clip(
    backend: VisionBackend,
    clip: Clip,
    frames: Sequence[Frame],
    setting: Setting,
    *,
    gestures: tuple[str, ...],
    activities: tuple[str, ...],
) -> ClipOutcome:
    """Return the outcome of one check at the clip's end; a failed check sees nothing."""
    spec = setting.check_spec(gestures, activities, clip.fps)
    window = select_window(frames, setting, clip.fps)
    started = time.monotonic()
    try:
        answer = await ask(backend, spec, window, setting)
    except FATAL_ERRORS as err:
        raise EvaluationError(f"the backend failed on clip {clip.name}: {_short(err)}") from None
    except ValueError as err:
        if not isinstance(err, ReplyParseError):
            # The token budget cannot hold the frames (plan_sizes): a setting error, not a model error.
            raise EvaluationError(f"setting {setting.describe()}: {err}") from None
        return _failed(clip, window, started, f"unreadable reply: {_short(err)}")
    except BackendError as err:
        return _failed(clip, window, started, f"{err.reason}: {_short(err)}")
    observation = answer.observation
    return ClipOutcome(
        clip=clip.name,
        truth=clip.labels,
        predicted=observation.gestures | observation.activities,
        frames_sent=answer.frames_sent,
        image_tokens=answer.image_tokens,
        requests=answer.requests,
        latency_s=time.monotonic() - started,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        reason=observation.reason,
        probabilities=dict(observation.label_probabilities),
    )


def _failed(clip: Clip, window: Sequence[Frame], started: float, error: str) -> ClipOutcome:
    """Return the outcome of a check that got no usable answer."""
    return ClipOutcome(
        clip=clip.name,
        truth=clip.labels,
        predicted=frozenset(),
        frames_sent=len(window),
        image_tokens=0,
        requests=0,
        latency_s=time.monotonic() - started,
        error=error,
    )


def _restricted(outcome: ClipOutcome, classes: frozenset[str]) -> ClipOutcome:
    """Return the outcome with truth and answer limited to the evaluated classes."""
    return replace(
        outcome,
        truth=outcome.truth & classes,
        predicted=outcome.predicted & classes,
        probabilities={key: p for key, p in outcome.probabilities.items() if key in classes},
    )


def _short(err: Exception) -> str:
    """Return an error's message on one short line."""
    return " ".join(str(err).split())[:_MAX_ERROR_CHARS] or type(err).__name__
