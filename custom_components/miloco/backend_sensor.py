"""The entry's 'active server' diagnostic sensor: which server of the fallback list answers now."""

from __future__ import annotations

from typing import Any

from homeassistant.components.sensor import SensorEntity, SensorEntityDescription
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EntityCategory
from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo

from .const import DOMAIN
from .engine.backends.failover import FailoverBackend

# What the sensor says when every server is down (the entities of the cameras are unavailable then too).
NO_SERVER = "none"
# States longer than this are refused by Home Assistant; a URL can be longer.
MAX_STATE_LENGTH = 255

ACTIVE_SERVER = SensorEntityDescription(
    key="active_server",
    translation_key="active_server",
    entity_category=EntityCategory.DIAGNOSTIC,
)


def backend_sensors(entry: ConfigEntry[Any], backend: object) -> list[SensorEntity]:
    """Return the entry-level sensors of the backend: the active server, when there are fallbacks."""
    if isinstance(backend, FailoverBackend):
        return [ActiveServerSensor(entry, backend)]
    return []


class ActiveServerSensor(SensorEntity):
    """The (credential-free) URL of the server that answers the checks, or 'none'."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    entity_description = ACTIVE_SERVER

    def __init__(self, entry: ConfigEntry[Any], backend: FailoverBackend) -> None:
        """Put the sensor on the entry's own 'model server' device."""
        self._backend = backend
        self._attr_unique_id = f"{entry.entry_id}_{ACTIVE_SERVER.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.title,
            manufacturer="Miloco",
            model="Model server",
            entry_type=DeviceEntryType.SERVICE,
        )

    @property
    def native_value(self) -> str:
        """Return the active server's URL, or 'none' when every server is down."""
        active = next((server for server in self._backend.servers() if server.active), None)
        if active is None:
            return NO_SERVER
        return active.base_url[:MAX_STATE_LENGTH]

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the active server's position in the list (1 is the first) and its model."""
        # Only what changes with the active server: the state is written when that changes, nothing else.
        active = next((server for server in self._backend.servers() if server.active), None)
        return {
            "position": None if active is None else active.index + 1,
            "model": None if active is None else active.model,
        }

    async def async_added_to_hass(self) -> None:
        """Write the state whenever the backend moves to another server."""
        await super().async_added_to_hass()
        self.async_on_remove(self._backend.add_listener(self._async_active_changed))

    @callback
    def _async_active_changed(self) -> None:
        """Publish the newly active server."""
        self.async_write_ha_state()
