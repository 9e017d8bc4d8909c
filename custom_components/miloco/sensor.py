"""Sensor platform: each camera's diagnostics (last analysis, model latency, skipped checks)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, Platform, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .backend_sensor import backend_sensors
from .entity import MilocoCameraEntity
from .runtime import MilocoConfigEntry, MilocoRuntime
from .watcher import CameraWatcher, WatcherStats

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class WatcherSensorDescription(SensorEntityDescription):
    """A diagnostic sensor reading one figure from the watcher's counters."""

    value_fn: Callable[[WatcherStats], datetime | float | int | None]
    attributes_fn: Callable[[CameraWatcher], Mapping[str, Any] | None] = lambda _watcher: None


def _last_probabilities(watcher: CameraWatcher) -> Mapping[str, Any] | None:
    """Return the last analysis's P(yes) by gesture, activity or presence, when the server gave any."""
    probabilities = watcher.state.probabilities
    if not probabilities:
        return None
    return {"probabilities": {key: round(value, 2) for key, value in sorted(probabilities.items())}}


SENSORS: tuple[WatcherSensorDescription, ...] = (
    WatcherSensorDescription(
        key="last_analysis",
        translation_key="last_analysis",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda stats: stats.last_analysis,
        attributes_fn=_last_probabilities,
    ),
    WatcherSensorDescription(
        key="model_latency",
        translation_key="model_latency",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        suggested_display_precision=2,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda stats: stats.last_latency_s,
    ),
    # Counters change every couple of seconds: useful when tuning, noise in the recorder otherwise.
    WatcherSensorDescription(
        key="skipped_by_gate",
        translation_key="skipped_by_gate",
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda stats: stats.skipped_by_gate,
    ),
    WatcherSensorDescription(
        key="skipped_busy",
        translation_key="skipped_busy",
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda stats: stats.skipped_busy,
    ),
    WatcherSensorDescription(
        key="image_tokens",
        translation_key="image_tokens",
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda stats: stats.last_image_tokens,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant, entry: MilocoConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add the diagnostic sensors of every camera, now and later."""
    entry.runtime_data.async_register_platform(Platform.SENSOR, async_add_entities, _entities_of)
    # The backend's own sensors belong to the entry, not to a camera subentry.
    async_add_entities(backend_sensors(entry, entry.runtime_data.backend))


def _entities_of(runtime: MilocoRuntime, subentry_id: str) -> list[Entity]:
    """Return the diagnostic sensors of a camera subentry (rules have none)."""
    if (watcher := runtime.watchers.get(subentry_id)) is None:
        return []
    return [WatcherSensor(watcher, description) for description in SENSORS]


class WatcherSensor(MilocoCameraEntity, SensorEntity):
    """One diagnostic figure of a camera watcher."""

    entity_description: WatcherSensorDescription

    @property
    def native_value(self) -> datetime | float | int | None:
        """Return the figure."""
        return self.entity_description.value_fn(self._watcher.stats)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Return the figure's details, if it has any (the last analysis: its probabilities)."""
        return self.entity_description.attributes_fn(self._watcher)
