"""Shared set-up of the Assist tests: exposed and unexposed cameras, an area, and calls to Miloco's LLM API."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import area_registry as ar, entity_registry as er, llm
from homeassistant.setup import async_setup_component

from custom_components.miloco.llm_api import API_ID

from .model_server import FakeModelServer, Reply
from .perception_helpers import answer


def llm_context() -> llm.LLMContext:
    """Return the context a conversation agent gives an API (its fields differ between HA lines)."""
    values: dict[str, Any] = {
        "platform": "test",
        "context": Context(),
        "language": "en",
        "assistant": "conversation",
        "device_id": None,
        # HA 2025.4 has it; later lines dropped it.
        "user_prompt": "What do the cameras see?",
    }
    names = {field.name for field in dataclasses.fields(llm.LLMContext)}
    return llm.LLMContext(**{key: value for key, value in values.items() if key in names})


async def async_api(hass: HomeAssistant) -> llm.APIInstance:
    """Return Miloco's API as a conversation agent gets it."""
    return await llm.async_get_api(hass, API_ID, llm_context())


async def async_call(hass: HomeAssistant, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call one of Miloco's tools as a conversation agent does; return its data."""
    api = await async_api(hass)
    result = await api.async_call_tool(llm.ToolInput(tool_name=tool, tool_args=arguments))
    # HA 2026 wraps a tool's answer in a ToolResult; 2025.4 returns the object itself.
    data: dict[str, Any] = getattr(result, "data", result)
    return data


async def async_expose(hass: HomeAssistant, *entity_ids: str, area: str | None = None) -> None:
    """Expose cameras to Assist (cameras are not exposed by default), in an area when one is named."""
    assert await async_setup_component(hass, "homeassistant", {})
    area_id = ar.async_get(hass).async_get_or_create(area).id if area else None
    for entity_id in entity_ids:
        async_expose_entity(hass, "conversation", entity_id, True)
        if area_id is not None:
            er.async_get(hass).async_update_entity(entity_id, area_id=area_id)


def answer_question(server: FakeModelServer, question: str, text: str) -> None:
    """Have the model answer `text` to the question, and the live checks as a quiet room."""

    def respond(body: dict[str, Any]) -> Reply:
        if question in json.dumps(body["messages"]):
            return Reply(content=json.dumps({"answer": text}))
        return answer(person=False)

    server.responder = respond


def asked_about(server: FakeModelServer, question: str) -> list[dict[str, Any]]:
    """Return the chat requests that asked the question."""
    return [body for body in server.chat_requests if question in json.dumps(body["messages"])]
