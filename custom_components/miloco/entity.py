"""The base of every Miloco entity: named by translation, on a Miloco service device, pushed."""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.core import CALLBACK_TYPE, callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from .const import DOMAIN
from .rule_runner import RuleRunner
from .watcher import CameraWatcher

type AddListener = Callable[[CALLBACK_TYPE], CALLBACK_TYPE]

# The model of a camera subentry's device; its Last detection image sits there too.
CAMERA_MODEL = "Camera perception"


def service_device(identifier: str, title: str, model: str) -> DeviceInfo:
    """Return the Miloco service device of a subentry (or of the entry itself, for the model server)."""
    return DeviceInfo(
        identifiers={(DOMAIN, identifier)},
        name=title,
        manufacturer="Miloco",
        model=model,
        entry_type=DeviceEntryType.SERVICE,
    )


class MilocoEntity(Entity):
    """An entity of one Miloco device, written whenever its source reports a change."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self,
        identifier: str,
        title: str,
        model: str,
        description: EntityDescription,
        add_listener: AddListener,
    ) -> None:
        """Tie the entity to the device of `identifier` (a subentry or entry id) and to its source's listener."""
        self.entity_description = description
        self._add_listener = add_listener
        # Derived from the subentry (or entry) id: users rename entities and cameras, never those ids.
        self._attr_unique_id = f"{identifier}_{description.key}"
        self._attr_device_info = service_device(identifier, title, model)

    async def async_added_to_hass(self) -> None:
        """Write the state whenever the source reports a change."""
        await super().async_added_to_hass()
        self.async_on_remove(self._add_listener(self._async_source_changed))

    @callback
    def _async_source_changed(self) -> None:
        """Publish what the source reported."""
        self.async_write_ha_state()


class MilocoCameraEntity(MilocoEntity):
    """An entity fed by one camera watcher; unavailable while the camera or the model fails."""

    def __init__(self, watcher: CameraWatcher, description: EntityDescription) -> None:
        """Tie the entity to its watcher."""
        super().__init__(
            watcher.subentry_id, watcher.title, CAMERA_MODEL, description, watcher.events.add_listener
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
