"""A scripted model server that can hold chat requests until the test lets them through (a slow model)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .model_server import FakeModelServer, Reply


class GatedModelServer(FakeModelServer):
    """While the gate is closed, every chat request waits; opened, the held ones get the answer given then."""

    def __init__(self) -> None:
        """Start with the gate open."""
        super().__init__()
        self._gate: asyncio.Event | None = None
        self._held_answer: Callable[[dict[str, Any]], Reply] | None = None
        # Which requests the closed gate holds (all when None); the others are answered at once.
        self._holds: Callable[[dict[str, Any]], bool] | None = None
        # The bodies of the requests held now.
        self.held: list[dict[str, Any]] = []

    def close_gate(self, holds: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """Hold every chat request from now on until open_gate(), or only those `holds` picks."""
        self._gate = asyncio.Event()
        self._holds = holds

    def open_gate(self, answer: Callable[[dict[str, Any]], Reply] | None = None) -> None:
        """Let the held requests through; `answer` decides their replies (the usual replies otherwise)."""
        self._held_answer = answer
        if self._gate is not None:
            self._gate.set()
        self._gate = None

    async def _answer_chat(self, request: web.Request) -> web.StreamResponse:
        if (gate := self._gate) is None:
            return await super()._answer_chat(request)
        # aiohttp keeps the body it read: the server's own handler reads it again below.
        body = await request.json()
        if self._holds is not None and not self._holds(body):
            return await super()._answer_chat(request)
        self.held.append(body)
        try:
            await gate.wait()
        finally:
            self.held.remove(body)
        if self._held_answer is not None:
            # Scripted just before the handler reads the body (no await in between): this request's reply.
            self.replies.appendleft(self._held_answer(body))
        return await super()._answer_chat(request)
