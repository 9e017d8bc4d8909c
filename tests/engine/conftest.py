"""Fixtures shared by the engine tests: an HTTP session and the loopback model server, without Home Assistant."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import aiohttp
import pytest

from ..model_server import FakeModelServer


@pytest.fixture
async def session() -> AsyncGenerator[aiohttp.ClientSession]:
    """Return a client session of the test's own, as the engine gets one from its host."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def server(model_server: FakeModelServer) -> FakeModelServer:
    """Return the loopback model server (tests/conftest.py runs it) that the engine's clients talk to."""
    return model_server
