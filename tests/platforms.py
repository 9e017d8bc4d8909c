"""Registering test entities (cameras, lights) through a mock integration of the harness."""

from __future__ import annotations

from collections.abc import Sequence

from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockModule,
    MockPlatform,
    mock_integration,
    mock_platform,
)


async def async_add_test_entities(
    hass: HomeAssistant, domain: str, integration: str, entities: Sequence[Entity]
) -> None:
    """Set up `domain` with a platform of the mock `integration` that adds the entities."""

    async def async_setup_platform(
        hass: HomeAssistant,
        config: object,
        async_add_entities: AddEntitiesCallback,
        discovery_info: object = None,
    ) -> None:
        async_add_entities(entities)

    mock_integration(hass, MockModule(integration))
    mock_platform(hass, f"{integration}.{domain}", MockPlatform(async_setup_platform=async_setup_platform))
    assert await async_setup_component(hass, domain, {domain: [{"platform": integration}]})
    await hass.async_block_till_done()
