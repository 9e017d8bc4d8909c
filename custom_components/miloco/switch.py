"""Switch platform: turn each rule on or off from dashboards and automations."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import MilocoRuleEntity
from .runtime import MilocoConfigEntry, MilocoRuntime

PARALLEL_UPDATES = 0

ENABLED_DESCRIPTION = SwitchEntityDescription(
    key="enabled", translation_key="rule_enabled", entity_category=EntityCategory.CONFIG
)


async def async_setup_entry(
    hass: HomeAssistant, entry: MilocoConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add the enable switch of every rule, now and later."""
    entry.runtime_data.async_register_platform(Platform.SWITCH, async_add_entities, _entities_of)


def _entities_of(runtime: MilocoRuntime, subentry_id: str) -> list[Entity]:
    """Return the enable switch of a rule subentry (cameras have none)."""
    if (rule := runtime.rules.get(subentry_id)) is None:
        return []
    return [RuleEnabledSwitch(rule, ENABLED_DESCRIPTION)]


class RuleEnabledSwitch(MilocoRuleEntity, SwitchEntity):
    """On while the rule is checked; off, the rule is not even sent to the model."""

    @property
    def is_on(self) -> bool:
        """Return whether the rule is enabled."""
        return self._rule.enabled

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Enable the rule."""
        self._rule.async_set_enabled(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Disable the rule."""
        self._rule.async_set_enabled(False)
