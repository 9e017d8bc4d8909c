"""Version-independent summaries of registry entries and states, for snapshots that hold on both HA lines."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from enum import Enum
import re
from typing import Any

from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import (
    EntityRegistryEntrySnapshot,
    HomeAssistantSnapshotExtension,
    HomeAssistantSnapshotSerializer,
    StateSnapshot,
)
from syrupy.types import SerializableData

# Replaces random ids in a registry field with stable names (or leaves the field as it is).
type Namer = Callable[[str | None], str | None]


def _plain(value: Any) -> Any:
    """Return the value with every enum replaced by its bare value: enum reprs differ between HA lines."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


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


def device_summary(device: dr.DeviceEntry, name: Namer) -> dict[str, Any]:
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


def entity_summary(entity: er.RegistryEntry, name: Namer = lambda text: text) -> dict[str, Any]:
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


# A loopback server's port changes from run to run.
_LOOPBACK_PORT = re.compile(r"127\.0\.0\.1:\d+")


def stable_text(text: str) -> str:
    """Return the text with what changes between runs (loopback ports, access tokens) replaced by names."""
    text = _LOOPBACK_PORT.sub("127.0.0.1:<port>", text)
    return re.sub(r"token=[^&]+", "token=<token>", text)


def stable_state_value(value: str) -> str:
    """Return a state, with times and measured figures replaced by what they are (they change every run)."""
    with suppress(ValueError):
        float(value)
        return "<number>"
    if dt_util.parse_datetime(value) is not None:
        return "<time>"
    return stable_text(value)


def stable_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Return a state's attributes with per-run values (tokens, ports) replaced by names."""
    # Newer HA lines key some attributes by enum members: their bare values are the same names.
    stable = {
        _plain(key): stable_text(value) if isinstance(value, str) else _plain(value)
        for key, value in attributes.items()
    }
    if "access_token" in stable:
        stable["access_token"] = "<token>"  # noqa: S105 - a placeholder, not a password
    return stable


class StableSerializer(HomeAssistantSnapshotSerializer):
    """The harness's serializer, with registry entries and states reduced to what every HA line shares."""

    @classmethod
    def _serializable_entity_registry_entry(cls, data: er.RegistryEntry) -> SerializableData:
        """Return the entity's version-independent registry fields (new HA lines add fields of their own)."""
        return EntityRegistryEntrySnapshot(entity_summary(data))

    @classmethod
    def _serializable_state(cls, data: State) -> SerializableData:
        """Return the entity id, the state and the attributes, with per-run values replaced by names."""
        return StateSnapshot(
            {
                "entity_id": data.entity_id,
                "state": stable_state_value(data.state),
                "attributes": stable_attributes(data.attributes),
            }
        )


class StableSnapshotExtension(HomeAssistantSnapshotExtension):
    """Snapshots in tests/snapshots, as core keeps them, that read the same on both HA lines."""

    serializer_class = StableSerializer
