"""The entry's 'active server' diagnostic sensor: which server of the fallback list answers now."""

from __future__ import annotations

from typing import Any

from homeassistant.components.sensor import SensorEntity, SensorEntityDescription
from homeassistant.const import EntityCategory

from .engine.backends.failover import FailoverBackend, ServerStatus
from .entity import MilocoEntity
from .runtime import MilocoConfigEntry

# States longer than this are refused by Home Assistant; a URL can be longer.
MAX_STATE_LENGTH = 255

ACTIVE_SERVER = SensorEntityDescription(
    key="active_server",
    translation_key="active_server",
    entity_category=EntityCategory.DIAGNOSTIC,
)


def backend_sensors(entry: MilocoConfigEntry, backend: object) -> list[SensorEntity]:
    """Return the entry-level sensors of the backend: the active server, when there are fallbacks."""
    if isinstance(backend, FailoverBackend):
        return [ActiveServerSensor(entry, backend)]
    return []


class ActiveServerSensor(MilocoEntity, SensorEntity):
    """The (credential-free) URL of the server that answers the checks; unavailable while none answers."""

    entity_description: SensorEntityDescription

    def __init__(self, entry: MilocoConfigEntry, backend: FailoverBackend) -> None:
        """Put the sensor on the entry's own 'model server' device; written when the active server changes."""
        super().__init__(entry.entry_id, entry.title, "Model server", ACTIVE_SERVER, backend.add_listener)
        self._backend = backend

    def _active(self) -> ServerStatus | None:
        """Return the server that answers now, if any does."""
        return next((server for server in self._backend.servers() if server.active), None)

    @property
    def available(self) -> bool:
        """Return False while no server answers: which one is active is then unknown, not 'none'."""
        return self._active() is not None

    @property
    def native_value(self) -> str | None:
        """Return the active server's URL."""
        active = self._active()
        return None if active is None else active.base_url[:MAX_STATE_LENGTH]

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the active server's position in the list (1 is the first) and its model."""
        # Only what changes with the active server: the state is written when that changes, nothing else.
        active = self._active()
        if active is None:
            return {}
        return {"position": active.index + 1, "model": active.model}
