"""The OpenAI-compatible backend against a real loopback server, without Home Assistant."""

from __future__ import annotations

import base64
import time

import aiohttp
import pytest

from custom_components.miloco.engine.backends.base import VisionRequest
from custom_components.miloco.engine.backends.errors import (
    BackendClosed,
    BackendTimeout,
    BadReply,
    CannotConnect,
    InvalidAuth,
    ModelNotFound,
    ModelRejectsImages,
    RateLimited,
    ServerError,
)
from custom_components.miloco.engine.backends.openai_compat import (
    MAX_REPLY_BYTES,
    OpenAICompatBackend,
    normalize_base_url,
    redact_url,
)
from custom_components.miloco.engine.parse import yes_no_schema

from ..model_server import FakeModelServer, Reply, error, hang

JPEG = b"\xff\xd8\xff\xe0fake-jpeg-bytes\xff\xd9"


def _request(**overrides: object) -> VisionRequest:
    fields: dict[str, object] = {
        "system_prompt": "You are a camera assistant.",
        "frames": (JPEG, JPEG + b"2"),
        "question": "Is someone waving?",
        "lead_in": "Image sequence is as follows:",
        "json_schema": yes_no_schema(),
        "max_tokens": 32,
    }
    fields.update(overrides)
    return VisionRequest(**fields)  # type: ignore[arg-type]


def _backend(
    session: aiohttp.ClientSession, server: FakeModelServer, **kwargs: object
) -> OpenAICompatBackend:
    options: dict[str, object] = {"model": "mimo-vl-miloco-7b", "timeout_s": 5.0, "max_retry_wait_s": 1.0}
    options.update(kwargs)
    return OpenAICompatBackend(session, base_url=server.url, **options)  # type: ignore[arg-type]


async def test_request_layout_frames_oldest_first_question_last(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    reply = await _backend(session, server).async_complete(_request())
    assert reply.text == '{"result": "yes"}'
    assert reply.usage.prompt_tokens == 100
    (body,) = server.chat_requests
    assert body["model"] == "mimo-vl-miloco-7b"
    assert body["temperature"] == 0
    assert body["max_tokens"] == 32
    content = body["messages"][1]["content"]
    assert [part["type"] for part in content] == ["text", "image_url", "image_url", "text"]
    assert content[0]["text"] == "Image sequence is as follows:"
    urls = [part["image_url"]["url"] for part in content[1:3]]
    assert [base64.b64decode(url.removeprefix("data:image/jpeg;base64,")) for url in urls] == [
        JPEG,
        JPEG + b"2",
    ]
    assert content[-1]["text"] == "Is someone waving?/no_think"


async def test_thinking_on_leaves_the_question_alone(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    await _backend(session, server).async_complete(_request(thinking=True))
    assert server.chat_requests[0]["messages"][1]["content"][-1]["text"] == "Is someone waving?"


async def test_response_format_ladder_is_remembered(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.accepted_formats = {"none"}
    backend = _backend(session, server)
    await backend.async_complete(_request())
    kinds = [body.get("response_format", {}).get("type") for body in server.chat_requests]
    assert kinds == ["json_schema", "json_object", "json_object", None]
    assert "schema" in server.chat_requests[1]["response_format"]
    assert "schema" not in server.chat_requests[2]["response_format"]
    # The next request starts where the server is known to work.
    await backend.async_complete(_request())
    assert "response_format" not in server.chat_requests[-1]
    assert backend.diagnostics()["response_format"] == "none"


async def test_llama_cpp_python_servers_500_on_json_schema_steps_down(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.accepted_formats = {"json_object"}
    server.format_rejection_status = 500
    backend = _backend(session, server)
    await backend.async_complete(_request())
    kinds = [body["response_format"]["type"] for body in server.chat_requests]
    # Stepped down at once: a format refusal is not retried like a crash.
    assert kinds == ["json_schema", "json_object"]
    assert backend.stats.retries == 0


async def test_server_rejecting_everything_is_a_server_error(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.accepted_formats = set()
    with pytest.raises(ServerError):
        await _backend(session, server).async_complete(_request())


@pytest.mark.parametrize(
    ("status", "expected"), [(401, InvalidAuth), (403, InvalidAuth), (404, ModelNotFound)]
)
async def test_status_errors(
    session: aiohttp.ClientSession, server: FakeModelServer, status: int, expected: type[Exception]
) -> None:
    server.script(error(status, "nope"))
    with pytest.raises(expected):
        await _backend(session, server).async_complete(_request())
    assert len(server.chat_requests) == 1


async def test_rejected_images(session: aiohttp.ClientSession, server: FakeModelServer) -> None:
    server.reject_images = True
    with pytest.raises(ModelRejectsImages):
        await _backend(session, server).async_complete(_request())


@pytest.mark.parametrize(
    "message",
    [
        "The model `x` does not exist.",
        "Qwen2-7B is not a multimodal model",
        "At most 0 image(s) may be provided in one request.",
        "Invalid content type. image_url is only supported by certain models.",
        "model does not support images",
    ],
)
async def test_image_rejection_wordings(
    session: aiohttp.ClientSession, server: FakeModelServer, message: str
) -> None:
    server.script(error(400, message))
    expected = ModelNotFound if "does not exist" in message else ModelRejectsImages
    with pytest.raises(expected):
        await _backend(session, server).async_complete(_request())


async def test_retry_after_is_honoured(session: aiohttp.ClientSession, server: FakeModelServer) -> None:
    server.script(error(429, "slow down", **{"Retry-After": "0.4"}))
    backend = _backend(session, server)
    started = time.monotonic()
    reply = await backend.async_complete(_request())
    assert time.monotonic() - started >= 0.4
    assert reply.text == '{"result": "yes"}'
    assert backend.stats.retries == 1


async def test_long_retry_after_is_not_waited_for(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.script(error(503, "loading", **{"Retry-After": "120"}))
    with pytest.raises(RateLimited) as caught:
        await _backend(session, server).async_complete(_request())
    assert caught.value.retry_after == 120
    assert len(server.chat_requests) == 1


async def test_a_server_error_fails_the_call_at_once(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    # The caller checks again soon and backs off between checks; retrying a crash inside one only adds load.
    server.default_reply = error(500, "boom")
    backend = _backend(session, server, max_retries=2)
    with pytest.raises(ServerError):
        await backend.async_complete(_request())
    assert len(server.chat_requests) == 1
    assert backend.stats.failures == 1


async def test_timeout_covers_the_whole_call(session: aiohttp.ClientSession, server: FakeModelServer) -> None:
    server.script(hang())
    backend = _backend(session, server, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        await backend.async_complete(_request())
    assert time.monotonic() - started < 2.0


async def test_unreachable_server(session: aiohttp.ClientSession, server: FakeModelServer) -> None:
    await server.stop()
    backend = _backend(session, server, max_retries=1)
    with pytest.raises(CannotConnect) as caught:
        await backend.async_complete(_request())
    assert str(server.port) not in str(caught.value)


async def test_oversized_reply_is_refused(session: aiohttp.ClientSession, server: FakeModelServer) -> None:
    server.script(Reply(raw_body=b"{" + b" " * MAX_REPLY_BYTES + b"}"))
    with pytest.raises(BadReply):
        await _backend(session, server).async_complete(_request())


@pytest.mark.parametrize(
    "raw", [b"not json", b'{"choices": []}', b'{"choices": [{"message": {"content": "  "}}]}', b"[1, 2]"]
)
async def test_malformed_bodies(session: aiohttp.ClientSession, server: FakeModelServer, raw: bytes) -> None:
    server.script(Reply(raw_body=raw))
    with pytest.raises(BadReply):
        await _backend(session, server).async_complete(_request())


async def test_content_parts_are_joined(session: aiohttp.ClientSession, server: FakeModelServer) -> None:
    body = b'{"choices": [{"message": {"content": [{"type": "text", "text": "{\\"result\\""}, {"type": "text", "text": ": \\"no\\"}"}]}}]}'
    server.script(Reply(raw_body=body, headers={"Content-Type": "application/json"}))
    reply = await _backend(session, server).async_complete(_request())
    assert reply.text == '{"result": "no"}'


async def test_key_is_sent_and_scrubbed_from_errors(
    session: aiohttp.ClientSession, server: FakeModelServer
) -> None:
    server.api_key = "sk-abc123"
    server.script(error(500, "broken for sk-abc123"), error(500, "sk-abc123"), error(500, "sk-abc123"))
    backend = _backend(session, server, api_key="sk-abc123")
    with pytest.raises(ServerError) as caught:
        await backend.async_complete(_request())
    assert "sk-abc123" not in str(caught.value)
    assert server.headers_seen[-1]["Authorization"] == "Bearer sk-abc123"
    assert "sk-abc123" not in str(backend.diagnostics())


async def test_model_listing(session: aiohttp.ClientSession, server: FakeModelServer) -> None:
    server.models = ["b", "a", "b"]
    assert await _backend(session, server).async_list_models() == ["a", "b"]
    server.models_missing = True
    assert await _backend(session, server).async_list_models() == []


async def test_closed_backend_refuses(session: aiohttp.ClientSession, server: FakeModelServer) -> None:
    backend = _backend(session, server)
    await backend.async_close()
    with pytest.raises(BackendClosed):
        await backend.async_complete(_request())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://10.0.0.2:8080", "http://10.0.0.2:8080/v1"),
        ("http://10.0.0.2:8080/v1/", "http://10.0.0.2:8080/v1"),
        ("https://ai.example.com/openai", "https://ai.example.com/openai/v1"),
        ("https://ai.example.com/openai/v1/chat/completions", "https://ai.example.com/openai/v1"),
        ("http://host:11434/v1/models?x=1#frag", "http://host:11434/v1"),
    ],
)
def test_normalize_base_url(raw: str, expected: str) -> None:
    assert normalize_base_url(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "localhost:8080", "file:///etc/passwd", "http://", "::::"])
def test_normalize_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_base_url(raw)


def test_redact_url() -> None:
    assert redact_url("http://user:pw@host:1/v1") == "http://host:1/v1"
    assert redact_url("http://host:1/v1") == "http://host:1/v1"
