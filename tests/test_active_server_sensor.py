"""The Active model server sensor through real servers that stop answering: unavailable, not "none", then back."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant

from .model_server import FakeModelServer
from .perception_helpers import answer, wait_for
from .test_fallback_servers import active_server, fallback, watch_with_fallback


async def test_unavailable_while_no_server_answers_then_back_without_a_restart(
    hass: HomeAssistant, model_server: FakeModelServer, second_server: FakeModelServer
) -> None:
    model_server.default_reply = second_server.default_reply = answer()
    entry = await watch_with_fallback(hass, model_server, fallback(second_server))
    runtime = entry.runtime_data
    assert active_server(hass, entry).state == f"{model_server.url}/v1"
    assert active_server(hass, entry).attributes["position"] == 1
    ports = model_server.port, second_server.port

    # Both machines go away: the checks fail on each, and no server is active any more.
    await model_server.kill()
    await second_server.kill()
    await wait_for(lambda: active_server(hass, entry).state == STATE_UNAVAILABLE, within=30)
    # Unavailable says "unknown": no stale URL or position is left beside it for an automation to read.
    assert "position" not in active_server(hass, entry).attributes
    assert "model" not in active_server(hass, entry).attributes

    # The fallback comes back first: the sensor names it, on the same loaded entry (no reload, no restart).
    await second_server.start(ports[1])
    await wait_for(lambda: active_server(hass, entry).state == f"{second_server.url}/v1", within=30)
    assert active_server(hass, entry).attributes["position"] == 2
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data is runtime
    await model_server.start(ports[0])
    await wait_for(lambda: active_server(hass, entry).state == f"{model_server.url}/v1", within=40)
    assert entry.runtime_data is runtime
    assert await hass.config_entries.async_unload(entry.entry_id)
