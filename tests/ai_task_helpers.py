"""Set-up and calls shared by the AI Task tests: an entry with its default AI Task entity, generate_data, images."""

from __future__ import annotations

import base64
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component

from custom_components.miloco.ai_task_flow import default_ai_task_subentry
from custom_components.miloco.const import DOMAIN

from .helpers import remote_entry
from .model_server import FakeModelServer


async def setup_ai_task_entity(hass: HomeAssistant, model_server: FakeModelServer) -> str:
    """Set up AI Task and a backend entry with its default AI Task subentry; return the entity."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "media_source", {})
    assert await async_setup_component(hass, "ai_task", {})
    entry = remote_entry(model_server, subentries=[default_ai_task_subentry()])
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    found = er.async_get(hass).async_get_entity_id("ai_task", DOMAIN, next(iter(entry.subentries)))
    assert found is not None
    return found


async def generate(hass: HomeAssistant, entity_id: str, **data: Any) -> dict[str, Any]:
    """Call ai_task.generate_data and return its response."""
    response = await hass.services.async_call(
        "ai_task",
        "generate_data",
        {"task_name": "look", "entity_id": entity_id, **data},
        blocking=True,
        return_response=True,
    )
    assert isinstance(response, dict)
    return response


def images(request: dict[str, Any]) -> list[bytes]:
    """Return the images a chat request carried, decoded from their data URLs."""
    return [
        base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
        for message in request["messages"]
        if isinstance(message["content"], list)
        for part in message["content"]
        if part.get("type") == "image_url"
    ]
