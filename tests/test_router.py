"""Many servers behind a real router: Debian's HAProxy in front of two loopback model servers, one entry on it."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
import socket

from homeassistant.const import EVENT_STATE_CHANGED, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import Event, HomeAssistant, callback
import pytest

from testkit.router import HAProxyRouter

from .model_server import FakeModelServer, Reply, hang
from .perception_helpers import answer, wait_for, watch
from .scenes import SceneCamera, waving_hand

# Each server needs this long per request: long enough that two cameras keep both servers' slots busy.
SERVICE_S = 0.3


@pytest.fixture
async def servers(socket_enabled: None) -> AsyncGenerator[tuple[FakeModelServer, FakeModelServer]]:
    """Run two model servers on loopback, each answering after SERVICE_S."""
    pair = (FakeModelServer(), FakeModelServer())
    for server in pair:
        server.default_reply = Reply(content=answer().content, delay_s=SERVICE_S)
        await server.start()
    yield pair
    for server in pair:
        await server.stop()


@pytest.fixture
async def router(
    hass: HomeAssistant, servers: tuple[FakeModelServer, FakeModelServer], tmp_path: Path
) -> AsyncGenerator[HAProxyRouter]:
    """Run HAProxy in front of both servers, one request at a time per server, configured in tmp_path."""
    # Writing the configuration and starting the process block: off the event loop.
    proxy = await hass.async_add_executor_job(
        HAProxyRouter, tmp_path, [("127.0.0.1", server.port) for server in servers]
    )
    await hass.async_add_executor_job(proxy.start)
    yield proxy
    await hass.async_add_executor_job(proxy.stop)


def _refuses_connections(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_checks_spread_over_the_servers_and_go_on_when_one_dies(
    hass: HomeAssistant,
    servers: tuple[FakeModelServer, FakeModelServer],
    router: HAProxyRouter,
    tmp_path: Path,
) -> None:
    first, second = servers
    config = router.config_path.read_text(encoding="utf-8")
    assert router.config_path.parent == tmp_path
    assert f"bind 127.0.0.1:{router.port}" in config
    assert "balance leastconn" in config
    cameras = [SceneCamera(f"Cam {index}", waving_hand()) for index in range(2)]
    # The entry knows only the router; "requests at once" (2) is the router's total: 2 servers x 1 slot.
    entry = await watch(hass, router, *cameras)
    watchers = list(entry.runtime_data.watchers.values())

    # Least connections spreads the checks over both servers, one request at a time on each.
    await wait_for(lambda: len(first.chat_requests) >= 3 and len(second.chat_requests) >= 3, within=30)
    assert first.in_flight_max == 1
    assert second.in_flight_max == 1
    await wait_for(lambda: all(_person(hass, index) == STATE_ON for index in range(2)))
    assert sum(watcher.stats.failures for watcher in watchers) == 0
    unavailable: list[str] = []

    @callback
    def note_unavailable(event: Event) -> None:
        new_state = event.data.get("new_state")
        if new_state is not None and new_state.state == STATE_UNAVAILABLE:
            unavailable.append(event.data["entity_id"])

    hass.bus.async_listen(EVENT_STATE_CHANGED, note_unavailable)

    # The first server dies with a request in hand: it answers that one 503 as it shuts down.
    first.script(hang())
    await wait_for(lambda: not first.replies and first.in_flight == 1, within=30)
    checks_before = sum(watcher.stats.checks for watcher in watchers)
    answered_by_second = len(second.chat_requests)
    await first.stop()
    served_by_first = len(first.chat_requests)

    # Checks go on through the second server alone.
    await wait_for(
        lambda: (
            sum(watcher.stats.checks for watcher in watchers) >= checks_before + 6
            and len(second.chat_requests) >= answered_by_second + 6
        ),
        within=30,
    )
    assert len(first.chat_requests) == served_by_first
    assert second.in_flight_max == 1
    # The router took the dying server's request to the other one: no check failed, nothing went unavailable.
    assert sum(watcher.stats.failures for watcher in watchers) == 0
    assert unavailable == []
    assert all(_person(hass, index) == STATE_ON for index in range(2))
    stats = await hass.async_add_executor_job(router.stats)
    assert stats["gpu1"]["status"].startswith("DOWN")
    assert stats["gpu2"]["status"] == "UP"
    assert int(stats["gpu1"]["wretr"]) + int(stats["gpu1"]["wredis"]) >= 1

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_add_executor_job(router.stop)
    assert not router.running
    assert await hass.async_add_executor_job(_refuses_connections, router.port)


def _person(hass: HomeAssistant, camera: int) -> str | None:
    state = hass.states.get(f"binary_sensor.cam_{camera}_person")
    return None if state is None else state.state
