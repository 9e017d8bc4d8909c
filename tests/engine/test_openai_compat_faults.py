"""The OpenAI-compatible client under real faults: replies in pieces, 400/401/429/500, drops, malformed bodies."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
import json
import logging
import time
from typing import Any

import aiohttp
from hypothesis import given, settings, strategies as st
import pytest

from custom_components.miloco.engine.backends.base import VisionRequest
from custom_components.miloco.engine.backends.errors import (
    MAX_RETRY_AFTER_S,
    BackendError,
    BackendTimeout,
    BadReply,
    CannotConnect,
    InvalidAuth,
    RateLimited,
    RequestRejected,
    ServerError,
    ServerUnavailable,
    ServerUnreachable,
)
from custom_components.miloco.engine.backends.openai_compat import (
    MAX_REPLY_BYTES,
    OpenAICompatBackend,
    parse_retry_after,
    reply_from_body,
)
from custom_components.miloco.engine.parse import yes_no_schema

from ..model_server import (
    FakeModelServer,
    Reply,
    context_exceeded,
    dropped,
    error,
    rate_limited,
)

JPEG = b"\xff\xd8\xff\xe0fault-jpeg-bytes\xff\xd9"
MODEL = "mimo-vl-miloco-7b"
# 1,448 bytes is the payload of one TCP segment on Ethernet: what a reply over a real LAN arrives in.
SEGMENT = 1448


def _request(**overrides: object) -> VisionRequest:
    fields: dict[str, object] = {
        "system_prompt": "You are a camera assistant.",
        "frames": (JPEG,),
        "question": "Is someone waving?",
        "json_schema": yes_no_schema(),
        "max_tokens": 32,
    }
    fields.update(overrides)
    return VisionRequest(**fields)  # type: ignore[arg-type]


def _backend(session: aiohttp.ClientSession, server: FakeModelServer, **kwargs: Any) -> OpenAICompatBackend:
    options: dict[str, Any] = {"model": MODEL, "timeout_s": 5.0}
    options.update(kwargs)
    return OpenAICompatBackend(session, base_url=server.url, **options)


def _formats(server: FakeModelServer) -> list[str | None]:
    return [body.get("response_format", {}).get("type") for body in server.chat_requests]


# --- replies in pieces (defect 2) -----------------------------------------------------------------------


async def test_the_fake_server_really_sends_segments_apart(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    # Without this the tests below would prove nothing: loopback delivers one write as one read.
    server.models = [f"model-{index:03d}" for index in range(200)]
    server.segmented(SEGMENT, pause_s=0.01)
    async with session.get(f"{server.url}/v1/models") as resp:
        first = await resp.content.read(MAX_REPLY_BYTES)
        rest = await resp.read()
    assert len(first) <= SEGMENT
    assert json.loads(first + rest)["data"][0]["id"] == "model-000"


async def test_a_long_model_list_in_segments_is_read_whole(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.models = [f"org-{index:02d}/vision-model-{index:02d}-q4_k_m.gguf" for index in range(40)]
    listing = {
        "object": "list",
        "data": [{"id": m, "object": "model", "owned_by": "test"} for m in server.models],
    }
    assert len(json.dumps(listing)) > 3400
    server.segmented(SEGMENT, pause_s=0.01)
    assert await _backend(session, server).async_list_models() == sorted(server.models)


async def test_a_thinking_reply_in_segments_is_read_whole(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    thoughts = "The person in the frame raises a hand and moves it from side to side. " * 34
    content = f'<think>{thoughts}</think>\n{{"result": "yes"}}'
    assert len(content) > 2400
    server.script(Reply(content=content, segment_bytes=SEGMENT, pause_s=0.01))
    reply = await _backend(session, server).async_complete(_request(thinking=True))
    assert reply.text == content


async def test_an_error_in_segments_is_still_classified(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.segmented(16, pause_s=0.005)
    server.script(context_exceeded())
    with pytest.raises(BackendError) as caught:
        await _backend(session, server).async_complete(_request())
    assert caught.value.reason == "request_too_large"


async def test_a_reply_that_stalls_midway_is_bounded_by_the_timeout(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    # Headers and a first piece arrive, then nothing: reading to the end must not outlive the timeout.
    server.script(Reply(segment_bytes=16, pause_s=30.0))
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        await _backend(session, server, timeout_s=0.5).async_complete(_request())
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_an_oversized_reply_in_pieces_is_refused(
    session: aiohttp.ClientSession, server: FakeModelServer, chunked: bool
) -> None:
    body = b'{"choices": "' + b"x" * MAX_REPLY_BYTES + b'"}'
    server.script(Reply(raw_body=body, segment_bytes=256 * 1024, pause_s=0.0, chunked=chunked))
    with pytest.raises(BadReply):
        await _backend(session, server).async_complete(_request())


async def test_a_reply_just_under_the_cap_in_pieces_is_read(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    padding = " " * (MAX_REPLY_BYTES - 200)
    body = f'{{"choices": [{{"message": {{"content": "{{\\"result\\": \\"no\\"}}"}}}}]}}{padding}'.encode()
    assert len(body) <= MAX_REPLY_BYTES
    server.script(Reply(raw_body=body, segment_bytes=64 * 1024, pause_s=0.0, chunked=True))
    reply = await _backend(session, server).async_complete(_request())
    assert reply.text == '{"result": "no"}'


# --- a 400 is not always a format refusal (defect 3) ------------------------------------------------------


async def test_a_context_size_400_keeps_structured_output(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    backend = _backend(session, server)
    server.script(context_exceeded())
    with pytest.raises(BackendError) as caught:
        await backend.async_complete(_request())
    # One request, not a walk down the format ladder, and a reason the user can act on.
    assert len(server.chat_requests) == 1
    assert caught.value.reason == "request_too_large"
    assert "context size" in str(caught.value)
    await backend.async_complete(_request())
    assert _formats(server) == ["json_schema", "json_schema"]
    assert backend.diagnostics()["response_format"] == "json_schema"


@pytest.mark.parametrize(
    "message",
    [
        "max_tokens must be at least 1, got 0.",
        "Bad Request",
        "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
    ],
)
async def test_other_400s_are_plain_failures(
    session: aiohttp.ClientSession, server: FakeModelServer, message: str
) -> None:
    backend = _backend(session, server)
    server.script(error(400, message))
    with pytest.raises(BackendError) as caught:
        await backend.async_complete(_request())
    if "context" in message:
        assert caught.value.reason == "request_too_large"
    else:
        assert isinstance(caught.value, RequestRejected)
    assert len(server.chat_requests) == 1
    assert backend.diagnostics()["response_format"] == "json_schema"


async def test_a_413_is_request_too_large(session: aiohttp.ClientSession, server: FakeModelServer) -> None:
    server.script(error(413, "Request Entity Too Large"))
    with pytest.raises(BackendError) as caught:
        await _backend(session, server).async_complete(_request())
    assert caught.value.reason == "request_too_large"


@pytest.mark.parametrize(
    "message",
    [
        "response_format type 'json_schema' is not supported",
        "JSON schema conversion failed: unsupported keyword",
        "Failed to parse grammar",
    ],
)
async def test_a_refusal_of_the_format_itself_steps_down(
    session: aiohttp.ClientSession, server: FakeModelServer, message: str
) -> None:
    server.script(error(400, message))
    reply = await _backend(session, server).async_complete(_request())
    assert reply.text == '{"result": "yes"}'
    assert _formats(server) == ["json_schema", "json_object"]


async def test_the_stronger_format_is_tried_again_later(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.script(error(400, "response_format is not available right now"))
    backend = _backend(session, server, format_retry_s=0.3)
    await backend.async_complete(_request())
    await backend.async_complete(_request())
    assert _formats(server) == ["json_schema", "json_object", "json_object"]
    assert backend.diagnostics()["response_format"] == "json_object+schema"
    await asyncio.sleep(0.35)
    await backend.async_complete(_request())
    await backend.async_complete(_request())
    assert _formats(server)[3:] == ["json_schema", "json_schema"]
    assert backend.diagnostics()["response_format"] == "json_schema"


async def test_a_format_still_refused_is_tried_less_often(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    # llama-cpp-python's server never takes json_schema: a trial costs one quick refusal, then waits longer.
    server.accepted_formats = {"json_object"}
    backend = _backend(session, server, format_retry_s=0.3)
    await backend.async_complete(_request())
    await asyncio.sleep(0.35)
    await backend.async_complete(_request())
    await asyncio.sleep(0.35)
    await backend.async_complete(_request())
    assert _formats(server) == ["json_schema", "json_object", "json_schema", "json_object", "json_object"]
    assert backend.diagnostics()["response_format"] == "json_object+schema"


# --- malformed replies are BadReply, nothing else (defect 4b) --------------------------------------------

MALFORMED_BODIES: dict[str, Any] = {
    "text part holding a number": {"choices": [{"message": {"content": [{"type": "text", "text": 42}]}}]},
    "text part holding null": {"choices": [{"message": {"content": [{"type": "text", "text": None}]}}]},
    "text part holding a list": {"choices": [{"message": {"content": [{"type": "text", "text": ["a"]}]}}]},
    "text part holding an object": {
        "choices": [{"message": {"content": [{"type": "text", "text": {"result": "yes"}}]}}]
    },
    "parts without text": {"choices": [{"message": {"content": [{"type": "image_url"}, 3, None, "x"]}}]},
    "null content": {"choices": [{"message": {"content": None}}]},
    "number content": {"choices": [{"message": {"content": 1}}]},
    "object content": {"choices": [{"message": {"content": {"result": "yes"}}}]},
    "message is a string": {"choices": [{"message": "yes"}]},
    "choice is null": {"choices": [None]},
    "choices is an object": {"choices": {"0": {"message": {"content": "yes"}}}},
    "choices is a string": {"choices": "yes"},
    "no choices": {"id": "x"},
    "body is a string": "yes",
    "body is a number": 7,
    "body is null": None,
}


@pytest.mark.parametrize("name", MALFORMED_BODIES)
async def test_malformed_reply_shapes_are_bad_replies(
    session: aiohttp.ClientSession, server: FakeModelServer, name: str
) -> None:
    server.script(Reply(raw_body=json.dumps(MALFORMED_BODIES[name]).encode()))
    backend = _backend(session, server)
    with pytest.raises(BadReply):
        await backend.async_complete(_request())
    assert backend.stats.failures == 1


async def test_an_integer_too_long_to_convert_is_a_bad_reply(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    # Python refuses to convert integers over 4,300 digits with a ValueError that is not a JSONDecodeError.
    raw = b'{"choices": [{"message": {"content": "yes"}}], "usage": {"prompt_tokens": ' + b"9" * 5000 + b"}}"
    server.script(Reply(raw_body=raw))
    with pytest.raises(BadReply):
        await _backend(session, server).async_complete(_request())


async def test_odd_usage_and_model_fields_do_not_fail_a_good_reply(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    body = {
        "choices": [{"message": {"content": [{"type": "text", "text": "yes"}, {"type": "reasoning"}]}}],
        "model": ["not", "a", "name"],
        "usage": {"prompt_tokens": True, "completion_tokens": -3},
    }
    server.script(Reply(raw_body=json.dumps(body).encode()))
    reply = await _backend(session, server).async_complete(_request())
    assert (reply.text, reply.model) == ("yes", MODEL)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (None, None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
content_parts = st.lists(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "reasoning"]), "text": json_values})
    | json_values,
    max_size=4,
)
near_valid_bodies = st.fixed_dictionaries(
    {
        "choices": st.lists(
            st.fixed_dictionaries(
                {"message": st.fixed_dictionaries({"content": content_parts | json_values})}
            )
            | json_values,
            max_size=2,
        )
    },
    optional={"model": json_values, "usage": json_values},
)


@settings(max_examples=200, deadline=None)
@given(body=json_values | near_valid_bodies)
def test_any_body_gives_a_text_reply_or_a_bad_reply(body: Any) -> None:
    try:
        reply = reply_from_body(body, default_model=MODEL, started=time.monotonic())
    except BadReply:
        return
    assert isinstance(reply.text, str)
    assert reply.text.strip()
    assert isinstance(reply.model, str)


# --- cheap under failure, Retry-After exposed (defect 7) --------------------------------------------------


async def test_a_500_costs_one_request_and_carries_retry_after(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.default_reply = error(500, "CUDA error: out of memory", **{"Retry-After": "30"})
    with pytest.raises(ServerError) as caught:
        await _backend(session, server).async_complete(_request())
    assert len(server.chat_requests) == 1
    assert caught.value.retry_after == 30


async def test_a_busy_server_without_retry_after_is_not_retried(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.default_reply = error(503, "Loading model")
    with pytest.raises(ServerUnavailable) as caught:
        await _backend(session, server).async_complete(_request())
    assert len(server.chat_requests) == 1
    assert caught.value.retry_after is None


async def test_a_long_retry_after_is_raised_at_once_for_the_callers_back_off(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.default_reply = rate_limited("5")
    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        await _backend(session, server).async_complete(_request())
    assert time.monotonic() - started < 2.0
    assert caught.value.retry_after == 5
    assert len(server.chat_requests) == 1


async def test_retry_after_as_an_http_date(session: aiohttp.ClientSession, server: FakeModelServer) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    server.default_reply = rate_limited(format_datetime(when, usegmt=True))
    with pytest.raises(RateLimited) as caught:
        await _backend(session, server).async_complete(_request())
    assert caught.value.retry_after is not None
    assert 100 <= caught.value.retry_after <= 120


async def test_short_retry_afters_are_waited_for_within_max_retries(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.default_reply = rate_limited("0.2")
    backend = _backend(session, server, max_retries=3)
    with pytest.raises(RateLimited):
        await backend.async_complete(_request())
    # max_retries bounds the attempts; each of these waits is short.
    assert len(server.chat_requests) == 4
    server.default_reply = Reply()
    server.script(rate_limited("0.2"))
    reply = await _backend(session, server).async_complete(_request())
    assert reply.text == '{"result": "yes"}'


async def test_a_connection_dropped_before_any_byte_is_retried_once(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.script(dropped())
    backend = _backend(session, server)
    reply = await backend.async_complete(_request())
    assert reply.text == '{"result": "yes"}'
    assert (len(server.chat_requests), backend.stats.retries) == (2, 1)
    server.script(dropped(), dropped(), dropped())
    with pytest.raises(CannotConnect):
        await backend.async_complete(_request())
    assert len(server.chat_requests) == 4


async def test_a_refused_connection_fails_at_once(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    await server.stop()
    started = time.monotonic()
    with pytest.raises(ServerUnreachable):
        await _backend(session, server).async_complete(_request())
    # A server that is down stays down for the next few hundred milliseconds: no back-off inside the check.
    assert time.monotonic() - started < 1.0


async def test_a_key_revoked_while_running_is_invalid_auth_at_once(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.api_key = "sk-live-key"
    server.revoke_key_after = 2
    backend = _backend(session, server, api_key="sk-live-key")
    await backend.async_complete(_request())
    await backend.async_complete(_request())
    with pytest.raises(InvalidAuth) as caught:
        await backend.async_complete(_request())
    assert len(server.chat_requests) == 3
    assert caught.value.reason == "invalid_auth"
    with pytest.raises(InvalidAuth):
        await backend.async_list_models()


async def test_the_model_list_fails_the_same_way(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    backend = _backend(session, server)
    server.models_status = 500
    with pytest.raises(ServerError):
        await backend.async_list_models()
    server.models_status = 429
    with pytest.raises(RateLimited):
        await backend.async_list_models()
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 12 ", 12.0),
        ("0.5", 0.5),
        ("0", 0.0),
        ("99999999999", MAX_RETRY_AFTER_S),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_S),
        ("nan", None),
        ("inf", None),
        ("-5", None),
        ("1e9", None),
        ("1_000", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_parsing_is_bounded_and_finite(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_every_backend_error_carries_a_sane_retry_after() -> None:
    assert BackendError("x").retry_after is None
    assert RateLimited("busy", 10).retry_after == 10
    assert ServerError("boom", retry_after=float("nan")).retry_after is None
    assert ServerError("boom", retry_after=float("inf")).retry_after is None
    assert ServerError("boom", retry_after=-3).retry_after == 0
    assert CannotConnect("down", retry_after=1e9).retry_after == MAX_RETRY_AFTER_S


# --- secrets stay out of logs and errors under every fault ------------------------------------------------


async def test_faults_never_log_the_key_or_the_image(
    session: aiohttp.ClientSession, server: FakeModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = "sk-very-secret-key"
    server.api_key = key
    server.segmented(SEGMENT, pause_s=0.001)
    server.script(
        error(400, f"response_format refused for {key}"),
        dropped(),
        rate_limited("0.1"),
        error(500, f"boom {key}"),
        context_exceeded(),
    )
    backend = _backend(session, server, api_key=key)
    errors: list[str] = []
    for _ in range(3):
        try:
            await backend.async_complete(_request())
        except BackendError as err:
            errors.append(str(err))
    server.revoke_key_after = 0
    with pytest.raises(InvalidAuth) as caught:
        await backend.async_complete(_request())
    errors.append(str(caught.value))
    image = base64.b64encode(JPEG).decode()
    for text in (caplog.text, *errors, str(backend.diagnostics())):
        assert key not in text
        assert image not in text
