"""Tests of the reply parser: wrappers, coercion, schema checking, and robustness on arbitrary text."""

from __future__ import annotations

from collections.abc import Callable
import json
import math
import time
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.miloco.engine import parse

ReplyParseError = parse.ReplyParseError
parse_reply = parse.parse_reply
yes_no_schema = parse.yes_no_schema
is_yes = parse.is_yes
YES_NO = parse.YES_NO
MAX_REPLY_CHARS = parse.MAX_REPLY_CHARS

GESTURES = ["thumbs_up", "v_sign", "open_palm", "ok", "shaka", "wave"]
ACTIVITIES = ["watch_tv", "reading", "phone", "esports", "workout"]

PERCEPTION: dict[str, Any] = {
    "type": "object",
    "properties": {
        "gestures": {"type": "array", "items": {"type": "string", "enum": GESTURES}, "maxItems": 6},
        "activities": {"type": "array", "items": {"type": "string", "enum": ACTIVITIES}, "maxItems": 5},
        "person_present": YES_NO,
        "rules": {"type": "object", "properties": {"r1": YES_NO, "r2": YES_NO}},
        "reason": {"type": "string", "maxLength": 200},
        "people": {"type": "integer", "minimum": 0, "maximum": 20},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "moving": {"type": "boolean"},
    },
    "required": ["gestures", "activities", "person_present"],
    "additionalProperties": False,
}

RESULT = yes_no_schema()
EMPTY = {"gestures": [], "activities": [], "person_present": "no"}


def perception(**values: Any) -> str:
    """Return a perception reply as JSON, on top of an empty scene."""
    return json.dumps({**EMPTY, **values})


# --- an independent checker -------------------------------------------------------------------------------


def satisfies(value: Any, schema: dict[str, Any]) -> bool:
    """Return True when value is a canonical instance of the schema (written apart from the parser)."""
    check: Callable[[Any, dict[str, Any]], bool] = CHECKS[schema["type"]]
    return check(value, schema)


def _object_ok(value: Any, schema: dict[str, Any]) -> bool:
    props = schema.get("properties", {})
    return (
        isinstance(value, dict)
        and set(value) <= set(props)
        and all(name in value for name in schema.get("required", []))
        and all(satisfies(item, props[name]) for name, item in value.items())
    )


def _array_ok(value: Any, schema: dict[str, Any]) -> bool:
    if not isinstance(value, list) or len(value) > schema.get("maxItems", math.inf):
        return False
    if "enum" in schema["items"] and len(set(value)) != len(value):
        return False
    return all(satisfies(item, schema["items"]) for item in value)


def _string_ok(value: Any, schema: dict[str, Any]) -> bool:
    return (
        isinstance(value, str)
        and value in schema.get("enum", [value])
        and len(value) <= schema.get("maxLength", math.inf)
    )


def _in_range(value: float, schema: dict[str, Any]) -> bool:
    return bool(schema.get("minimum", -math.inf) <= value <= schema.get("maximum", math.inf))


CHECKS: dict[str, Callable[[Any, dict[str, Any]], bool]] = {
    "object": _object_ok,
    "array": _array_ok,
    "string": _string_ok,
    "boolean": lambda value, _: type(value) is bool,
    "integer": lambda value, schema: type(value) is int and _in_range(value, schema),
    "number": lambda value, schema: (
        type(value) in {int, float} and math.isfinite(value) and _in_range(value, schema)
    ),
}


# --- wrappers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"result": "yes"}', "yes"),
        ('<think>Maybe {"result": "no"}? No, look again.</think>\n{"result": "yes"}', "yes"),
        ('<think>The hand is open, so {"result": "no"}', "no"),
        ('The user waves, so the condition holds.</think>\n\n{"result": "yes"}', "yes"),
        ('<think>hm</think>\\boxed{{"result": "Yes"}}', "yes"),
        ('\\boxed{"result": "No"}', "no"),
        ("<think>a thumbs up</think>\\boxed{Yes}", "yes"),
        ("\\boxed{\\text{No}}", "no"),
        ('```json\n{"result": "yes"}\n```', "yes"),
        ('```\n{"result": "no"}\n```', "no"),
        ('```json\n{"result": "yes"}', "yes"),
        ('Sure! Here is the answer: {"result": "no"} Hope this helps', "no"),
        ('```json\n{"result": "yes"}\n```\nThe format is {"result": "no"}.', "yes"),
        ('{"result": "no"}\n\\boxed{{"result": "yes"}}', "yes"),
        ("Yes.", "yes"),
        ("no", "no"),
        ("NO!", "no"),
        ("是", "yes"),
        ("否。", "no"),
        ("是的\uff0c有人在挥手。", "yes"),
        ("不是", "no"),
        ('"yes"', "yes"),
        ("{'result': 'no'}", "no"),
    ],
)
def test_wrappers_of_a_yes_no_answer(reply: str, expected: str) -> None:
    assert parse_reply(reply, RESULT) == {"result": expected}


def test_think_block_hides_its_contents() -> None:
    with pytest.raises(ReplyParseError):
        parse_reply('<think>{"result": "yes"}</think> I cannot tell.', RESULT)


def test_fenced_perception_reply_with_chatter() -> None:
    reply = (
        f"Here you go:\n```json\n{perception(gestures=['wave'], person_present='yes')}\n```\nAnything else?"
    )
    assert parse_reply(reply, PERCEPTION) == {**EMPTY, "gestures": ["wave"], "person_present": "yes"}


def test_braces_inside_strings_do_not_confuse_matching() -> None:
    reply = "\\boxed{" + perception(reason='a } and a { and a \\" quote') + "}"
    assert parse_reply(reply, PERCEPTION)["reason"] == 'a } and a { and a \\" quote'


@pytest.mark.parametrize(
    "reason", ["\\boxed{", "```", "<think>", "}{", "\\", '```json\n{"result": "yes"}\n```']
)
@pytest.mark.parametrize("wrapper", ["plain", "fence", "boxed", "think"])
def test_wrapper_look_alikes_inside_strings(reason: str, wrapper: str) -> None:
    obj = {**EMPTY, "reason": reason}
    assert parse_reply(_wrap(json.dumps(obj, ensure_ascii=False), wrapper, "hm"), PERCEPTION) == obj


def test_object_inside_unclosed_junk_brace_is_found() -> None:
    assert parse_reply('{ oops {"result": "yes"}', RESULT) == {"result": "yes"}


def test_literal_newline_in_a_string_is_tolerated() -> None:
    reply = perception(reason="line one\nline two").replace("\\n", "\n")
    assert parse_reply(reply, PERCEPTION)["reason"] == "line one\nline two"


def test_single_quotes_are_not_json() -> None:
    with pytest.raises(ReplyParseError):
        parse_reply("{'gestures': [], 'activities': [], 'person_present': 'no'}", PERCEPTION)


def test_top_level_array_is_not_a_candidate() -> None:
    with pytest.raises(ReplyParseError):
        parse_reply('[["wave"], ["reading"], "yes"]', PERCEPTION)


# --- which candidate wins -------------------------------------------------------------------------------


def test_last_valid_object_wins() -> None:
    assert parse_reply('{"result": "no"} then {"result": "yes"}', RESULT) == {"result": "yes"}


def test_last_invalid_object_is_skipped() -> None:
    assert parse_reply('{"result": "yes"} {"result": "maybe"} {"other": 1}', RESULT) == {"result": "yes"}


def test_last_valid_perception_wins_over_a_later_partial_one() -> None:
    reply = f'{perception(gestures=["ok"])} and then {{"gestures": ["wave"]}}'
    assert parse_reply(reply, PERCEPTION)["gestures"] == ["ok"]


# --- coercion -------------------------------------------------------------------------------------------


def test_unknown_keys_are_dropped() -> None:
    reply = '{"result": "yes", "confidence": 0.9, "extra": {"deep": [1, 2]}}'
    assert parse_reply(reply, RESULT) == {"result": "yes"}


def test_result_is_a_new_dict_with_canonical_values() -> None:
    reply = perception(gestures=[" Thumbs_Up. ", "V_SIGN"], person_present="Yes.")
    assert parse_reply(reply, PERCEPTION) == {
        "gestures": ["thumbs_up", "v_sign"],
        "activities": [],
        "person_present": "yes",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "yes"),
        (False, "no"),
        ("true", "yes"),
        ("FALSE", "no"),
        ("y", "yes"),
        ("N", "no"),
        ("是", "yes"),
        ("否", "no"),
        ("是的", "yes"),
        ("不是", "no"),
        ("Yes.", "yes"),
        (" no ", "no"),
    ],
)
def test_yes_no_synonyms(value: Any, expected: str) -> None:
    assert parse_reply(json.dumps({"result": value}), RESULT) == {"result": expected}


@pytest.mark.parametrize("value", ["maybe", 1, 0, None, [], "yess", "是否"])
def test_yes_no_rejects_other_values(value: Any) -> None:
    with pytest.raises(ReplyParseError):
        parse_reply(json.dumps({"result": value, "note": "x"}), RESULT)


def test_yes_no_enum_keeps_its_own_spelling() -> None:
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "string", "enum": ["No", "Yes"]}},
        "required": ["ok"],
    }
    assert parse_reply('{"ok": true}', schema) == {"ok": "Yes"}
    assert parse_reply("nope, no", schema) == {"ok": "No"}


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), ("yes", True), ("是", True), ("false", False), ("否", False)]
)
def test_boolean_accepts_yes_no_words(value: Any, expected: bool) -> None:
    assert parse_reply(perception(moving=value), PERCEPTION)["moving"] is expected


def test_plain_enum_does_not_take_yes_no_synonyms() -> None:
    assert parse_reply(perception(activities=[True, "true", "Reading"]), PERCEPTION)["activities"] == [
        "reading"
    ]


def test_missing_required_property_invalidates() -> None:
    with pytest.raises(ReplyParseError):
        parse_reply('{"gestures": [], "activities": []}', PERCEPTION)


def test_missing_optional_property_is_omitted() -> None:
    assert "rules" not in parse_reply(perception(), PERCEPTION)


def test_invalid_optional_property_is_omitted() -> None:
    result = parse_reply(perception(people=99, reason=7, rules={"r1": "yes", "r2": "perhaps"}), PERCEPTION)
    assert result == {**EMPTY, "rules": {"r1": "yes"}}


def test_string_is_truncated_to_max_length() -> None:
    assert parse_reply(perception(reason="x" * 500), PERCEPTION)["reason"] == "x" * 200


def test_array_items_are_filtered_deduplicated_and_truncated() -> None:
    gestures = ["wave", "WAVE", "fist", 3, "ok", "shaka", "v_sign", "open_palm", "thumbs_up", "ok", "wave"]
    result = parse_reply(perception(gestures=gestures), PERCEPTION)
    assert result["gestures"] == ["wave", "ok", "shaka", "v_sign", "open_palm", "thumbs_up"]


def test_array_must_be_a_list() -> None:
    with pytest.raises(ReplyParseError):
        parse_reply(perception(gestures="wave"), PERCEPTION)


NESTED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "people": {
            "type": "array",
            "maxItems": 2,
            "items": {
                "type": "object",
                "properties": {
                    "gestures": {
                        "type": "array",
                        "items": {"type": "string", "enum": GESTURES},
                        "maxItems": 2,
                    },
                    "age": {"type": "integer", "minimum": 0, "maximum": 120},
                },
                "required": ["gestures"],
            },
        }
    },
    "required": ["people"],
}


def test_nested_arrays_with_max_items() -> None:
    reply = json.dumps(
        {
            "people": [
                {"gestures": ["ok", "wave", "shaka"], "age": 30},
                {"age": 4},
                {"gestures": ["nope"], "age": 300},
                {"gestures": []},
            ]
        }
    )
    assert parse_reply(reply, NESTED) == {
        "people": [{"gestures": ["ok", "wave"], "age": 30}, {"gestures": []}]
    }


@pytest.mark.parametrize(("people", "valid"), [(0, True), (20, True), (-1, False), (21, False), (3.0, True)])
def test_integer_range(people: Any, valid: bool) -> None:
    result = parse_reply(perception(people=people), PERCEPTION)
    assert ("people" in result) is valid
    if valid:
        assert type(result["people"]) is int


@pytest.mark.parametrize(
    ("value", "valid"),
    [(0, True), (1, True), (0.5, True), (1.5, False), (-0.1, False), (True, False), ("0.5", False)],
)
def test_number_range(value: Any, valid: bool) -> None:
    assert ("confidence" in parse_reply(perception(confidence=value), PERCEPTION)) is valid


def test_out_of_range_required_number_rejects_the_candidate() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "number", "maximum": 10}}, "required": ["n"]}
    assert parse_reply('{"n": 3} {"n": 11}', schema) == {"n": 3}
    with pytest.raises(ReplyParseError):
        parse_reply('{"n": 11}', schema)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_rejected(literal: str) -> None:
    reply = perception().replace("}", f', "confidence": {literal}}}')
    assert "confidence" not in parse_reply(reply, PERCEPTION)


# --- bare answers and errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("reply", ["yes or no?", "Yes. No.", "是。否。", "Yes, 否"])
def test_ambiguous_bare_answer_is_rejected(reply: str) -> None:
    with pytest.raises(ReplyParseError, match="ambiguous"):
        parse_reply(reply, RESULT)


@pytest.mark.parametrize(
    "reply", ["", "maybe", "图中是一个人", "是否", "yesterday nobody came", "I can't tell."]
)
def test_no_answer_is_rejected(reply: str) -> None:
    with pytest.raises(ReplyParseError):
        parse_reply(reply, RESULT)


def test_bare_answer_needs_a_single_yes_no_schema() -> None:
    with pytest.raises(ReplyParseError):
        parse_reply("yes", PERCEPTION)


def test_bare_answer_ignores_the_thinking() -> None:
    assert parse_reply("<think>no, wait, yes</think>No.", RESULT) == {"result": "no"}


def test_oversize_reply_is_rejected_before_parsing() -> None:
    reply = '{"result": "yes"}' + " " * MAX_REPLY_CHARS
    with pytest.raises(ReplyParseError, match="too long"):
        parse_reply(reply, RESULT)
    assert parse_reply(reply[:MAX_REPLY_CHARS], RESULT) == {"result": "yes"}


def test_error_message_quotes_little_of_the_reply() -> None:
    reply = "abcdefghij" * 1000
    with pytest.raises(ReplyParseError) as caught:
        parse_reply(reply, RESULT)
    message = str(caught.value)
    assert len(message) < 160
    assert "abcdefghij" * 9 not in message


# --- schema checking --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string"},
        {"type": "object", "properties": {"a": {"type": "null"}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}},
        {"type": "object", "properties": {"a": {"type": ["string", "null"]}}},
        {"type": "object", "properties": {"a": YES_NO}, "required": ["b"]},
        {"type": "object", "properties": {"a": {"type": "array"}}},
        {"type": "object", "properties": {"a": {"type": "string", "enum": []}}},
        {"type": "object", "properties": {"a": {"type": "integer", "minimum": "0"}}},
        {"type": "object", "properties": {"a": {"type": "string", "maxLength": -1}}},
        {"type": "object", "oneOf": []},
        {"type": "object", "properties": []},
    ],
)
def test_unsupported_schema_is_a_programming_error(schema: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as caught:
        parse_reply('{"a": "yes"}', schema)
    assert type(caught.value) is ValueError


def test_annotations_are_allowed() -> None:
    schema = {"type": "object", "title": "t", "properties": {"a": {**YES_NO, "description": "d"}}}
    assert parse_reply('{"a": "Yes"}', schema) == {"a": "yes"}


def test_yes_no_schema() -> None:
    assert dict(YES_NO) == {"type": "string", "enum": ["yes", "no"]}
    schema = yes_no_schema("ok")
    assert schema == {"type": "object", "properties": {"ok": YES_NO}, "required": ["ok"]}
    # Each call is a fresh, JSON-serialisable dict that the caller may change.
    schema["properties"]["ok"]["enum"].append("maybe")
    assert yes_no_schema("ok")["properties"]["ok"]["enum"] == ["yes", "no"]
    assert json.loads(json.dumps(yes_no_schema())) == yes_no_schema()


@pytest.mark.parametrize(("value", "expected"), [("yes", True), ("Yes.", True), (True, True), ("是", True)])
def test_is_yes_true(value: object, expected: bool) -> None:
    assert is_yes(value) is expected


@pytest.mark.parametrize("value", ["no", False, None, 1, "maybe", "", []])
def test_is_yes_false(value: object) -> None:
    assert is_yes(value) is False


# --- properties -------------------------------------------------------------------------------------------

yes_no = st.sampled_from(["yes", "no"])
no_think_end = st.text(max_size=200).filter(lambda text: "</think>" not in text)
perceptions = st.fixed_dictionaries(
    {
        "gestures": st.lists(st.sampled_from(GESTURES), unique=True, max_size=6),
        "activities": st.lists(st.sampled_from(ACTIVITIES), unique=True, max_size=5),
        "person_present": yes_no,
    },
    optional={
        "rules": st.fixed_dictionaries({}, optional={"r1": yes_no, "r2": yes_no}),
        "reason": no_think_end,
        "people": st.integers(0, 20),
        "confidence": st.floats(0, 1),
        "moving": st.booleans(),
    },
)
prose = st.text(st.characters(exclude_characters="{}"), max_size=80).filter(
    lambda text: "</think>" not in text
)


def _wrap(body: str, wrapper: str, thinking: str) -> str:
    """Return the JSON body in one of the wrappers models use."""
    if wrapper == "fence":
        return f"```json\n{body}\n```"
    if wrapper == "boxed":
        return f"\\boxed{{{body}}}"
    if wrapper == "think":
        return f"<think>{thinking}</think>{body}"
    return body


layouts = st.fixed_dictionaries(
    {
        "before": prose,
        "after": prose,
        "wrapper": st.sampled_from(["plain", "fence", "boxed", "think"]),
        "thinking": no_think_end,
    }
)
dumps_options = st.fixed_dictionaries({"ensure_ascii": st.booleans(), "indent": st.sampled_from([None, 2])})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=perceptions, layout=layouts, options=dumps_options)
def test_embedded_answer_round_trips(
    obj: dict[str, Any], layout: dict[str, str], options: dict[str, Any]
) -> None:
    body = json.dumps(obj, **options)
    before, after, wrapper, thinking = (
        layout["before"],
        layout["after"],
        layout["wrapper"],
        layout["thinking"],
    )
    if wrapper == "think":
        # The thinking comes first; prose may surround the answer after it.
        reply = _wrap(before + body + after, wrapper, thinking)
    else:
        reply = before + _wrap(body, wrapper, thinking) + after
    assert parse_reply(reply, PERCEPTION) == obj


@settings(max_examples=200, deadline=None)
@given(answer=yes_no, before=prose, after=prose)
def test_embedded_yes_no_round_trips(answer: str, before: str, after: str) -> None:
    assert parse_reply(before + json.dumps({"result": answer}) + after, RESULT) == {"result": answer}


FRAGMENTS = [
    "{",
    "}",
    "[",
    "]",
    '"',
    ":",
    ",",
    "\\",
    " ",
    "\n",
    "<think>",
    "</think>",
    "\\boxed{",
    "```json\n",
    "```",
    '"gestures"',
    '"activities"',
    '"person_present"',
    '"rules"',
    '"r1"',
    '"reason"',
    '"people"',
    '"confidence"',
    '"result"',
    '"wave"',
    '"Reading"',
    '"yes"',
    '"No."',
    "true",
    "null",
    "NaN",
    "1e999",
    "-1",
    "0.5",
    "3",
    "yes",
    "no",
    "是",
    "否",
    "[]",
    "{}",
]
adversarial_text = st.one_of(
    st.text(),
    st.text(alphabet='{}[]":,\\ yesno<>/think'),
    st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join),
    st.builds(
        lambda n, piece, tail: piece * n + tail, st.integers(0, 3000), st.sampled_from(FRAGMENTS), st.text()
    ),
)


def _parses_to_a_valid_object_or_raises(text: str, schema: dict[str, Any]) -> None:
    try:
        result = parse_reply(text, schema)
    except ReplyParseError:
        return
    assert satisfies(result, schema), result


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=adversarial_text)
def test_any_text_gives_a_valid_object_or_a_parse_error(text: str) -> None:
    _parses_to_a_valid_object_or_raises(text, PERCEPTION)
    _parses_to_a_valid_object_or_raises(text, RESULT)
    _parses_to_a_valid_object_or_raises(text, NESTED)


def test_checker_agrees_with_itself() -> None:
    assert satisfies(EMPTY, PERCEPTION)
    assert not satisfies({**EMPTY, "gestures": ["wave", "wave"]}, PERCEPTION)
    assert not satisfies({**EMPTY, "extra": 1}, PERCEPTION)
    assert not satisfies({"gestures": []}, PERCEPTION)
    assert not satisfies({**EMPTY, "people": True}, PERCEPTION)


# --- performance guard ----------------------------------------------------------------------------------

ADVERSARIAL = {
    "open braces": "{" * MAX_REPLY_CHARS,
    "open keys": '{"a":' * (MAX_REPLY_CHARS // 5),
    "deep balanced keys": '{"a":' * 6000 + "1" + "}" * 6000,
    "balanced braces": "{" * (MAX_REPLY_CHARS // 2) + "}" * (MAX_REPLY_CHARS // 2),
    "empty objects": "{}" * (MAX_REPLY_CHARS // 2),
    "invalid answers": '{"result":"maybe"}' * (MAX_REPLY_CHARS // 18),
    "escaped quotes": '{"a":"' + '\\"' * 32000 + '"}',
    "deep arrays": '{"a":' + "[" * 65000 + "}",
    "boxes": "\\boxed{" * (MAX_REPLY_CHARS // 7),
    "fences": "```" * (MAX_REPLY_CHARS // 3),
    "quotes and braces": '"{' * (MAX_REPLY_CHARS // 2),
    "words": "yes " * (MAX_REPLY_CHARS // 4),
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_adversarial_reply_is_fast(name: str) -> None:
    reply = ADVERSARIAL[name]
    assert len(reply) <= MAX_REPLY_CHARS
    started = time.perf_counter()
    for schema in (RESULT, PERCEPTION):
        _parses_to_a_valid_object_or_raises(reply, schema)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("reply", [None, 42, ["yes"], {"result": "yes"}, b'{"result": "yes"}'])
def test_a_reply_that_is_not_text_is_a_parse_error(reply: Any) -> None:
    with pytest.raises(ReplyParseError):
        parse_reply(reply, RESULT)
