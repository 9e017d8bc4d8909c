"""Tests of request building: prompts, schemas, frame order, shared prefixes and reading the answers."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.miloco.engine import labels, parse, prompt

CheckSpec = prompt.CheckSpec
RuleSpec = prompt.RuleSpec

FRAMES = [f"frame-{i}".encode() for i in range(6)]
OTHER_FRAMES = [f"later-{i}".encode() for i in range(6)]
ALL_GESTURES = tuple(label.key for label in labels.GESTURES)
ALL_ACTIVITIES = tuple(label.key for label in labels.ACTIVITIES)
YES_NO = {"type": "string", "enum": ["yes", "no"]}

FULL = CheckSpec(
    gestures=("thumbs_up", "wave"),
    activities=("reading",),
    presence=True,
    rules=(
        RuleSpec("01JB7ZQ3XK2M", "someone waves at the camera."),
        RuleSpec("door", "the front door is open"),
    ),
)


# --- the spec -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gestures": ("fist",)},
        {"gestures": ("reading",)},
        {"activities": ("thumbs_up",)},
        {"gestures": ("ok", "ok")},
        {"rules": (RuleSpec("a", "x"), RuleSpec("a", "y"))},
        {"rules": (RuleSpec("", "x"),)},
        {"rules": (RuleSpec("a", " . "),)},
        {"fps": 0.0},
        {"fps": float("nan")},
        {"fps": float("inf")},
    ],
)
def test_spec_refuses_invalid_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"invalid|rule|fps|condition"):
        CheckSpec(**kwargs)


def test_empty_spec_asks_nothing() -> None:
    empty = CheckSpec()
    assert empty.is_empty
    with pytest.raises(ValueError, match="nothing"):
        prompt.build_combined_request(empty, FRAMES)
    with pytest.raises(ValueError, match="nothing"):
        prompt.build_condition_requests(empty, FRAMES)


# --- the combined request -----------------------------------------------------------------------------


def test_combined_schema_for_a_full_spec() -> None:
    assert prompt.combined_schema(FULL) == {
        "type": "object",
        "properties": {
            "gestures": {
                "type": "array",
                "items": {"type": "string", "enum": ["thumbs_up", "wave"]},
                "maxItems": 2,
            },
            "activities": {"type": "array", "items": {"type": "string", "enum": ["reading"]}, "maxItems": 1},
            "person_present": YES_NO,
            "rules": {
                "type": "object",
                "properties": {"r1": YES_NO, "r2": YES_NO},
                "required": ["r1", "r2"],
                "additionalProperties": False,
            },
            "reason": {"type": "string", "maxLength": 200},
        },
        "required": ["gestures", "activities", "person_present", "rules"],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("spec", "keys"),
    [
        (CheckSpec(gestures=("ok",)), ["gestures", "reason"]),
        (CheckSpec(activities=("workout", "phone")), ["activities", "reason"]),
        (CheckSpec(presence=True), ["person_present", "reason"]),
        (CheckSpec(rules=(RuleSpec("a", "the light is on"),)), ["rules", "reason"]),
    ],
)
def test_combined_schema_holds_only_what_is_enabled(spec: Any, keys: list[str]) -> None:
    schema = prompt.combined_schema(spec)
    assert list(schema["properties"]) == keys
    assert schema["required"] == keys[:-1]
    # Serialisable for the servers, and within the parser's supported subset.
    json.dumps(schema)
    parse.parse_reply(json.dumps({keys[0]: _empty(keys[0])}), schema)


def _empty(key: str) -> object:
    if key == "person_present":
        return "no"
    if key == "rules":
        return {"r1": "no"}
    return []


def test_combined_enum_follows_the_catalogue_not_the_config_order() -> None:
    a = CheckSpec(gestures=("wave", "ok", "thumbs_up"), activities=("workout", "reading"))
    b = CheckSpec(gestures=("thumbs_up", "wave", "ok"), activities=("reading", "workout"))
    assert prompt.combined_schema(a)["properties"]["gestures"]["items"]["enum"] == ["thumbs_up", "ok", "wave"]
    assert prompt.build_combined_request(a, FRAMES) == prompt.build_combined_request(b, FRAMES)


def test_combined_request_layout() -> None:
    request = prompt.build_combined_request(FULL, FRAMES)
    assert request.lead_in == "Image sequence is as follows:"
    assert list(request.frames) == FRAMES
    assert request.json_schema == prompt.combined_schema(FULL)
    assert not request.thinking
    # The question comes last, with the no-think switch after it.
    assert request.user_text().endswith("/no_think")
    assert request.user_text().startswith(request.question)
    system = request.system_prompt
    assert "6 frames taken over 3 seconds (2 frames per second), oldest first" in system
    assert "- thumbs_up (Thumbs Up): a hand is held in a fist with the thumb pointing up" in system
    assert "- wave (Wave):" in system
    assert "- reading (Reading):" in system
    assert "v_sign" not in system
    assert "watch_tv" not in system
    assert "clearly visible" in system
    assert "JSON" in system
    # Rules are asked after the images, with short aliases instead of their ids.
    assert "r1: someone waves at the camera." in request.question
    assert "r2: the front door is open." in request.question
    assert "01JB7ZQ3XK2M" not in request.question + system


def test_combined_prefix_is_identical_across_checks() -> None:
    first = prompt.build_combined_request(FULL, FRAMES)
    later = prompt.build_combined_request(FULL, OTHER_FRAMES)
    assert (first.system_prompt, first.lead_in, first.question) == (
        later.system_prompt,
        later.lead_in,
        later.question,
    )
    assert first.json_schema == later.json_schema


def test_combined_window_length_and_rate() -> None:
    spec = CheckSpec(presence=True, fps=0.5)
    request = prompt.build_combined_request(spec, FRAMES[:4])
    assert "4 frames taken over 8 seconds (0.5 frames per second)" in request.system_prompt
    assert "Gestures" not in request.system_prompt
    assert "rule" not in request.system_prompt


def test_thinking_switch_and_budget() -> None:
    thinking = CheckSpec(presence=True, thinking=True)
    plain = CheckSpec(presence=True)
    request = prompt.build_combined_request(thinking, FRAMES)
    assert request.thinking
    assert request.user_text() == request.question
    assert request.max_tokens > prompt.build_combined_request(plain, FRAMES).max_tokens
    # More rules, more room for the answer.
    many = CheckSpec(rules=tuple(RuleSpec(f"id{i}", f"condition {i}") for i in range(20)))
    assert (
        prompt.build_combined_request(many, FRAMES).max_tokens
        > prompt.build_combined_request(plain, FRAMES).max_tokens
    )


REALISTIC_REPLIES = [
    # Direct answer.
    (
        '{"gestures": ["thumbs_up"], "activities": [], "person_present": "yes", '
        '"rules": {"r1": "no", "r2": "no"}, "reason": "A man on the sofa gives a thumbs up."}',
        {"thumbs_up"},
        set(),
        True,
        {"01JB7ZQ3XK2M": False, "door": False},
    ),
    # Thinking, then a boxed answer with capitalised words.
    (
        "<think>The person raises a hand and moves it left and right; they also hold a book."
        '</think>\\boxed{{"gestures": ["Wave"], "activities": ["Reading"], "person_present": "Yes", '
        '"rules": {"r1": "Yes", "r2": "No"}}}',
        {"wave"},
        {"reading"},
        True,
        {"01JB7ZQ3XK2M": True, "door": False},
    ),
    # A fenced answer with an invented gesture and an unknown rule.
    (
        'Here you go:\n```json\n{"gestures": ["fist", "thumbs_up", "ok"], "activities": ["reading", "cooking"],'
        ' "person_present": "no", "rules": {"r1": "no", "r2": "yes", "r3": "yes"}, "reason": ""}\n```',
        {"thumbs_up"},
        {"reading"},
        False,
        {"01JB7ZQ3XK2M": False, "door": True},
    ),
]


@pytest.mark.parametrize(("reply", "gestures", "activities", "person", "rules"), REALISTIC_REPLIES)
def test_combined_round_trip(
    reply: str, gestures: set[str], activities: set[str], person: bool, rules: dict[str, bool]
) -> None:
    request = prompt.build_combined_request(FULL, FRAMES)
    observation = prompt.interpret_combined(parse.parse_reply(reply, request.json_schema), FULL)
    assert observation.gestures == gestures
    assert observation.activities == activities
    assert observation.person_present is person
    assert dict(observation.rules) == rules


def test_combined_reason() -> None:
    reply = '{"gestures": [], "activities": [], "person_present": "no", "rules": {"r1": "no", "r2": "no"}, '
    schema = prompt.combined_schema(FULL)
    long = prompt.interpret_combined(parse.parse_reply(reply + f'"reason": "  {"x" * 500} "}}', schema), FULL)
    assert long.reason == "x" * 198
    absent = prompt.interpret_combined(parse.parse_reply(reply[:-2] + "}", schema), FULL)
    assert absent.reason is None


def test_interpret_combined_drops_what_the_spec_does_not_hold() -> None:
    spec = CheckSpec(gestures=("ok",), rules=(RuleSpec("a", "x"),))
    # Straight from a (misbehaving) server, without the parser in between.
    answer = {
        "gestures": ["ok", "thumbs_up", 7, None],
        "activities": ["reading"],
        "person_present": "yes",
        "rules": {"r1": "yes", "r2": "yes", "a": "no"},
        "reason": 12,
    }
    observation = prompt.interpret_combined(answer, spec)
    assert observation.gestures == {"ok"}
    assert observation.activities == frozenset()
    assert observation.person_present is None
    assert dict(observation.rules) == {"a": True}
    assert observation.reason is None
    broken = prompt.interpret_combined({"gestures": "ok", "rules": ["r1"]}, spec)
    assert broken.gestures == frozenset()
    assert dict(broken.rules) == {}


label_keys = st.sampled_from(ALL_GESTURES + ALL_ACTIVITIES + ("fist", "person", "r1", ""))


@settings(max_examples=150, deadline=None)
@given(
    gestures=st.sets(st.sampled_from(ALL_GESTURES)),
    activities=st.sets(st.sampled_from(ALL_ACTIVITIES)),
    presence=st.booleans(),
    n_rules=st.integers(min_value=0, max_value=4),
    said_gestures=st.lists(label_keys, max_size=8),
    said_activities=st.lists(label_keys, max_size=8),
    said_rules=st.dictionaries(
        st.sampled_from(["r1", "r2", "r3", "r4", "r5", "x"]), st.sampled_from(["yes", "no"])
    ),
)
def test_the_model_cannot_invent_labels_or_rules(
    *,
    gestures: set[str],
    activities: set[str],
    presence: bool,
    n_rules: int,
    said_gestures: list[str],
    said_activities: list[str],
    said_rules: dict[str, str],
) -> None:
    rules = tuple(RuleSpec(f"rule-{i}", f"condition {i}") for i in range(n_rules))
    spec = CheckSpec(gestures=tuple(gestures), activities=tuple(activities), presence=presence, rules=rules)
    if spec.is_empty:
        return
    schema = prompt.combined_schema(spec)
    properties = schema["properties"]
    assert ("gestures" in properties) == bool(gestures)
    assert ("activities" in properties) == bool(activities)
    assert ("person_present" in properties) == presence
    assert ("rules" in properties) == bool(rules)
    answer = {
        "gestures": said_gestures,
        "activities": said_activities,
        "person_present": "yes",
        "rules": said_rules,
    }
    observation = prompt.interpret_combined(answer, spec)
    assert observation.gestures <= gestures
    assert observation.activities <= activities
    assert (observation.person_present is None) == (not presence)
    assert set(observation.rules) <= {rule.rule_id for rule in rules}


# --- one request per condition ------------------------------------------------------------------------


def test_condition_requests_follow_the_training_protocol() -> None:
    requests = prompt.build_condition_requests(FULL, FRAMES)
    assert [key for key, _ in requests] == [
        "gesture:thumbs_up",
        "gesture:wave",
        "activity:reading",
        "presence:person",
        "rule:01JB7ZQ3XK2M",
        "rule:door",
    ]
    questions = [request.user_text() for _, request in requests]
    assert questions == [
        "Do the images meet the following condition: someone is showing a Thumbs Up gesture./no_think",
        "Do the images meet the following condition: someone is waving a hand./no_think",
        "Do the images meet the following condition: someone is reading./no_think",
        "Do the images meet the following condition: a person is present./no_think",
        "Do the images meet the following condition: someone waves at the camera./no_think",
        "Do the images meet the following condition: the front door is open./no_think",
    ]
    for _, request in requests:
        assert request.lead_in == "Image sequence is as follows:"
        assert list(request.frames) == FRAMES
        assert request.json_schema == parse.yes_no_schema()
        assert "2 frames per second, 6 frames in total" in request.system_prompt
        assert '{"result": "yes"}' in request.system_prompt
        assert '{"result": "no"}' in request.system_prompt


def test_condition_requests_share_one_prefix() -> None:
    requests = [request for _, request in prompt.build_condition_requests(FULL, FRAMES)]
    first = requests[0]
    for request in requests[1:]:
        assert request.system_prompt == first.system_prompt
        assert request.lead_in == first.lead_in
        # The very same frames object: one base64 encoding could serve all.
        assert request.frames is first.frames
    later = prompt.build_condition_requests(FULL, OTHER_FRAMES)[0][1]
    assert later.system_prompt == first.system_prompt


def test_condition_requests_when_thinking() -> None:
    spec = CheckSpec(gestures=("ok",), thinking=True)
    ((key, request),) = prompt.build_condition_requests(spec, FRAMES)
    assert key == "gesture:ok"
    assert request.thinking
    assert (
        request.user_text() == "Do the images meet the following condition: someone is showing an OK gesture."
    )
    assert request.max_tokens >= 1024


def test_condition_round_trip() -> None:
    replies = {
        "gesture:thumbs_up": '{"result": "Yes"}',
        "gesture:wave": '<think>The hand does not move.</think>\\boxed{{"result": "no"}}',
        "activity:reading": "Yes.",
        "presence:person": '```json\n{"result": "yes"}\n```',
        "rule:01JB7ZQ3XK2M": '{"result": "no"}',
        # rule:door failed (timeout): no answer at all.
    }
    schema = parse.yes_no_schema()
    results = {key: parse.parse_reply(text, schema) for key, text in replies.items()}
    results["gesture:v_sign"] = {"result": "yes"}  # not asked: ignored
    results["rule:elsewhere"] = {"result": "yes"}  # another camera's rule: ignored
    observation = prompt.interpret_conditions(results, FULL)
    assert observation.gestures == {"thumbs_up"}
    assert observation.activities == {"reading"}
    assert observation.person_present is True
    assert dict(observation.rules) == {"01JB7ZQ3XK2M": False}
    assert observation.reason is None


def test_condition_presence_not_asked_or_missing() -> None:
    assert (
        prompt.interpret_conditions(
            {"presence:person": {"result": "yes"}}, CheckSpec(gestures=("ok",))
        ).person_present
        is None
    )
    assert prompt.interpret_conditions({}, CheckSpec(presence=True)).person_present is None


# --- a free question (the analyze service) -------------------------------------------------------------


def test_a_question_describes_the_frames_and_comes_last() -> None:
    spec = prompt.QuestionSpec(question="Is anyone on the sofa?", fps=4)
    request = prompt.build_question_request(spec, FRAMES)
    assert "6 frames taken over 1.5 seconds (4 frames per second)" in request.system_prompt
    assert list(request.frames) == FRAMES
    assert request.lead_in == prompt.LEAD_IN
    assert request.user_text() == "Is anyone on the sofa?/no_think"
    assert request.json_schema == prompt.ANSWER_SCHEMA
    parse.check_reply_schema(request.json_schema)
    assert parse.parse_reply('{"answer": "yes, one person"}', request.json_schema) == {
        "answer": "yes, one person"
    }


def test_a_question_keeps_its_own_structure_and_can_think() -> None:
    structure = {"type": "object", "properties": {"people": {"type": "integer"}}, "required": ["people"]}
    spec = prompt.QuestionSpec(question="How many?", json_schema=structure, thinking=True)
    request = prompt.build_question_request(spec, FRAMES[:1])
    assert request.json_schema == structure
    assert request.user_text() == "How many?"
    assert (
        request.max_tokens
        > prompt.build_question_request(prompt.QuestionSpec(question="How many?"), FRAMES[:1]).max_tokens
    )


@pytest.mark.parametrize(
    "kwargs", [{"question": "  "}, {"question": "?", "fps": float("nan")}, {"question": "?", "fps": 0}]
)
def test_a_question_needs_words_and_a_frame_rate(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        prompt.QuestionSpec(**kwargs)


def test_separate_images_are_named_before_each_and_not_called_a_sequence() -> None:
    spec = prompt.QuestionSpec(question="Which photo shows a cat?")
    request = prompt.build_images_request(spec, [b"one", b"two"], ["cat.jpg", "camera.front_door"])
    assert request.frame_labels == ("Image 1: cat.jpg", "Image 2: camera.front_door")
    assert "2 separate images" in request.system_prompt
    assert "oldest first" not in request.system_prompt
    assert request.json_schema == prompt.ANSWER_SCHEMA
    parts = request.user_content(lambda frame: {"type": "image", "data": frame})
    assert parts == [
        {"type": "text", "text": "Image 1: cat.jpg"},
        {"type": "image", "data": b"one"},
        {"type": "text", "text": "Image 2: camera.front_door"},
        {"type": "image", "data": b"two"},
        {"type": "text", "text": "Which photo shows a cat?/no_think"},
    ]
    with pytest.raises(ValueError):
        prompt.build_images_request(spec, [b"one"], [])


def test_a_clip_request_has_no_labels_between_its_frames() -> None:
    request = prompt.build_question_request(prompt.QuestionSpec(question="What?"), [b"a", b"b"])
    parts = request.user_content(lambda frame: {"type": "image", "data": frame})
    assert [part["type"] for part in parts] == ["text", "image", "image", "text"]
    assert parts[0]["text"] == prompt.LEAD_IN
