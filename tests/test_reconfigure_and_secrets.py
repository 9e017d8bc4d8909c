"""Reconfigure a remote entry, diagnostics redaction, and no API key in any log line."""

from __future__ import annotations

import json
import logging

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.miloco.const import CONF_API_KEY, CONF_MODEL, CONF_TIMEOUT, CONF_URL, DOMAIN

from .helpers import remote_entry
from .model_server import FakeModelServer, error

SECRET = "sk-live-0123456789abcdef"  # noqa: S105 - a test key that must never leak


async def _loaded(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_reconfigure_changes_model_and_keeps_key(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.api_key = SECRET
    model_server.models.append("mimo-vl-7b")
    entry = await _loaded(hass, remote_entry(model_server, api_key=SECRET))

    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "remote"
    # The stored key is never sent back to the browser.
    assert SECRET not in json.dumps(str(result["data_schema"].schema))
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_URL: model_server.url, "verify_ssl": True, CONF_TIMEOUT: 20, "max_concurrent": 3},
    )
    assert result["step_id"] == "remote_model"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: "mimo-vl-7b"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()

    assert entry.data[CONF_MODEL] == "mimo-vl-7b"
    assert entry.data[CONF_TIMEOUT] == 20
    assert entry.data[CONF_API_KEY] == SECRET
    assert entry.unique_id.endswith("#mimo-vl-7b")
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.backend.model == "mimo-vl-7b"


async def test_reconfigure_onto_another_entry_is_refused(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.models.append("mimo-vl-7b")
    await _loaded(hass, remote_entry(model_server, model="mimo-vl-7b"))
    entry = await _loaded(hass, remote_entry(model_server))
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_URL: model_server.url, "verify_ssl": True, CONF_TIMEOUT: 10, "max_concurrent": 2},
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_MODEL: "mimo-vl-7b"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_MODEL] == "mimo-vl-miloco-7b"


async def test_diagnostics_redact_key_and_url_credentials(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, model_server: FakeModelServer
) -> None:
    assert await async_setup_component(hass, "diagnostics", {})
    credentialed = model_server.url.replace("http://", "http://admin:hunter2@")
    entry = remote_entry(model_server, api_key=SECRET)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=entry.title,
        unique_id=f"{credentialed}/v1#mimo-vl-miloco-7b",
        data={
            **entry.data,
            CONF_URL: f"{credentialed}/v1",
            # A fallback server with its own credentials: redacted the same way.
            "fallbacks": [{CONF_URL: f"{credentialed}/v1", CONF_MODEL: "other", CONF_API_KEY: SECRET}],
        },
    )
    await _loaded(hass, entry)

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    dumped = json.dumps(diagnostics)
    assert SECRET not in dumped
    assert "hunter2" not in dumped
    assert "admin" not in dumped
    assert diagnostics["entry"]["data"][CONF_API_KEY] == "**REDACTED**"
    assert diagnostics["entry"]["data"][CONF_URL] == f"{model_server.url}/v1"
    (fallback,) = diagnostics["entry"]["data"]["fallbacks"]
    assert fallback == {CONF_URL: f"{model_server.url}/v1", CONF_MODEL: "other", CONF_API_KEY: "**REDACTED**"}
    # With a fallback the backend is the failover list: each server says whether it has a key, never which.
    first, second = (server["backend"] for server in diagnostics["backend"]["servers"])
    assert first["api_key_set"] is True
    assert first["model"] == "mimo-vl-miloco-7b"
    assert second["model"] == "other"


async def test_diagnostics_list_the_settings_in_use_and_bad_stored_ones(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, model_server: FakeModelServer
) -> None:
    assert await async_setup_component(hass, "diagnostics", {})
    camera = {
        "subentry_type": "camera",
        "title": "Hall",
        "unique_id": None,
        # A hand edit: nan where a percentage belongs. The entry still loads on the default.
        "data": {"camera_entity_id": "camera.hall", "change_threshold": float("nan"), "fps": 4},
    }
    entry = await _loaded(hass, remote_entry(model_server, subentries=[camera]))
    assert entry.state is ConfigEntryState.LOADED

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    (listing,) = diagnostics["settings"]["subentries"].values()
    assert listing["fps"] == {"value": 4.0, "default": 2.0, "stored": True}
    assert listing["change_threshold"]["value"] == 0.5
    assert "not finite" in listing["change_threshold"]["problem"]
    assert listing["heartbeat"] == {"value": 60, "default": 60, "stored": False}
    assert diagnostics["settings"]["backend"]["timeout"]["value"] == 10


async def test_no_log_line_or_error_carries_the_key(
    hass: HomeAssistant, model_server: FakeModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    model_server.api_key = SECRET
    entry = await _loaded(hass, remote_entry(model_server, api_key=SECRET))
    # A server that echoes the key in its error text (OpenAI does, partly masked).
    model_server.script(error(500, f"internal error for key {SECRET}"), error(500, f"again {SECRET}"))
    model_server.default_reply = error(400, f"Bad request from {SECRET}")
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_URL: model_server.url, "verify_ssl": True, CONF_TIMEOUT: 10, "max_concurrent": 2},
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_MODEL: "mimo-vl-miloco-7b"}
    )
    assert result["errors"] == {"base": "server_error"}

    model_server.api_key = "rotated"
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR

    assert len(caplog.records) > 5
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in (record.exc_text or "")
    assert SECRET not in caplog.text
