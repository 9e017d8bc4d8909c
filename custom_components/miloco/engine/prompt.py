"""Request building: what a check asks the model, the schema of its answer, and how answers are read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
import math
from typing import Any, Final

from .answers import ANSWER_SCHEMA
from .backends.base import VisionRequest
from .labels import ACTIVITIES, GESTURES, PRESENCE, Label, LabelKind
from .parse import YES_NO, is_yes, yes_no_schema
from .window import DEFAULT_FPS

LEAD_IN: Final = "Image sequence is as follows:"
REASON_MAX_CHARS: Final = 200

# Reply budgets: a direct JSON answer is short; a chain of thought needs room before it.
_COMBINED_TOKENS: Final = 256
_TOKENS_PER_RULE: Final = 8
_CONDITION_TOKENS: Final = 32
_THINKING_TOKENS: Final = 2048

_RULE_PREFIX: Final = "rule:"

# How a combined check's answer is shaped: every yes/no field (the default), or only the keys that hold.
ANSWER_FULL: Final = "full"
ANSWER_COMPACT: Final = "compact"
ANSWER_FORMATS: Final = (ANSWER_FULL, ANSWER_COMPACT)
HOLDS_FIELD: Final = "holds"

# A free question (the analyze service, AI Task): the reply budget.
_QUESTION_TOKENS: Final = 1024


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A natural-language rule on a camera: its stable id and the condition, phrased as a state."""

    rule_id: str
    condition_text: str
    # Which configuration of the rule asked: a rule rebuilt by an edit gets a new revision, so that an answer
    # to the question it asked before the edit is never taken for an answer to the new one.
    revision: int = 0
    # The P(yes) at which the condition holds; None: the model's own yes/no decides (also without a P).
    threshold: float | None = None

    def __post_init__(self) -> None:
        """Refuse a threshold outside (0, 1]."""
        _check_threshold(self.threshold)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckSpec:
    """What one camera's checks ask: the labels to look for, the rules to judge, and how."""

    gestures: tuple[str, ...] = ()
    activities: tuple[str, ...] = ()
    presence: bool = False
    rules: tuple[RuleSpec, ...] = ()
    fps: float = DEFAULT_FPS
    thinking: bool = False
    # The P(yes) at which a gesture, activity or presence counts as seen, where the reply gives one; None: the
    # model's own yes/no.
    label_threshold: float | None = None
    # The combined answer's shape (ANSWER_FORMATS); per-condition checks always answer {"result": …}.
    answer_format: str = ANSWER_FULL

    def __post_init__(self) -> None:
        """Refuse unknown or misplaced label keys, duplicate rules, a non-positive frame rate, a bad threshold."""
        _check_threshold(self.label_threshold)
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, not {self.answer_format!r}")
        _check_keys(self.gestures, LabelKind.GESTURE)
        _check_keys(self.activities, LabelKind.ACTIVITY)
        ids = [rule.rule_id for rule in self.rules]
        if len(set(ids)) != len(ids) or not all(ids):
            raise ValueError(f"rule ids must be unique and non-empty: {ids}")
        if not all(_clean(rule.condition_text) for rule in self.rules):
            raise ValueError("every rule needs a condition")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be positive, not {self.fps}")

    @property
    def is_empty(self) -> bool:
        """Return True when there is nothing to ask."""
        return not (self.gestures or self.activities or self.presence or self.rules)

    def enabled_gestures(self) -> tuple[Label, ...]:
        """Return the enabled gestures in catalogue order (stable prompts whatever the config order)."""
        return tuple(label for label in GESTURES if label.key in self.gestures)

    def enabled_activities(self) -> tuple[Label, ...]:
        """Return the enabled activities in catalogue order."""
        return tuple(label for label in ACTIVITIES if label.key in self.activities)

    def rule_aliases(self) -> dict[str, RuleSpec]:
        """Return the short names the model sees (r1, r2, …) for the rules, in spec order."""
        # Long rule ids (config subentry ids) are easy for a model to garble; "r3" is not.
        return {f"r{index}": rule for index, rule in enumerate(self.rules, 1)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """What one check saw; only labels and rules of the spec ever appear here."""

    gestures: frozenset[str] = frozenset()
    activities: frozenset[str] = frozenset()
    # None when presence was not asked (or its answer is missing).
    person_present: bool | None = None
    # Rule id → whether the condition holds; a rule without an answer is absent.
    rules: Mapping[str, bool] = field(default_factory=dict)
    reason: str | None = None
    # P(yes) of each answer whose log-probabilities the server gave (absent otherwise): by rule id, of presence,
    # and by gesture or activity key (per-condition mode only: the combined reply lists labels without a yes/no).
    rule_probabilities: Mapping[str, float] = field(default_factory=dict)
    presence_probability: float | None = None
    label_probabilities: Mapping[str, float] = field(default_factory=dict)


def decide(said_yes: bool, probability: float | None, threshold: float | None) -> bool:
    """Return whether a condition holds: P(yes) ≥ threshold when both are known, else the model's yes/no."""
    if threshold is None or probability is None:
        return said_yes
    return probability >= threshold


@dataclass(frozen=True, slots=True, kw_only=True)
class QuestionSpec:
    """A free question about a camera's frames, answered in the JSON object `json_schema` describes."""

    question: str
    json_schema: Mapping[str, Any] = field(default_factory=lambda: ANSWER_SCHEMA)
    fps: float = DEFAULT_FPS
    thinking: bool = False

    def __post_init__(self) -> None:
        """Refuse an empty question and a non-positive frame rate."""
        if not self.question.strip():
            raise ValueError("the question is empty")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be positive, not {self.fps}")


def _check_threshold(threshold: float | None) -> None:
    """Raise ValueError unless the threshold is None or a probability in (0, 1]."""
    if threshold is not None and not (math.isfinite(threshold) and 0 < threshold <= 1):
        raise ValueError(f"a threshold is a probability in (0, 1], not {threshold}")


def _check_keys(keys: tuple[str, ...], kind: LabelKind) -> None:
    """Raise ValueError unless every key names a distinct label of this kind."""
    known = {label.key for label in (GESTURES if kind is LabelKind.GESTURE else ACTIVITIES)}
    unknown = [key for key in keys if key not in known]
    if unknown or len(set(keys)) != len(keys):
        raise ValueError(f"invalid {kind} keys {list(keys)}")


def _clean(text: str) -> str:
    """Return a condition without surrounding space or a final period (the prompt adds its own)."""
    return text.strip().rstrip(".").strip()


def _number(value: float) -> str:
    """Return a number the way a person writes it: 2, 0.5, 2.5."""
    return f"{value:g}"


def _require_question(spec: CheckSpec) -> None:
    """Raise ValueError for a spec that asks nothing."""
    if spec.is_empty:
        raise ValueError("the check asks for nothing: enable a label or add a rule")


# --- one combined request per check ---------------------------------------------------------------------


def combined_schema(spec: CheckSpec) -> dict[str, Any]:
    """Return the JSON schema of the combined answer; labels and rules not in the spec are not in it."""
    properties: dict[str, Any] = {}
    for name, labels in (("gestures", spec.enabled_gestures()), ("activities", spec.enabled_activities())):
        if labels:
            keys = [label.key for label in labels]
            items = {"type": "string", "enum": keys}
            properties[name] = {"type": "array", "items": items, "maxItems": len(keys)}
    if spec.presence:
        properties["person_present"] = _yes_no()
    aliases = spec.rule_aliases()
    if aliases:
        properties["rules"] = {
            "type": "object",
            "properties": {alias: _yes_no() for alias in aliases},
            "required": list(aliases),
            "additionalProperties": False,
        }
    required = list(properties)
    properties["reason"] = {"type": "string", "maxLength": REASON_MAX_CHARS}
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _yes_no() -> dict[str, Any]:
    """Return a fresh copy of the yes/no enum schema (callers may serialise or extend it)."""
    return {"type": YES_NO["type"], "enum": list(YES_NO["enum"])}


def combined_system_prompt(spec: CheckSpec, n_frames: int) -> str:
    """Return the system prompt of the combined check; the same for every check of a camera."""
    lines = _camera_lines(spec, n_frames)
    for title, labels in (("Gestures", spec.enabled_gestures()), ("Activities", spec.enabled_activities())):
        if labels:
            lines.append(f"{title} to look for (report their keys):")
            lines.extend(f"- {label.key} ({label.prompt_name}): {label.description}" for label in labels)
    if spec.presence:
        lines.append(f'person_present: "yes" when {PRESENCE.description}, otherwise "no".')
    if spec.rules:
        lines.append(
            'Each rule r1, r2, … is a condition: answer "yes" when the images meet it, otherwise "no".'
        )
    lines.append("Reply with one JSON object that matches the requested format, and nothing else.")
    return "\n".join(lines)


def _camera_lines(spec: CheckSpec, n_frames: int) -> list[str]:
    """Return the opening of a combined check's system prompt (either format): the role and the frames."""
    return [
        "You are the vision assistant of a smart-home camera.",
        f"You receive {n_frames} frames taken over {_number(n_frames / spec.fps)} seconds "
        f"({_number(spec.fps)} frames per second), oldest first; the last frame is the present moment.",
        "Report only what is clearly visible in the most recent frames. When unsure, leave it out.",
    ]


def combined_question(spec: CheckSpec) -> str:
    """Return the question that follows the frames: what to report, the rules, the reply format."""
    parts: list[str] = []
    fields: list[str] = []
    gestures, activities = spec.enabled_gestures(), spec.enabled_activities()
    if gestures:
        parts.append("Which of the gestures are shown?")
        fields.append(f'"gestures": [zero or more of {", ".join(label.key for label in gestures)}]')
    if activities:
        parts.append("Which of the activities are going on?")
        fields.append(f'"activities": [zero or more of {", ".join(label.key for label in activities)}]')
    if spec.presence:
        parts.append("Is a person present?")
        fields.append('"person_present": "yes" or "no"')
    aliases = spec.rule_aliases()
    if aliases:
        parts.append("Do the images meet each of the following conditions?")
        parts.extend(f"{alias}: {_clean(rule.condition_text)}." for alias, rule in aliases.items())
        fields.append('"rules": {' + ", ".join(f'"{alias}": "yes" or "no"' for alias in aliases) + "}")
    fields.append(f'"reason": a few words on what you see (at most {REASON_MAX_CHARS} characters)')
    parts.append("Reply with JSON: {" + ", ".join(fields) + "}.")
    return "\n".join(parts)


def build_combined_request(spec: CheckSpec, frames: Sequence[bytes]) -> VisionRequest:
    """Return ONE request that asks for every label and rule of the spec about these frames, in its format."""
    _require_question(spec)
    # The same budget for both formats: a compact answer is shorter, and only needs less.
    max_tokens = _COMBINED_TOKENS + _TOKENS_PER_RULE * len(spec.rules)
    compact = spec.answer_format == ANSWER_COMPACT
    return VisionRequest(
        system_prompt=(compact_system_prompt if compact else combined_system_prompt)(spec, len(frames)),
        lead_in=LEAD_IN,
        frames=tuple(frames),
        question=compact_question(spec) if compact else combined_question(spec),
        json_schema=compact_schema(spec) if compact else combined_schema(spec),
        max_tokens=_THINKING_TOKENS + max_tokens if spec.thinking else max_tokens,
        thinking=spec.thinking,
    )


def interpret_combined(
    answer: Mapping[str, Any],
    spec: CheckSpec,
    *,
    presence_probability: float | None = None,
    rule_probabilities: Mapping[str, float] | None = None,
) -> Observation:
    """Return the observation in a parsed combined answer, keeping only the spec's labels and rules.

    With the probabilities read from the reply's tokens (by rule id), presence and each rule with a threshold
    hold when their P(yes) reaches it; the gestures and activities are the listed ones (they have no yes/no).
    """
    gestures = {label.key for label in spec.enabled_gestures()}
    activities = {label.key for label in spec.enabled_activities()}
    person = answer.get("person_present")
    rule_answers = answer.get("rules")
    p_rules = {
        rule.rule_id: rule_probabilities[rule.rule_id]
        for rule in spec.rules
        if rule_probabilities and rule.rule_id in rule_probabilities
    }
    rules: dict[str, bool] = {}
    if isinstance(rule_answers, Mapping):
        rules = {
            rule.rule_id: decide(is_yes(rule_answers[alias]), p_rules.get(rule.rule_id), rule.threshold)
            for alias, rule in spec.rule_aliases().items()
            if alias in rule_answers
        }
    present = spec.presence and person is not None
    p_presence = presence_probability if present else None
    reason = answer.get("reason")
    return Observation(
        gestures=frozenset(_listed(answer.get("gestures")) & gestures),
        activities=frozenset(_listed(answer.get("activities")) & activities),
        person_present=decide(is_yes(person), p_presence, spec.label_threshold) if present else None,
        rules=rules,
        reason=(reason.strip() or None) if isinstance(reason, str) else None,
        rule_probabilities={key: p for key, p in p_rules.items() if key in rules},
        presence_probability=p_presence,
    )


def _listed(value: object) -> set[str]:
    """Return the strings in a JSON array (anything else counts as an empty list)."""
    return {item for item in value if isinstance(item, str)} if isinstance(value, list) else set()


# --- the compact combined answer: only the keys that hold ----------------------------------------------


def compact_keys(spec: CheckSpec) -> dict[str, str]:
    """Return the keys a compact answer may list, each with what it stands for, in prompt order.

    Gestures and activities by their keys, presence as "person", rules by their aliases (r1, r2, …): the
    label catalogue has no key that looks like a rule alias or "person" among gestures and activities.
    """
    keys = {label.key: label.description for label in (*spec.enabled_gestures(), *spec.enabled_activities())}
    if spec.presence:
        keys[PRESENCE.key] = PRESENCE.description
    keys.update({alias: _clean(rule.condition_text) for alias, rule in spec.rule_aliases().items()})
    return keys


def compact_schema(spec: CheckSpec) -> dict[str, Any]:
    """Return the schema of the compact answer: the keys that hold, each among the spec's, and a reason."""
    keys = list(compact_keys(spec))
    return {
        "type": "object",
        "properties": {
            HOLDS_FIELD: {"type": "array", "items": {"type": "string", "enum": keys}, "maxItems": len(keys)},
            "reason": {"type": "string", "maxLength": REASON_MAX_CHARS},
        },
        "required": [HOLDS_FIELD],
        "additionalProperties": False,
    }


def compact_system_prompt(spec: CheckSpec, n_frames: int) -> str:
    """Return the system prompt of a compact combined check: the frames, then every key and its meaning."""
    lines = [
        *_camera_lines(spec, n_frames),
        "Each key below names something that may hold; list the keys that hold, and only those:",
    ]
    lines.extend(f"- {key}: {meaning}" for key, meaning in compact_keys(spec).items())
    lines.append("Reply with one JSON object that matches the requested format, and nothing else.")
    return "\n".join(lines)


def compact_question(spec: CheckSpec) -> str:
    """Return the question of a compact combined check: which keys hold, and the reply format."""
    keys = ", ".join(compact_keys(spec))
    return "\n".join(
        [
            "Which of the keys hold in the images?",
            f'Reply with JSON: {{"{HOLDS_FIELD}": [zero or more of {keys}], '
            f'"reason": a few words on what you see (at most {REASON_MAX_CHARS} characters)}}.',
        ]
    )


def interpret_compact(answer: Mapping[str, Any], spec: CheckSpec) -> Observation:
    """Return the observation in a parsed compact answer: a key not listed does not hold.

    Keys outside the spec are never counted (the schema's enum already drops them when parsing). The
    answer gives no yes/no token per condition, so it carries no probability: thresholds are not applied
    and every condition is the model's own choice.
    """
    listed = _listed(answer.get(HOLDS_FIELD))
    reason = answer.get("reason")
    return Observation(
        gestures=frozenset(label.key for label in spec.enabled_gestures() if label.key in listed),
        activities=frozenset(label.key for label in spec.enabled_activities() if label.key in listed),
        person_present=(PRESENCE.key in listed) if spec.presence else None,
        rules={rule.rule_id: alias in listed for alias, rule in spec.rule_aliases().items()},
        reason=(reason.strip() or None) if isinstance(reason, str) else None,
    )


# --- one request per condition: the model's training protocol ---------------------------------------------


def condition_system_prompt(spec: CheckSpec, n_frames: int) -> str:
    """Return the system prompt of a per-condition check, as the model was trained."""
    return (
        "You are a smart camera assistant. The user sends a sequence of images from a home camera, "
        f"{_number(spec.fps)} frames per second, {n_frames} frames in total, in time order, and a condition. "
        'Judge whether the images meet the condition. Reply with JSON only: {"result": "yes"} or '
        '{"result": "no"}.'
    )


def condition_question(condition: str) -> str:
    """Return the per-condition question in the trained wording."""
    return f"Do the images meet the following condition: {_clean(condition)}."


def conditions(spec: CheckSpec) -> list[tuple[str, str]]:
    """Return (key, condition) for every question of the spec: gestures, activities, presence, rules."""
    asked = [(f"{label.kind}:{label.key}", label.condition) for label in spec.enabled_gestures()]
    asked += [(f"{label.kind}:{label.key}", label.condition) for label in spec.enabled_activities()]
    if spec.presence:
        asked.append((f"{PRESENCE.kind}:{PRESENCE.key}", PRESENCE.condition))
    asked += [(f"{_RULE_PREFIX}{rule.rule_id}", rule.condition_text) for rule in spec.rules]
    return asked


def build_condition_requests(spec: CheckSpec, frames: Sequence[bytes]) -> list[tuple[str, VisionRequest]]:
    """Return one yes/no request per condition, all sharing the same prefix (system prompt and frames)."""
    _require_question(spec)
    system_prompt = condition_system_prompt(spec, len(frames))
    shared = tuple(frames)
    schema = yes_no_schema()
    max_tokens = _THINKING_TOKENS if spec.thinking else _CONDITION_TOKENS
    return [
        (
            key,
            VisionRequest(
                system_prompt=system_prompt,
                lead_in=LEAD_IN,
                frames=shared,
                question=condition_question(condition),
                json_schema=schema,
                max_tokens=max_tokens,
                thinking=spec.thinking,
            ),
        )
        for key, condition in conditions(spec)
    ]


def interpret_conditions(
    results: Mapping[str, Mapping[str, Any]],
    spec: CheckSpec,
    probabilities: Mapping[str, float] | None = None,
) -> Observation:
    """Return the observation in per-condition answers ({"result": "yes"} by key); unknown keys are ignored.

    `probabilities` are the answers' P(yes) by the same keys, where the reply's tokens gave one: a condition
    with a threshold (the rule's, or the spec's label threshold) holds when its P(yes) reaches it. A condition
    without an answer (its request failed) counts as not seen; its rule is left out.
    """
    p_of = {key: p for key, p in (probabilities or {}).items() if key in results}
    thresholds = {f"{_RULE_PREFIX}{rule.rule_id}": rule.threshold for rule in spec.rules}
    answers = {
        key: decide(is_yes(result.get("result")), p_of.get(key), thresholds.get(key, spec.label_threshold))
        for key, result in results.items()
    }
    presence_key = f"{PRESENCE.kind}:{PRESENCE.key}"
    labels = (*spec.enabled_gestures(), *spec.enabled_activities())
    return Observation(
        gestures=frozenset(
            label.key for label in spec.enabled_gestures() if answers.get(f"{label.kind}:{label.key}")
        ),
        activities=frozenset(
            label.key for label in spec.enabled_activities() if answers.get(f"{label.kind}:{label.key}")
        ),
        person_present=answers.get(presence_key) if spec.presence else None,
        rules={
            rule.rule_id: answers[f"{_RULE_PREFIX}{rule.rule_id}"]
            for rule in spec.rules
            if f"{_RULE_PREFIX}{rule.rule_id}" in answers
        },
        rule_probabilities={
            rule.rule_id: p_of[f"{_RULE_PREFIX}{rule.rule_id}"]
            for rule in spec.rules
            if f"{_RULE_PREFIX}{rule.rule_id}" in p_of
        },
        presence_probability=p_of.get(presence_key) if spec.presence else None,
        label_probabilities={
            label.key: p_of[f"{label.kind}:{label.key}"]
            for label in labels
            if f"{label.kind}:{label.key}" in p_of
        },
    )


# --- a free question: the analyze service --------------------------------------------------------------


def question_system_prompt(spec: QuestionSpec, n_frames: int) -> str:
    """Return the system prompt of a free question; it describes the frames as the check prompts do."""
    return "\n".join(
        [
            "You are the vision assistant of a smart-home camera.",
            f"You receive {n_frames} frames taken over {_number(n_frames / spec.fps)} seconds "
            f"({_number(spec.fps)} frames per second), oldest first; the last frame is the present moment.",
            "Answer the user's question about what the frames show, briefly and factually.",
            "Reply with one JSON object that matches the requested format, and nothing else.",
        ]
    )


def build_question_request(spec: QuestionSpec, frames: Sequence[bytes]) -> VisionRequest:
    """Return the one request that asks the question about these frames."""
    return VisionRequest(
        system_prompt=question_system_prompt(spec, len(frames)),
        lead_in=LEAD_IN,
        frames=tuple(frames),
        question=spec.question,
        json_schema=spec.json_schema,
        max_tokens=_question_tokens(spec),
        thinking=spec.thinking,
    )


def _question_tokens(spec: QuestionSpec) -> int:
    """Return the reply budget of a free question: room for a chain of thought when thinking is on."""
    return _THINKING_TOKENS + _QUESTION_TOKENS if spec.thinking else _QUESTION_TOKENS


def images_system_prompt(n_images: int) -> str:
    """Return the system prompt of a question about separate images (not a clip), each named before it."""
    if n_images:
        seen = (
            f"You receive {n_images} separate image{'s' if n_images > 1 else ''}, not a sequence in time; "
            'each follows its name ("Image 1: …").'
        )
    else:
        seen = "You receive no images."
    return "\n".join(
        [
            "You are the vision assistant of a smart home.",
            seen,
            "Do the user's task from what the images show, briefly and factually.",
            "Reply with one JSON object that matches the requested format, and nothing else.",
        ]
    )


def build_images_request(spec: QuestionSpec, frames: Sequence[bytes], names: Sequence[str]) -> VisionRequest:
    """Return the one request that asks the question about separate images, each labelled by its name."""
    if len(names) != len(frames):
        raise ValueError(f"{len(names)} names for {len(frames)} images")
    return VisionRequest(
        system_prompt=images_system_prompt(len(frames)),
        frames=tuple(frames),
        frame_labels=tuple(f"Image {index}: {name}" for index, name in enumerate(names, 1)),
        question=spec.question,
        json_schema=spec.json_schema,
        max_tokens=_question_tokens(spec),
        thinking=spec.thinking,
    )
