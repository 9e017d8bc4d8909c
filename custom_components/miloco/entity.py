"""The base of every Miloco entity: named by translation, on its camera's service device."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from .const import DOMAIN
from .rule_runner import RuleRunner
from .watcher import CameraWatcher


class MilocoCameraEntity(Entity):
    """An entity fed by one camera watcher; unavailable while the camera or the model fails."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, watcher: CameraWatcher, description: EntityDescription) -> None:
        """Tie the entity to its watcher and to the camera subentry's device."""
        self.entity_description = description
        self._watcher = watcher
        # Derived from the subentry id: users rename entities and cameras, never subentry ids.
        self._attr_unique_id = f"{watcher.subentry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, watcher.subentry_id)},
            name=watcher.title,
            manufacturer="Miloco",
            model="Camera perception",
            entry_type=DeviceEntryType.SERVICE,
        )

    @property
    def available(self) -> bool:
        """Return False while the camera or the model keeps failing."""
        return self._watcher.available

    async def async_added_to_hass(self) -> None:
        """Write the state whenever the watcher reports a change."""
        await super().async_added_to_hass()
        self.async_on_remove(self._watcher.async_add_listener(self.async_write_ha_state))


class MilocoRuleEntity(Entity):
    """An entity of one rule, on the rule subentry's service device."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, rule: RuleRunner, description: EntityDescription) -> None:
        """Tie the entity to its rule and to the rule's device."""
        self.entity_description = description
        self._rule = rule
        self._attr_unique_id = f"{rule.subentry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, rule.subentry_id)},
            name=rule.title,
            manufacturer="Miloco",
            model="Rule",
            entry_type=DeviceEntryType.SERVICE,
        )

    async def async_added_to_hass(self) -> None:
        """Write the state whenever the rule reports a change."""
        await super().async_added_to_hass()
        self.async_on_remove(self._rule.async_add_listener(self.async_write_ha_state))
