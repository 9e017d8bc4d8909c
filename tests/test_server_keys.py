"""Wrong keys with fallback servers, through real Home Assistant and real loopback model servers.

A server refusing its key is named in Repairs (position and URL, never the key), the reauth flow offers the
key of every server, and a key revoked at run time moves the checks to the next server instead of pausing.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
import logging
from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.const import CONF_API_KEY, CONF_FALLBACKS, DOMAIN

from .model_server import FakeModelServer
from .perception_helpers import answer, wait_for
from .test_fallback_servers import (
    PERSON,
    active_server_state,
    fallback,
    record_unavailable,
    watch_with_fallback,
)

FIRST_KEY = "sk-first-0123456789"
FALLBACK_KEY = "sk-fallback-0123456789"
STALE_KEY = "sk-stale-0123456789"
SECRETS = (FIRST_KEY, FALLBACK_KEY, STALE_KEY, "hunter2")


@pytest.fixture
async def keyed_fallback(socket_enabled: None) -> AsyncGenerator[FakeModelServer]:
    """Run a fallback model server on loopback that wants its own key."""
    server = FakeModelServer()
    server.api_key = FALLBACK_KEY
    server.default_reply = answer()
    await server.start()
    yield server
    await server.stop()


def key_issue(hass: HomeAssistant, entry: MockConfigEntry, position: int) -> ir.IssueEntry | None:
    """Return the 'server refuses its key' repair issue of one server (1 is the first), if raised."""
    return ir.async_get(hass).async_get_issue(DOMAIN, f"server_key_refused_{entry.entry_id}_{position}")


def reauth_flows(hass: HomeAssistant) -> list[Any]:
    """Return the integration's reauth flows in progress."""
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    return [flow for flow in flows if flow["context"]["source"] == SOURCE_REAUTH]


def assert_no_secret(*texts: str) -> None:
    """Fail when any key (or the URL's password) shows in the texts."""
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


async def test_a_fallback_refusing_its_key_is_named_and_reauth_fixes_its_key(
    hass: HomeAssistant,
    model_server: FakeModelServer,
    keyed_fallback: FakeModelServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    model_server.api_key = FIRST_KEY
    model_server.default_reply = answer()
    url = f"http://admin:hunter2@127.0.0.1:{keyed_fallback.port}/v1"
    entry = await watch_with_fallback(
        hass, model_server, fallback(keyed_fallback, url=url, api_key=STALE_KEY), api_key=FIRST_KEY
    )
    # The first server answers: setup succeeds, and the refused fallback is named in Repairs.
    assert entry.state is ConfigEntryState.LOADED
    issue = key_issue(hass, entry, 2)
    assert issue is not None
    redacted = f"http://127.0.0.1:{keyed_fallback.port}/v1"
    assert issue.translation_placeholders == {"title": entry.title, "position": "2", "url": redacted}
    assert key_issue(hass, entry, 1) is None
    (flow,) = reauth_flows(hass)

    form = await hass.config_entries.flow.async_configure(flow["flow_id"])
    assert form["step_id"] == "reauth_confirm"
    placeholders = form["description_placeholders"]
    assert (placeholders["title"], placeholders["servers"]) == (entry.title, f"2 ({redacted})")
    assert list(form["data_schema"].schema) == ["api_key", "api_key_2"]
    assert_no_secret(str(form), str(issue.translation_placeholders))

    # Nothing entered would change nothing: one key at least.
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["errors"] == {"base": "key_required"}
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {"api_key_2": "sk-still-wrong"})
    assert result["errors"] == {"api_key_2": "invalid_auth"}
    assert entry.data[CONF_FALLBACKS][0][CONF_API_KEY] == STALE_KEY
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {"api_key_2": FALLBACK_KEY})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    # The first server's key, left empty, is kept; the entry reloads with the fallback's new key.
    assert entry.data[CONF_API_KEY] == FIRST_KEY
    assert entry.data[CONF_FALLBACKS][0][CONF_API_KEY] == FALLBACK_KEY
    assert entry.state is ConfigEntryState.LOADED
    assert key_issue(hass, entry, 2) is None
    assert not any(server.key_refused for server in entry.runtime_data.backend.servers())
    assert_no_secret(caplog.text)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_first_server_refusing_its_key_at_start_waits_for_reauth_not_for_probes(
    hass: HomeAssistant, model_server: FakeModelServer, keyed_fallback: FakeModelServer
) -> None:
    model_server.api_key = FIRST_KEY
    entry = await watch_with_fallback(
        hass, model_server, fallback(keyed_fallback, api_key=FALLBACK_KEY), api_key=STALE_KEY
    )
    assert entry.state is ConfigEntryState.LOADED
    await wait_for(lambda: hass.states.get(PERSON).state == STATE_ON)
    assert active_server_state(hass, entry) == f"{keyed_fallback.url}/v1"
    issue = key_issue(hass, entry, 1)
    assert issue is not None
    assert issue.translation_placeholders["position"] == "1"
    # Not probed as a server that is down (every 5 to 60 s): it waits for its new key.
    first = entry.runtime_data.backend.servers()[0]
    assert first.key_refused
    assert first.next_probe_in_s is not None
    assert first.next_probe_in_s > 60
    (flow,) = reauth_flows(hass)

    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_API_KEY: FIRST_KEY})
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_API_KEY] == FIRST_KEY
    assert entry.data[CONF_FALLBACKS][0][CONF_API_KEY] == FALLBACK_KEY
    await wait_for(lambda: active_server_state(hass, entry) == f"{model_server.url}/v1")
    assert key_issue(hass, entry, 1) is None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_key_revoked_at_run_time_moves_the_checks_to_the_next_server(
    hass: HomeAssistant, model_server: FakeModelServer, keyed_fallback: FakeModelServer
) -> None:
    model_server.api_key = FIRST_KEY
    model_server.default_reply = answer()
    entry = await watch_with_fallback(
        hass, model_server, fallback(keyed_fallback, api_key=FALLBACK_KEY), api_key=FIRST_KEY
    )
    await wait_for(lambda: hass.states.get(PERSON).state == STATE_ON)
    assert not keyed_fallback.chat_requests
    watcher = next(iter(entry.runtime_data.watchers.values()))
    unavailable = record_unavailable(hass, PERSON)

    model_server.api_key = "sk-rotated"
    # The refused check goes on to the fallback: no failed check, no camera paused for minutes.
    await wait_for(lambda: len(keyed_fallback.chat_requests) >= 3)
    assert watcher.stats.failures == 0
    assert not unavailable
    assert hass.states.get(PERSON).state == STATE_ON
    assert active_server_state(hass, entry) == f"{keyed_fallback.url}/v1"
    assert key_issue(hass, entry, 1) is not None
    assert len(reauth_flows(hass)) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)
    # Unloading withdraws the issue: the next setup says again which server refuses.
    assert key_issue(hass, entry, 1) is None
