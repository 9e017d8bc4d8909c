"""A scripted Ollama-compatible server on loopback: it calls one tool, then answers with what the tool returned."""

from __future__ import annotations

import ast
import json
from typing import Any

from aiohttp import web

MODEL = "llama3.2:latest"


class ScriptedOllama:
    """Speaks /api/tags, /api/show and streaming /api/chat: a tool call first, then text carrying its result."""

    def __init__(self, tool: str, arguments: dict[str, Any]) -> None:
        """Call `tool` with `arguments` on the first chat turn."""
        self.tool = tool
        self.arguments = arguments
        self.chats: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Return the server's root URL."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/show", self._show)
        app.router.add_post("/api/chat", self._chat)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [{"model": MODEL, "name": MODEL, "size": 1, "digest": "0"}]})

    async def _show(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"modelfile": "", "details": {}, "model_info": {}, "capabilities": ["tools"]}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.chats.append(body)
        results = [message["content"] for message in body["messages"] if message["role"] == "tool"]
        if results:
            message = {"role": "assistant", "content": f"Miloco says: {spoken(results[-1])}"}
        else:
            call = {"function": {"name": self.tool, "arguments": self.arguments}}
            message = {"role": "assistant", "content": "", "tool_calls": [call]}
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for part in (
            {"model": MODEL, "created_at": "2026-01-01T00:00:00Z", "message": message, "done": False},
            {
                "model": MODEL,
                "created_at": "2026-01-01T00:00:01Z",
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": "stop",
            },
        ):
            await response.write(json.dumps(part).encode() + b"\n")
        await response.write_eof()
        return response


def spoken(tool_result: str) -> str:
    """Return what an agent would say of a look tool's result: each camera's answer, or the error text."""
    try:
        data = json.loads(tool_result)
    except ValueError:
        # HA 2026's Ollama agent sends the tool's ToolResult as Python's text of it.
        try:
            data = ast.literal_eval(tool_result)
        except (ValueError, SyntaxError):
            return tool_result
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]
    if isinstance(data, dict) and isinstance(data.get("answers"), list):
        return " ".join(str(answer.get("answer")) for answer in data["answers"])
    return str(data)
