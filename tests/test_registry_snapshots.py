"""Registry snapshots: the device and entities a camera and a rule create, and a live camera change."""

from __future__ import annotations

from enum import Enum
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.miloco.const import CONF_ACTIVITIES, SUBENTRY_CAMERA, SUBENTRY_RULE

from .helpers import find_device
from .model_server import FakeModelServer
from .perception_helpers import answer, watch
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


def _plain(value: Any) -> Any:
    """Return the value with every enum replaced by its bare value: enum reprs differ between HA lines."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Use the harness's extension, which keeps snapshots in tests/snapshots as core does."""
    # The harness defines this fixture too, but syrupy's own plugin fixture wins over it here.
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


class Placeholders:
    """Replaces the random ids of an entry, its subentries and its devices with stable names."""

    def __init__(self, hass: HomeAssistant, entry: MockConfigEntry) -> None:
        """Name the entry and each subentry by its type; devices by the subentry they represent."""
        self._names: dict[str, str] = {entry.entry_id: "<entry>"}
        for subentry_id, subentry in entry.subentries.items():
            self._names[subentry_id] = f"<{subentry.subentry_type} subentry>"
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id):
            owners = sorted(self._names[ident] for _, ident in device.identifiers if ident in self._names)
            self._names[device.id] = f"<device of {', '.join(owners) or 'nothing'}>"

    def __call__(self, text: str | None) -> str | None:
        """Return the text with every known id replaced by its placeholder."""
        if text is None:
            return None
        for random_id, name in self._names.items():
            text = text.replace(random_id, name)
        return text


def device_owner(device: dr.DeviceEntry) -> tuple[str, str | None]:
    """Return the config entry and subentry a device belongs to, the same way on both HA lines."""
    # From 2026.x a device belongs to one entry (config_entry_id, config_subentry_id) and the old
    # set-valued properties are deprecated (using them fails a test); 2025.4 has only the sets.
    if (entry_id := getattr(device, "config_entry_id", None)) is not None:
        return entry_id, device.config_subentry_id
    ((entry_id, subentry_ids),) = device.config_entries_subentries.items()
    (subentry_id,) = subentry_ids
    return entry_id, subentry_id


def device_summary(device: dr.DeviceEntry, name: Placeholders) -> dict[str, Any]:
    """Return the version-independent fields of a device that a user and an automation rely on."""
    entry_id, subentry_id = device_owner(device)
    return {
        "name": device.name,
        "manufacturer": device.manufacturer,
        "model": device.model,
        "entry_type": _plain(device.entry_type),
        "identifiers": sorted([domain, name(ident)] for domain, ident in device.identifiers),
        "via_device": name(device.via_device_id),
        # The subentry owning the device is what makes HA remove it with the subentry.
        "config_entry": name(entry_id),
        "config_subentry": name(subentry_id),
        "disabled_by": _plain(device.disabled_by),
    }


def entity_summary(entity: er.RegistryEntry, name: Placeholders) -> dict[str, Any]:
    """Return the version-independent registry fields of an entity (no states: the registry is what counts)."""
    return {
        "entity_id": entity.entity_id,
        "platform": entity.platform,
        "unique_id": name(entity.unique_id),
        "config_subentry": name(getattr(entity, "config_subentry_id", None)),
        "translation_key": entity.translation_key,
        "has_entity_name": entity.has_entity_name,
        "original_name": entity.original_name,
        "device_class": _plain(entity.original_device_class),
        "entity_category": _plain(entity.entity_category),
        "unit": _plain(entity.unit_of_measurement),
        "disabled_by": _plain(entity.disabled_by),
        "hidden_by": _plain(entity.hidden_by),
        "supported_features": entity.supported_features,
        "capabilities": _plain(entity.capabilities),
    }


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
