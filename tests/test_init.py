"""Setup, retry, auth failure and unload of a remote entry against a real server on loopback."""

from __future__ import annotations

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.engine.backends.errors import BackendClosed
from custom_components.miloco.engine.probe import probe_request

from .helpers import remote_entry
from .model_server import FakeModelServer


async def test_setup_and_unload(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    entry = remote_entry(model_server)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    backend = entry.runtime_data.backend
    assert backend.model == "mimo-vl-miloco-7b"

    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    # Unloading stops every request: the closed backend refuses new work.
    request = await hass.async_add_executor_job(probe_request)
    try:
        await backend.async_complete(request)
    except BackendClosed:
        pass
    else:
        raise AssertionError("a closed backend answered")


async def test_unreachable_server_retries_then_recovers(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    entry = remote_entry(model_server)
    port = model_server.port
    await model_server.stop()
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "backend is not available" in (entry.reason or "")

    await model_server.start(port)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


async def test_refused_key_starts_reauth(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    model_server.api_key = "new-key"
    entry = remote_entry(model_server, api_key="old-key")
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler("miloco")
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]

    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {"api_key": "still-wrong"})
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {"api_key": "new-key"})
    assert result["type"] == "abort"
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.data["api_key"] == "new-key"
    assert entry.state is ConfigEntryState.LOADED


async def test_two_backends_side_by_side(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    first = remote_entry(model_server)
    model_server.models.append("qwen2.5-vl-7b")
    second: MockConfigEntry = remote_entry(model_server, model="qwen2.5-vl-7b")
    for entry in (first, second):
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert first.runtime_data.backend is not second.runtime_data.backend
    assert {first.state, second.state} == {ConfigEntryState.LOADED}
