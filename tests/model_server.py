"""A real OpenAI-compatible model server on loopback whose replies a test scripts."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
import json
import math
from typing import Any

from aiohttp import web

GOOD_ANSWER = '{"result": "yes"}'


@dataclass(kw_only=True)
class Reply:
    """What the server answers to one chat-completions request."""

    content: str | None = GOOD_ANSWER
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: bytes | None = None
    error_message: str | None = None
    delay_s: float = 0.0
    hang: bool = False
    usage: dict[str, int] | None = None
    # The llama.cpp-style error "type" (e.g. exceed_context_size_error) and extra fields of the error object.
    error_type: str = "error"
    error_fields: dict[str, Any] = field(default_factory=dict)
    # Close the connection without answering (a server crash or restart before any byte of the reply).
    drop: bool = False
    # Write this reply in pieces of this many bytes with a pause after each (None: the server's setting).
    segment_bytes: int | None = None
    pause_s: float | None = None
    # Send a segmented reply without Content-Length (chunked), so its size shows only while reading it.
    chunked: bool = False
    # The choice's `logprobs` block (OpenAI's shape), sent when the request asked for log-probabilities;
    # see token_logprobs() and yes_no_logprobs().
    logprobs: Any = None


def error(status: int, message: str = "error", **headers: str) -> Reply:
    """Return an OpenAI-style error reply."""
    return Reply(status=status, error_message=message, content=None, headers=headers)


def context_exceeded(n_prompt_tokens: int = 5120, n_ctx: int = 4096) -> Reply:
    """Return llama.cpp's answer to a request over the context size (HTTP 400, not a format refusal)."""
    return Reply(
        status=400,
        content=None,
        error_message="the request exceeds the available context size, try increasing it",
        error_type="exceed_context_size_error",
        error_fields={"n_prompt_tokens": n_prompt_tokens, "n_ctx": n_ctx},
    )


def rate_limited(retry_after: str, status: int = 429) -> Reply:
    """Return a busy answer (429 or 503) carrying a Retry-After header (seconds or an HTTP date)."""
    return error(status, "Too many requests", **{"Retry-After": retry_after})


def dropped() -> Reply:
    """Return a reply that closes the connection before sending any byte."""
    return Reply(drop=True)


def thinking(answer: str = GOOD_ANSWER) -> Reply:
    """Return a reply with a chain of thought before the answer."""
    return Reply(content=f"<think>The image shows a red square on white. So yes.</think>\n{answer}")


def boxed(answer: str = GOOD_ANSWER) -> Reply:
    """Return a reply in the \\boxed{} form MiMo-VL uses with thinking on."""
    return Reply(content=f"<think>Looks red.</think>\\boxed{{{answer}}}")


def garbage() -> Reply:
    """Return a 200 reply whose content no parser can understand."""
    return Reply(content="I am a teapot and I refuse to say.")


def token_logprobs(*tokens: tuple[str, float, dict[str, float]]) -> dict[str, Any]:
    """Return an OpenAI `logprobs` block from (token, probability, {alternative: probability}) triples."""
    return {
        "content": [
            {
                "token": token,
                "logprob": math.log(probability),
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": alternative, "logprob": math.log(p), "bytes": list(alternative.encode())}
                    for alternative, p in top.items()
                    if p > 0
                ],
            }
            for token, probability, top in tokens
        ],
        "refusal": None,
    }


def yes_no_logprobs(answers: dict[str, float]) -> Reply:
    """Return a JSON reply of yes/no answers (dotted paths, e.g. "rules.r1") with P(yes) as scripted.

    Each answer is its own token (` "` before it, `"` after), chosen by its probability: "yes" at P ≥ 0.5.
    """
    tree: dict[str, Any] = {}
    for path in answers:
        *parents, leaf = path.split(".")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = path
    tokens: list[tuple[str, float, dict[str, float]]] = []

    def emit(node: dict[str, Any]) -> None:
        tokens.append(("{", 1.0, {}))
        for index, (key, value) in enumerate(node.items()):
            tokens.append((("" if index == 0 else ", ") + json.dumps(key) + ":", 1.0, {}))
            if isinstance(value, dict):
                tokens.append((" ", 1.0, {}))
                emit(value)
                continue
            p_yes = answers[value]
            chosen, p_chosen = ("yes", p_yes) if p_yes >= 0.5 else ("no", 1.0 - p_yes)
            tokens.extend(
                [(' "', 1.0, {}), (chosen, p_chosen, {"yes": p_yes, "no": 1.0 - p_yes}), ('"', 1.0, {})]
            )
        tokens.append(("}", 1.0, {}))

    emit(tree)
    block = token_logprobs(*tokens)
    return Reply(content="".join(token for token, _, _ in tokens), logprobs=block)


def hang() -> Reply:
    """Return a reply that never comes (until the server stops)."""
    return Reply(hang=True)


class FakeModelServer:
    """An aiohttp app speaking /v1/models and /v1/chat/completions, scripted per request."""

    def __init__(self) -> None:
        """Start with one vision model and good answers."""
        self.models: list[str] = ["mimo-vl-miloco-7b"]
        self.models_status = 200
        self.models_missing = False
        self.api_key: str | None = None
        self.default_reply = Reply()
        self.replies: deque[Reply] = deque()
        # When set, answers every chat request not scripted in `replies`, from the request body.
        self.responder: Callable[[dict[str, Any]], Reply] | None = None
        self.requests: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.reject_images = False
        self.accepted_formats: set[str] = {"json_schema", "json_object", "none"}
        self.require_schema_with_json_object = False
        self.format_rejection_status = 400
        # Refuse requests asking for log-probabilities (HTTP 400 naming them), as servers without them do.
        self.refuse_logprobs = False
        # Write every answer in segments of this many bytes with a pause after each, as a slow LAN link
        # does (1,448 bytes is a TCP segment's payload on Ethernet); None writes each answer at once.
        self.segment_bytes: int | None = None
        self.pause_s = 0.0
        # When set, the key is "revoked" after this many authorised requests: later ones get HTTP 401.
        self.revoke_key_after: int | None = None
        self._authorised_count = 0
        self.in_flight = 0
        self.in_flight_max = 0
        self._open_transports: set[asyncio.BaseTransport] = set()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def segmented(self, segment_bytes: int = 1448, pause_s: float = 0.01) -> None:
        """Write every later answer (model list, replies and errors) in small segments with pauses."""
        self.segment_bytes = segment_bytes
        self.pause_s = pause_s

    @property
    def url(self) -> str:
        """Return the server's root URL (without /v1)."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next chat requests; later ones get the default reply."""
        self.replies.extend(replies)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """Return the bodies of chat-completions requests received so far."""
        return [body for body in self.requests if "messages" in body]

    async def start(self, port: int = 0) -> None:
        """Listen on loopback (a free port unless one is given)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._release = asyncio.Event()
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def kill(self) -> None:
        """Die like a crashed process: cut every open connection mid-request, then stop listening."""
        for transport in list(self._open_transports):
            transport.abort()
        await self.stop()

    async def stop(self) -> None:
        """Release hanging requests and stop listening."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authorised(self, request: web.Request) -> bool:
        self.headers_seen.append(dict(request.headers))
        if self.revoke_key_after is not None and self._authorised_count >= self.revoke_key_after:
            return False
        self._authorised_count += 1
        if self.api_key is None:
            return True
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self.requests.append({"path": "/v1/models"})
        if not self._authorised(request):
            return await self._write(request, _error_response(401, "Incorrect API key provided"))
        if self.models_missing:
            return await self._write(request, web.Response(status=404, text="Not Found"))
        if self.models_status != 200:
            return await self._write(request, _error_response(self.models_status, "models failed"))
        data = [{"id": model, "object": "model", "owned_by": "test"} for model in self.models]
        return await self._write(request, web.json_response({"object": "list", "data": data}))

    async def _write(
        self, request: web.Request, response: web.Response, reply: Reply | None = None
    ) -> web.StreamResponse:
        """Send a finished response whole, or in segments with pauses when this server or reply says so."""
        segment = reply.segment_bytes if reply is not None and reply.segment_bytes else self.segment_bytes
        if not segment:
            return response
        pause = reply.pause_s if reply is not None and reply.pause_s is not None else self.pause_s
        body = response.body
        assert isinstance(body, bytes)
        stream = web.StreamResponse(status=response.status, headers=response.headers)
        if reply is not None and reply.chunked:
            stream.enable_chunked_encoding()
        else:
            stream.content_length = len(body)
        await stream.prepare(request)
        for start in range(0, len(body), segment):
            # write() waits until the transport has taken the bytes; the pause makes each its own segment.
            await stream.write(body[start : start + segment])
            # A long pause (a stalled reply) ends when the server stops, so that stopping never waits on it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._release.wait()
            if self._release.is_set():
                return stream
        await stream.write_eof()
        return stream

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        transport = request.transport
        if transport is not None:
            self._open_transports.add(transport)
        try:
            return await self._answer_chat(request)
        finally:
            self.in_flight -= 1
            if transport is not None:
                self._open_transports.discard(transport)

    async def _answer_chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if not self._authorised(request):
            message = f"Incorrect API key provided: {request.headers.get('Authorization')}"
            return await self._write(request, _error_response(401, message))
        if self.replies:
            reply = self.replies.popleft()
        elif self.responder is not None:
            reply = self.responder(body)
        else:
            reply = self.default_reply
        if reply.hang:
            await self._release.wait()
            return _error_response(503, "shutting down")
        if reply.drop:
            # The peer sees the connection close before any byte of a reply.
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return await self._write(request, self._answer(body, reply), reply)

    def _answer(self, body: dict[str, Any], reply: Reply) -> web.Response:
        """Return the complete response to one chat request."""
        rejection = self._reject(body)
        if rejection is not None:
            return rejection
        if reply.raw_body is not None:
            return web.Response(status=reply.status, body=reply.raw_body, headers=reply.headers)
        if reply.status != 200:
            return _error_response(
                reply.status,
                reply.error_message or "error",
                reply.headers,
                error_type=reply.error_type,
                **reply.error_fields,
            )
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": reply.content},
            "finish_reason": "stop",
        }
        if body.get("logprobs") and reply.logprobs is not None:
            choice["logprobs"] = reply.logprobs
        return web.json_response(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [choice],
                "usage": reply.usage or {"prompt_tokens": 100, "completion_tokens": 8, "total_tokens": 108},
            },
            headers=reply.headers,
        )

    def _reject(self, body: dict[str, Any]) -> web.Response | None:
        """Refuse what this server is told not to support, the way real servers do."""
        if body.get("model") not in self.models and self.models:
            return _error_response(404, f"The model `{body.get('model')}` does not exist.")
        has_images = any(
            isinstance(part, dict) and part.get("type") == "image_url"
            for message in body.get("messages", [])
            if isinstance(message.get("content"), list)
            for part in message["content"]
        )
        if has_images and self.reject_images:
            return _error_response(
                500,
                "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj",
            )
        if body.get("logprobs") and self.refuse_logprobs:
            return _error_response(400, "logprobs is not supported by this server")
        response_format = body.get("response_format")
        kind = "none" if response_format is None else response_format.get("type")
        if kind == "json_object" and "schema" not in response_format and self.require_schema_with_json_object:
            kind = "json_object_plain"
        if kind not in self.accepted_formats:
            if self.format_rejection_status == 500:
                # llama-cpp-python's server: a pydantic validation error surfaced as HTTP 500.
                return _error_response(
                    500,
                    "1 validation error:\n {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                    "'msg': \"Input should be 'text' or 'json_object'\"}",
                )
            return _error_response(400, f"response_format type {kind!r} is not supported")
        return None


def _error_response(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    error_type: str = "error",
    **fields: Any,
) -> web.Response:
    error_object = {"code": status, "message": message, "type": error_type, **fields}
    return web.Response(
        status=status,
        text=json.dumps({"error": error_object}),
        content_type="application/json",
        headers=headers,
    )
