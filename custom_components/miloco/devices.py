"""Finding the service device of a camera or rule subentry, the same way on every supported HA release."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN


@callback
def async_device_id(hass: HomeAssistant, entry_id: str, subentry_id: str) -> str | None:
    """Return the id of the device that represents a subentry, if it has been created yet."""
    # async_get_device(identifiers=…) is deprecated from 2026.x and its successor does not exist in 2025.4;
    # the entry's own devices are few, and listing them works everywhere.
    for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry_id):
        if (DOMAIN, subentry_id) in device.identifiers:
            return device.id
    return None
