"""A real OpenAI-compatible model server on loopback whose replies a test scripts."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
import json
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


def error(status: int, message: str = "error", **headers: str) -> Reply:
    """Return an OpenAI-style error reply."""
    return Reply(status=status, error_message=message, content=None, headers=headers)


def thinking(answer: str = GOOD_ANSWER) -> Reply:
    """Return a reply with a chain of thought before the answer."""
    return Reply(content=f"<think>The image shows a red square on white. So yes.</think>\n{answer}")


def boxed(answer: str = GOOD_ANSWER) -> Reply:
    """Return a reply in the \\boxed{} form MiMo-VL uses with thinking on."""
    return Reply(content=f"<think>Looks red.</think>\\boxed{{{answer}}}")


def garbage() -> Reply:
    """Return a 200 reply whose content no parser can understand."""
    return Reply(content="I am a teapot and I refuse to say.")


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
        self.in_flight = 0
        self.in_flight_max = 0
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

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

    async def stop(self) -> None:
        """Release hanging requests and stop listening."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authorised(self, request: web.Request) -> bool:
        self.headers_seen.append(dict(request.headers))
        if self.api_key is None:
            return True
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _models(self, request: web.Request) -> web.Response:
        self.requests.append({"path": "/v1/models"})
        if not self._authorised(request):
            return _error_response(401, "Incorrect API key provided")
        if self.models_missing:
            return web.Response(status=404, text="Not Found")
        if self.models_status != 200:
            return _error_response(self.models_status, "models failed")
        data = [{"id": model, "object": "model", "owned_by": "test"} for model in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        try:
            return await self._answer_chat(request)
        finally:
            self.in_flight -= 1

    async def _answer_chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if not self._authorised(request):
            return _error_response(401, f"Incorrect API key provided: {request.headers.get('Authorization')}")
        if self.replies:
            reply = self.replies.popleft()
        elif self.responder is not None:
            reply = self.responder(body)
        else:
            reply = self.default_reply
        if reply.hang:
            await self._release.wait()
            return _error_response(503, "shutting down")
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        rejection = self._reject(body)
        if rejection is not None:
            return rejection
        if reply.raw_body is not None:
            return web.Response(status=reply.status, body=reply.raw_body, headers=reply.headers)
        if reply.status != 200:
            return _error_response(reply.status, reply.error_message or "error", reply.headers)
        return web.json_response(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content},
                        "finish_reason": "stop",
                    }
                ],
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


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"error": {"message": message, "type": "error", "code": status}}),
        content_type="application/json",
        headers=headers,
    )
