"""Snapshots as core keeps them: each platform's registry entries and states, and the diagnostics, after a check.

The entry, its camera and its rule have fixed ids, the model answers the same every time, and what changes from
run to run (times, measured figures, ports, tokens) is named instead of shown, so one snapshot holds on both HA
lines (tests/registry_summary.py).
"""

from __future__ import annotations

from collections.abc import Mapping
import json
from typing import Any
from unittest.mock import patch

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.miloco.const import (
    CONF_FALLBACKS,
    CONF_MODEL,
    CONF_URL,
    CONF_VERIFY_SSL,
    DOMAIN,
    SUBENTRY_RULE,
)

from .helpers import remote_entry
from .model_server import FakeModelServer
from .perception_helpers import answer, camera_subentry, capture_events, wait_for
from .registry_summary import StableSnapshotExtension, stable_text
from .scenes import SceneCamera, async_add_cameras, waving_hand

ENTRY_ID = "01MILOCOENTRY0000000000000"
CAMERA_ID = "01MILOCOCAMERA000000000000"
RULE_ID = "01MILOCORULE00000000000000"
API_KEY = "sk-primary-secret"
FALLBACK_KEY = "sk-fallback-secret"
FALLBACK_PASSWORD = "hunter2"  # noqa: S105 - a test password, to be redacted
# The stored rule, as the rule form writes it.
RULE_DATA: dict[str, Any] = {
    "condition": "someone is waving at the camera",
    "cameras": ["camera.living_room"],
    "mode": "event",
    "cooldown": 60,
    "on_checks": 2,
    "off_delay": 10,
    "action": [],
    "enabled": True,
}


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Keep the snapshots in tests/snapshots, reduced to what both HA lines share."""
    return snapshot.use_extension(StableSnapshotExtension)


def snapshot_entry(server: FakeModelServer) -> MockConfigEntry:
    """Return an entry on the server with a keyed fallback (credentials in its URL), a camera and a rule."""
    base = remote_entry(server, api_key=API_KEY)
    fallback = {
        CONF_URL: f"http://miloco:{FALLBACK_PASSWORD}@127.0.0.1:{server.port}/v1",
        CONF_MODEL: base.data[CONF_MODEL],
        "api_key": FALLBACK_KEY,
        CONF_VERIFY_SSL: True,
    }
    camera = {**camera_subentry(SceneCamera("Living room", waving_hand())), "subentry_id": CAMERA_ID}
    rule = {
        "subentry_type": SUBENTRY_RULE,
        "title": "Wave for light",
        "unique_id": None,
        "data": RULE_DATA,
        "subentry_id": RULE_ID,
    }
    return MockConfigEntry(
        domain=DOMAIN,
        title=base.title,
        unique_id=base.unique_id,
        entry_id=ENTRY_ID,
        data={**base.data, CONF_FALLBACKS: [fallback]},
        subentries_data=[camera, rule],  # type: ignore[list-item]
    )


async def set_up_and_detect(
    hass: HomeAssistant, server: FakeModelServer, platforms: list[Platform]
) -> MockConfigEntry:
    """Set up the entry with only these platforms, every entity enabled, until a gesture and the rule fired."""
    # Always the same answer: a wave (which is the rule's condition too) while someone reads.
    server.default_reply = answer(("wave",), ("reading",), rules={"r1": True}, reason="a hand moves")
    await async_add_cameras(hass, SceneCamera("Living room", waving_hand()))
    entry = snapshot_entry(server)
    entry.add_to_hass(hass)
    with patch("custom_components.miloco.PLATFORMS", platforms):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        # Diagnostic counters start disabled: enabled as a user does, they come with the reload.
        registry = er.async_get(hass)
        disabled = [
            entity.entity_id
            for entity in er.async_entries_for_config_entry(registry, entry.entry_id)
            if entity.disabled_by is not None
        ]
        for entity_id in disabled:
            registry.async_update_entity(entity_id, disabled_by=None)
        events = capture_events(hass)
        if disabled:
            assert await hass.config_entries.async_reload(entry.entry_id)
            await hass.async_block_till_done()
    rule = entry.runtime_data.rules[RULE_ID]
    await wait_for(
        lambda: {"gesture", "rule_triggered"} <= {event["type"] for event in events} and rule.is_on
    )
    await hass.async_block_till_done()
    return entry


@pytest.mark.parametrize(
    "platform",
    [Platform.BINARY_SENSOR, Platform.EVENT, Platform.IMAGE, Platform.SENSOR, Platform.SWITCH],
)
async def test_platform(
    hass: HomeAssistant,
    model_server: FakeModelServer,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    platform: Platform,
) -> None:
    entry = await set_up_and_detect(hass, model_server, [platform])
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)
    assert await hass.config_entries.async_unload(entry.entry_id)


def stable_diagnostics(value: Any, key: str = "") -> Any:
    """Return diagnostics with what changes from run to run named instead of shown, keeping every key."""
    if key in {"buffered_frames", "next_probe_in_s", "consecutive_failures", "last_error"}:
        return "<measured>"
    if isinstance(value, Mapping):
        if key in {"stats", "limiter"}:
            # Counters and latencies: their names are the structure, their values the run.
            return {name: "<measured>" for name in value}
        return {name: stable_diagnostics(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [stable_diagnostics(item, key) for item in value]
    if isinstance(value, str):
        return stable_text(value)
    return value


# The entry fields both HA lines have (newer lines add their own): what support reads.
ENTRY_FIELDS = ("domain", "title", "unique_id", "version", "source", "data", "options", "subentries")


async def test_diagnostics(
    hass: HomeAssistant,
    model_server: FakeModelServer,
    hass_client: ClientSessionGenerator,
    snapshot: SnapshotAssertion,
) -> None:
    entry = await set_up_and_detect(hass, model_server, [Platform.BINARY_SENSOR])
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    # No secret anywhere, in any field of any HA line: the keys, and the password in the fallback's URL.
    dumped = json.dumps(diagnostics)
    for secret in (API_KEY, FALLBACK_KEY, FALLBACK_PASSWORD):
        assert secret not in dumped
    diagnostics["entry"] = {field: diagnostics["entry"].get(field) for field in ENTRY_FIELDS}
    assert stable_diagnostics(diagnostics) == snapshot
    assert await hass.config_entries.async_unload(entry.entry_id)
