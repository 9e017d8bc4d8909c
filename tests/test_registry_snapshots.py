"""Registry snapshots: the device and entities a camera and a rule create, and a live camera change."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.miloco.const import CONF_ACTIVITIES, SUBENTRY_CAMERA, SUBENTRY_RULE

from .helpers import find_device
from .model_server import FakeModelServer
from .perception_helpers import answer, watch
from .registry_summary import Placeholders, device_summary, entity_summary
from .scenes import SceneCamera, static_room

RULE_FORM: dict[str, Any] = {
    "name": "Wave for light",
    "preset": "custom",
    "condition": "someone is waving at the camera",
    "cameras": ["camera.living_room"],
    "mode": "event",
    "timing": {"cooldown": 10, "on_checks": 2, "off_delay": 10},
    "action": [],
    "enabled": True,
}


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Use the harness's extension, which keeps snapshots in tests/snapshots as core does."""
    # The harness defines this fixture too, but syrupy's own plugin fixture wins over it here.
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


def registry_summary(hass: HomeAssistant, entry: MockConfigEntry, subentry_id: str) -> dict[str, Any]:
    """Return a subentry's device and its entities, sorted by entity id."""
    name = Placeholders(hass, entry)
    device = find_device(hass, entry, subentry_id)
    assert device is not None
    entities = er.async_entries_for_device(er.async_get(hass), device.id, include_disabled_entities=True)
    return {
        "device": device_summary(device, name),
        "entities": [entity_summary(entity, name) for entity in sorted(entities, key=lambda e: e.entity_id)],
    }


def subentry_of(entry: MockConfigEntry, subentry_type: str) -> str:
    """Return the id of the entry's only subentry of a type."""
    (subentry_id,) = [sid for sid, sub in entry.subentries.items() if sub.subentry_type == subentry_type]
    return subentry_id


@pytest.fixture
async def entry(hass: HomeAssistant, model_server: FakeModelServer) -> MockConfigEntry:
    """Return a remote entry watching one camera, with one rule added through the subentry flow."""
    model_server.default_reply = answer()
    entry = await watch(hass, model_server, SceneCamera("Living room", static_room()))
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_RULE), context={"source": "user"}
    )
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], RULE_FORM)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    return entry


async def test_camera_registry(
    hass: HomeAssistant, entry: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    assert registry_summary(hass, entry, subentry_of(entry, SUBENTRY_CAMERA)) == snapshot


async def test_rule_registry(
    hass: HomeAssistant, entry: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    assert registry_summary(hass, entry, subentry_of(entry, SUBENTRY_RULE)) == snapshot


async def test_unticking_an_activity_live(
    hass: HomeAssistant, entry: MockConfigEntry, model_server: FakeModelServer, snapshot: SnapshotAssertion
) -> None:
    camera_id = subentry_of(entry, SUBENTRY_CAMERA)
    before = registry_summary(hass, entry, camera_id)
    device_before = find_device(hass, entry, camera_id)
    models_asked = model_server.requests.count({"path": "/v1/models"})
    assert models_asked >= 1  # the backend asks for the model list as it starts
    subentry = entry.subentries[camera_id]
    assert hass.config_entries.async_update_subentry(
        entry, subentry, data={**subentry.data, CONF_ACTIVITIES: ["reading"]}
    )
    await hass.async_block_till_done()
    after = registry_summary(hass, entry, camera_id)
    # Applied live: the backend did not start again (no new model list) and the device is the same one.
    assert model_server.requests.count({"path": "/v1/models"}) == models_asked
    device_after = find_device(hass, entry, camera_id)
    assert device_before is not None and device_after is not None and device_after.id == device_before.id
    # Only the unticked activity's registry entry went; the device and every other entity stayed as they were.
    assert after["device"] == before["device"]
    assert after["entities"] == [e for e in before["entities"] if not e["unique_id"].endswith("_watch_tv")]
    assert len(after["entities"]) == len(before["entities"]) - 1
    assert after == snapshot
