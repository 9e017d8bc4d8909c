"""A real light entity for rule actions to switch, registered through a test integration."""

from __future__ import annotations

from typing import Any

from homeassistant.components.light import ColorMode, LightEntity
from homeassistant.core import HomeAssistant

from .platforms import async_add_test_entities


class SwitchableLight(LightEntity):
    """An on/off light that remembers how often it was turned on."""

    _attr_should_poll = False
    _attr_color_mode = ColorMode.ONOFF

    def __init__(self, name: str) -> None:
        """Start off."""
        self._attr_supported_color_modes = {ColorMode.ONOFF}
        self._attr_name = name
        self._attr_unique_id = f"light_{name}"
        self._attr_is_on = False
        self.turned_on = 0

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Turn on."""
        self.turned_on += 1
        self._attr_is_on = True
        self.async_write_ha_state()

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Turn off."""
        self._attr_is_on = False
        self.async_write_ha_state()


async def async_add_lights(hass: HomeAssistant, *entities: SwitchableLight) -> None:
    """Register the lights as entities of a test integration."""
    await async_add_test_entities(hass, "light", "test_lights", entities)
