"""Switch platform: turn each rule on or off from dashboards and automations."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import MilocoRuleEntity
from .runtime import MilocoConfigEntry

PARALLEL_UPDATES = 0

ENABLED_DESCRIPTION = SwitchEntityDescription(
    key="enabled", translation_key="rule_enabled", entity_category=EntityCategory.CONFIG
)


async def async_setup_entry(
    hass: HomeAssistant, entry: MilocoConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add the enable switch of every rule."""
    for subentry_id, rule in entry.runtime_data.rules.items():
        async_add_entities([RuleEnabledSwitch(rule, ENABLED_DESCRIPTION)], config_subentry_id=subentry_id)


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
