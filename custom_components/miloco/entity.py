"""The base of every Miloco entity: named by translation, on its subentry's service device, pushed."""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.core import CALLBACK_TYPE
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from .const import DOMAIN
from .rule_runner import RuleRunner
from .watcher import CameraWatcher

type AddListener = Callable[[CALLBACK_TYPE], CALLBACK_TYPE]


class MilocoEntity(Entity):
    """An entity of one camera or rule subentry, written whenever its source reports a change."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self,
        subentry_id: str,
        title: str,
        model: str,
        description: EntityDescription,
        add_listener: AddListener,
    ) -> None:
        """Tie the entity to the subentry's device and to its source's change listener."""
        self.entity_description = description
        self._add_listener = add_listener
        # Derived from the subentry id: users rename entities and cameras, never subentry ids.
        self._attr_unique_id = f"{subentry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, subentry_id)},
            name=title,
            manufacturer="Miloco",
            model=model,
            entry_type=DeviceEntryType.SERVICE,
        )

    async def async_added_to_hass(self) -> None:
        """Write the state whenever the source reports a change."""
        await super().async_added_to_hass()
        self.async_on_remove(self._add_listener(self.async_write_ha_state))


class MilocoCameraEntity(MilocoEntity):
    """An entity fed by one camera watcher; unavailable while the camera or the model fails."""

    def __init__(self, watcher: CameraWatcher, description: EntityDescription) -> None:
        """Tie the entity to its watcher."""
        super().__init__(
            watcher.subentry_id, watcher.title, "Camera perception", description, watcher.events.add_listener
        )
        self._watcher = watcher

    @property
    def available(self) -> bool:
        """Return False while the camera or the model keeps failing."""
        return self._watcher.available


class MilocoRuleEntity(MilocoEntity):
    """An entity of one rule."""

    def __init__(self, rule: RuleRunner, description: EntityDescription) -> None:
        """Tie the entity to its rule."""
        super().__init__(rule.subentry_id, rule.title, "Rule", description, rule.async_add_listener)
        self._rule = rule


class MilocoRuleResultEntity(MilocoRuleEntity):
    """An entity of what a rule's cameras report: unavailable, not off, when none of them can report.

    The rule's switch is no such entity: a rule can be turned on or off whatever its cameras do.
    """

    @property
    def available(self) -> bool:
        """Return False when all the rule's cameras are unavailable or unwatched, or the model is down."""
        return self._rule.available
