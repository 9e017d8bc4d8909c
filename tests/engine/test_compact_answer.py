"""The compact combined answer: only the keys that hold, read back into the same Observation."""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp
from PIL import Image
import pytest

from custom_components.miloco.engine import check, frames, labels, parse, prompt
from custom_components.miloco.engine.backends.openai_compat import OpenAICompatBackend

from ..model_server import FakeModelServer, Reply, yes_no_logprobs

CheckSpec = prompt.CheckSpec
RuleSpec = prompt.RuleSpec

FRAMES = [f"frame-{i}".encode() for i in range(6)]
RULES = (RuleSpec("01JB7ZQ3XK2M", "someone waves at the camera."), RuleSpec("door", "the front door is open"))
FULL = CheckSpec(gestures=("wave", "thumbs_up"), activities=("reading",), presence=True, rules=RULES)
COMPACT = CheckSpec(
    gestures=("wave", "thumbs_up"),
    activities=("reading",),
    presence=True,
    rules=RULES,
    answer_format="compact",
)


def test_the_default_format_is_unchanged() -> None:
    assert CheckSpec(presence=True).answer_format == prompt.ANSWER_FULL
    assert prompt.build_combined_request(FULL, FRAMES).json_schema == prompt.combined_schema(FULL)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="answer_format"):
        CheckSpec(presence=True, answer_format="terse")


def test_compact_schema_lists_only_the_configured_keys() -> None:
    # Catalogue order for labels, then presence, then the rules' aliases: the same set as the full format's.
    assert prompt.compact_schema(COMPACT) == {
        "type": "object",
        "properties": {
            "holds": {
                "type": "array",
                "items": {"type": "string", "enum": ["thumbs_up", "wave", "reading", "person", "r1", "r2"]},
                "maxItems": 6,
            },
            "reason": {"type": "string", "maxLength": prompt.REASON_MAX_CHARS},
        },
        "required": ["holds"],
        "additionalProperties": False,
    }
    # Within the parser's supported subset, as every schema we send must be.
    parse.check_reply_schema(prompt.compact_schema(COMPACT))
    rules_only = CheckSpec(rules=(RuleSpec("a", "x"),), answer_format="compact")
    assert prompt.compact_schema(rules_only)["properties"]["holds"]["items"]["enum"] == ["r1"]


def test_compact_request_says_what_every_key_means() -> None:
    request = prompt.build_combined_request(COMPACT, FRAMES)
    assert request.json_schema == prompt.compact_schema(COMPACT)
    assert request.frames == tuple(FRAMES)
    assert request.lead_in == prompt.LEAD_IN
    # The same budget as the full format: the integration bounds both the same way.
    assert request.max_tokens == prompt.build_combined_request(FULL, FRAMES).max_tokens
    assert "- r1: someone waves at the camera\n" in request.system_prompt
    assert "- person: a person is visible in the frame" in request.system_prompt
    assert "- wave: " in request.system_prompt
    assert "thumbs_up, wave, reading, person, r1, r2" in request.question
    # The prefix before the frames is the same at every check, so a server's prompt cache can reuse it.
    assert request.system_prompt == prompt.build_combined_request(COMPACT, [b"later"] * 6).system_prompt


@pytest.mark.parametrize(
    ("reply", "gestures", "activities", "person", "rules"),
    [
        ('{"holds": ["wave", "reading", "person", "r2"], "reason": "waving"}', {"wave"}, {"reading"}, True,
         {"01JB7ZQ3XK2M": False, "door": True}),
        ('{"holds": []}', set(), set(), False, {"01JB7ZQ3XK2M": False, "door": False}),
        ('```json\n{"holds": ["R1", "thumbs_up", "thumbs_up"]}\n```', {"thumbs_up"}, set(), False,
         {"01JB7ZQ3XK2M": True, "door": False}),
    ],
)  # fmt: skip
def test_compact_round_trip(
    reply: str, gestures: set[str], activities: set[str], person: bool, rules: dict[str, bool]
) -> None:
    observation = prompt.interpret_compact(parse.parse_reply(reply, prompt.compact_schema(COMPACT)), COMPACT)
    assert observation.gestures == gestures
    assert observation.activities == activities
    assert observation.person_present is person
    assert dict(observation.rules) == rules


def test_compact_and_full_answers_of_the_same_scene_read_the_same() -> None:
    full = '{"gestures": ["wave"], "activities": [], "person_present": "yes", "rules": {"r1": "yes", "r2": "no"}}'
    compact = '{"holds": ["wave", "person", "r1"]}'
    from_full = prompt.interpret_combined(parse.parse_reply(full, prompt.combined_schema(FULL)), FULL)
    from_compact = prompt.interpret_compact(
        parse.parse_reply(compact, prompt.compact_schema(COMPACT)), COMPACT
    )
    assert from_compact == from_full


def test_unknown_keys_are_never_counted() -> None:
    # A key outside the enum (another camera's rule, an unconfigured label, a made-up word) is dropped by
    # the parser, and interpret_compact ignores one even when handed the raw answer.
    reply = '{"holds": ["r3", "smoke", "ok", "workout", "wave"]}'
    parsed = parse.parse_reply(reply, prompt.compact_schema(COMPACT))
    assert parsed == {"holds": ["wave"]}
    raw = prompt.interpret_compact(json.loads(reply), COMPACT)
    assert raw.gestures == {"wave"}
    assert raw.activities == frozenset()
    assert dict(raw.rules) == {"01JB7ZQ3XK2M": False, "door": False}
    # A reply without the list is not an answer at all.
    with pytest.raises(parse.ReplyParseError):
        parse.parse_reply('{"gestures": ["wave"]}', prompt.compact_schema(COMPACT))


def test_presence_not_asked_stays_unknown() -> None:
    spec = CheckSpec(gestures=("wave",), answer_format="compact")
    assert "person" not in prompt.compact_keys(spec)
    assert prompt.interpret_compact({"holds": ["wave", "person"]}, spec).person_present is None


def test_compact_gives_no_probability_so_thresholds_do_not_apply() -> None:
    strict = CheckSpec(
        presence=True,
        rules=(RuleSpec("a", "x", threshold=0.99),),
        label_threshold=0.99,
        answer_format="compact",
    )
    observation = prompt.interpret_compact({"holds": ["r1", "person"], "reason": " "}, strict)
    # No yes/no token per condition means no P(yes): the model's own choice stands, whatever the threshold.
    assert dict(observation.rules) == {"a": True}
    assert observation.person_present is True
    assert observation.rule_probabilities == {}
    assert observation.presence_probability is None
    assert observation.label_probabilities == {}
    assert observation.reason is None


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 180), (90, 120, 60)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _backend(session: aiohttp.ClientSession, server: FakeModelServer) -> OpenAICompatBackend:
    return OpenAICompatBackend(
        session, base_url=server.url, model="mimo-vl-miloco-7b", timeout_s=5.0, max_retry_wait_s=1.0
    )


async def test_ask_sends_the_compact_request_without_logprobs(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.script(Reply(content='{"holds": ["wave", "r2"], "reason": "a wave"}'))
    plan = frames.FramePlan(frames=6, budget=512)
    answer = await check.ask(
        _backend(session, server), COMPACT, [_jpeg()] * 6, plan=plan, per_condition=False
    )
    assert answer.observation.gestures == {"wave"}
    assert dict(answer.observation.rules) == {"01JB7ZQ3XK2M": False, "door": True}
    assert answer.observation.person_present is False
    assert answer.observation.reason == "a wave"
    assert answer.requests == 1
    (body,) = server.chat_requests
    schema: dict[str, Any] = body["response_format"]["json_schema"]["schema"]
    assert schema == prompt.compact_schema(COMPACT)
    # Nothing to read a probability from: the reply is not made longer by asking for one.
    assert "logprobs" not in body
    assert "top_logprobs" not in body


async def test_ask_in_full_format_still_asks_for_logprobs(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    spec = CheckSpec(presence=True)
    server.script(yes_no_logprobs({"person_present": 0.9}))
    plan = frames.FramePlan(frames=6, budget=512)
    answer = await check.ask(_backend(session, server), spec, [_jpeg()] * 6, plan=plan, per_condition=False)
    (body,) = server.chat_requests
    assert body["top_logprobs"] == check.CHECK_TOP_LOGPROBS
    assert answer.observation.presence_probability == pytest.approx(0.9)


def test_every_key_names_one_condition() -> None:
    # Labels, presence and rule aliases share one list: a label key that looked like "person" or "r3"
    # would make two conditions one.
    many = tuple(RuleSpec(f"rule-{index}", f"condition {index}") for index in range(20))
    spec = CheckSpec(
        gestures=tuple(label.key for label in labels.GESTURES),
        activities=tuple(label.key for label in labels.ACTIVITIES),
        presence=True,
        rules=many,
        answer_format="compact",
    )
    assert len(prompt.compact_keys(spec)) == len(labels.GESTURES) + len(labels.ACTIVITIES) + 1 + len(many)
