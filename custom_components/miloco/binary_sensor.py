"""Binary sensor platform: activities and presence per camera, and whether each rule holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import STATE_ON, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity

from .entity import MilocoCameraEntity, MilocoRuleResultEntity
from .runtime import MilocoConfigEntry, MilocoRuntime
from .watcher import PRESENCE_KEY

PARALLEL_UPDATES = 0

RULE_DESCRIPTION = BinarySensorEntityDescription(key="holds", translation_key="rule_holds")
PRESENCE_DESCRIPTION = BinarySensorEntityDescription(
    key=PRESENCE_KEY, translation_key=PRESENCE_KEY, device_class=BinarySensorDeviceClass.OCCUPANCY
)


async def async_setup_entry(
    hass: HomeAssistant, entry: MilocoConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add the activity and presence sensors of every camera and the sensor of every rule, now and later."""
    entry.runtime_data.async_register_platform(Platform.BINARY_SENSOR, async_add_entities, _entities_of)


def _entities_of(runtime: MilocoRuntime, subentry_id: str) -> list[Entity]:
    """Return the binary sensors of one camera or rule subentry."""
    if (watcher := runtime.watchers.get(subentry_id)) is not None:
        descriptions = [
            BinarySensorEntityDescription(key=activity, translation_key=activity)
            for activity in watcher.config.activities
        ]
        if watcher.config.presence:
            descriptions.append(PRESENCE_DESCRIPTION)
        return [StateBinarySensor(watcher, description) for description in descriptions]
    if (rule := runtime.rules.get(subentry_id)) is not None:
        return [RuleBinarySensor(rule, RULE_DESCRIPTION)]
    return []


class StateBinarySensor(MilocoCameraEntity, BinarySensorEntity):
    """On while the activity (or a person) is seen, held on for the camera's hold time."""

    @property
    def is_on(self) -> bool:
        """Return whether the state is going on."""
        return self._watcher.state.is_on(self.entity_description.key)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Return the last check's P(yes) of the activity or presence, when the server gave one."""
        return probability_attributes(self._watcher.state.probability(self.entity_description.key))


class RuleBinarySensor(MilocoRuleResultEntity, BinarySensorEntity, RestoreEntity):
    """On while the rule's condition holds on any of its cameras (debounced in state mode)."""

    async def async_added_to_hass(self) -> None:
        """Bring back the state the rule had before a restart or reload (the rule decides whether it may)."""
        await super().async_added_to_hass()
        if (last := await self.async_get_last_state()) is not None:
            self._rule.restore_state(last.state == STATE_ON)

    @property
    def is_on(self) -> bool:
        """Return whether the condition holds."""
        return self._rule.is_on

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Return the last answer's P(yes) of the condition, when the server gave one."""
        return probability_attributes(self._rule.last_probability)


def probability_attributes(probability: float | None) -> dict[str, float] | None:
    """Return a P(yes) as the attribute that shows it (two decimals: finer would only churn the recorder)."""
    return None if probability is None else {"probability": round(probability, 2)}
