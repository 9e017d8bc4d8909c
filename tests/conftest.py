"""Shared fixtures: the real HA harness with our custom integration enabled."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from pathlib import Path

import pytest

# Import the integration before the harness's `hass` fixture runs, so HA finds our
# custom_components package instead of the harness's own (see docs/development.md).
from custom_components.miloco.const import DOMAIN
from testkit.llama_server import KINDS, LlamaServer, cpp_server_skip_reason, make_server
from testkit.ports import free_port

from .model_server import FakeModelServer

assert DOMAIN == "miloco"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(request: pytest.FixtureRequest) -> None:
    """Let every test that runs Home Assistant load custom integrations from this repository."""
    # Engine tests run without HA; only tests that use `hass` pay for it.
    if "hass" in request.fixturenames:
        request.getfixturevalue("enable_custom_integrations")


@pytest.fixture
async def model_server(socket_enabled: None) -> AsyncGenerator[FakeModelServer]:
    """Run a scriptable OpenAI-compatible model server on loopback for one test."""
    # The harness blocks sockets; a loopback server is the one real network peer our tests may use.
    server = FakeModelServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def second_server(socket_enabled: None) -> AsyncGenerator[FakeModelServer]:
    """Run a second model server on loopback: the fallback, another machine of the house."""
    server = FakeModelServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(params=KINDS, ids=[f"{kind}-server" for kind in KINDS])
def llama_server(
    request: pytest.FixtureRequest, socket_enabled: None, tmp_path: Path
) -> Generator[LlamaServer]:
    """Run one of llama.cpp's OpenAI-compatible servers with the tiny model on a free loopback port."""
    if request.param == "cpp" and (reason := cpp_server_skip_reason()):
        pytest.skip(reason)
    server = make_server(request.param, free_port(), tmp_path / "llama-server.log")
    server.start()
    yield server
    server.stop()
