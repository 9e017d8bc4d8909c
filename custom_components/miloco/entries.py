"""Which loaded Miloco entry answers a person's question about a camera (services and Assist alike)."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError

from .const import DOMAIN
from .runtime import MilocoConfigEntry


def loaded_entries(hass: HomeAssistant) -> list[MilocoConfigEntry]:
    """Return the loaded Miloco entries."""
    return [
        entry for entry in hass.config_entries.async_entries(DOMAIN) if entry.state is ConfigEntryState.LOADED
    ]


def entry_for_camera(
    hass: HomeAssistant, camera_entity_id: str, entry_id: str | None = None
) -> MilocoConfigEntry:
    """Return the backend to ask: the one named, else the one watching the camera, else the first loaded."""
    entries = loaded_entries(hass)
    if entry_id is not None:
        for entry in entries:
            if entry.entry_id == entry_id:
                return entry
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"entry": entry_id},
        )
    for entry in entries:
        if entry.runtime_data.watcher_for(camera_entity_id) is not None:
            return entry
    if not entries:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_backend")
    return entries[0]
