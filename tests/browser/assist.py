"""Ask Assist about a camera in the real frontend: core's Ollama agent, with Miloco's LLM API, looks through it.

Preconditions set up without the UI, through the APIs the frontend itself calls (config-flow REST API and
websocket, with the logged-in page's own connection): core's Ollama integration pointed at the scripted Ollama
server on loopback, its conversation agent with Miloco's API selected (HA 2025.4: the entry's options; 2025.7 on:
a conversation subentry), the agent as the preferred Assist pipeline's, and the camera exposed to Assist. The
question is then typed into Assist's dialog, as a person does. Both supported lines have all this (an Ollama agent
with a selectable LLM API, llm.async_register_api, Assist's dialog on the pipeline API), so it runs on each.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from custom_components.miloco.llm_api import API_ID

from ..ollama_server import MODEL
from .ui import Ui

# The frontend's own authenticated connection to Home Assistant (the page is logged in).
CALL_API_JS = """async ([method, path, body]) =>
  document.querySelector('home-assistant').hass.callApi(method, path, body)"""
CALL_WS_JS = "async (message) => document.querySelector('home-assistant').hass.callWS(message)"
AGENT_NAME = "Ollama Conversation"
# What the person types, what the agent asks Miloco's look tool, and what the vision model answers it.
ASSIST_QUESTION = "Is anyone in front of the demo camera?"
LOOK_QUESTION = "Is anyone in front of the camera?"
LOOK_ANSWER = "Yes: someone stands in front of the camera and waves."


async def call_api(ui: Ui, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call Home Assistant's REST API as the logged-in frontend."""
    return await ui.page.evaluate(CALL_API_JS, [method, path, body])


async def call_ws(ui: Ui, message: dict[str, Any]) -> Any:
    """Send one websocket command as the logged-in frontend; return its result."""
    return await ui.page.evaluate(CALL_WS_JS, message)


def _form_answer(form: dict[str, Any], ollama_url: str) -> dict[str, Any]:
    """Fill an Ollama form by its fields: the server, the model, the agent's name and Miloco's LLM API."""
    values: dict[str, Any] = {"url": ollama_url, "model": MODEL, "name": AGENT_NAME}
    answer: dict[str, Any] = {}
    for field in form["data_schema"]:
        name = field["name"]
        if name == "llm_hass_api":
            # A list of APIs on newer lines (a multiple select); one API on HA 2025.4.
            multiple = (field.get("selector") or {}).get("select", {}).get("multiple", False)
            answer[name] = [API_ID] if multiple else API_ID
        elif name in values:
            answer[name] = values[name]
    return answer


async def _run_flow(ui: Ui, kind: str, handler: Any, ollama_url: str) -> dict[str, Any]:
    """Run a config, options or subentry flow through the REST API to its end; return its last result."""
    base = f"config/config_entries/{kind}"
    result: dict[str, Any] = await call_api(ui, "POST", base, {"handler": handler})
    for _ in range(5):
        if result["type"] != "form":
            return result
        assert not result.get("errors"), result
        result = await call_api(ui, "POST", f"{base}/{result['flow_id']}", _form_answer(result, ollama_url))
    raise AssertionError(f"the {kind} flow did not end: {result}")


async def _wait_for_agent(ui: Ui, entry_id: str, within: float = 30.0) -> str:
    """Return the entity id of the entry's conversation agent once it is registered."""
    deadline = time.monotonic() + within
    while True:
        entities = await call_ws(ui, {"type": "config/entity_registry/list"})
        agents = [
            entity["entity_id"]
            for entity in entities
            if entity["config_entry_id"] == entry_id and entity["entity_id"].startswith("conversation.")
        ]
        if agents:
            return str(agents[0])
        if time.monotonic() > deadline:
            raise AssertionError(f"no Ollama conversation agent within {within:.0f} s")
        await asyncio.sleep(0.5)


async def add_ollama_agent(ui: Ui, ollama_url: str) -> str:
    """Add core's Ollama integration with an agent that uses Miloco's API; return the agent's entity id."""
    created = await _run_flow(ui, "flow", "ollama", ollama_url)
    assert created["type"] == "create_entry", created
    entry_id = created["result"]["entry_id"]
    (entry,) = [
        entry
        for entry in await call_api(ui, "GET", "config/config_entries/entry")
        if entry["entry_id"] == entry_id
    ]
    if "conversation" in (entry.get("supported_subentry_types") or {}):
        # HA 2025.7 on: the server is the entry, each agent a conversation subentry with its own APIs.
        done = await _run_flow(ui, "subentries/flow", [entry_id, "conversation"], ollama_url)
    else:
        # HA 2025.4: the entry is the agent; its options choose the API.
        done = await _run_flow(ui, "options/flow", entry_id, ollama_url)
    assert done["type"] in ("create_entry", "abort"), done
    assert done.get("reason") in (None, "reconfigure_successful"), done
    return await _wait_for_agent(ui, entry_id)


async def use_agent_in_assist(ui: Ui, agent: str, camera: str) -> None:
    """Make the agent the preferred pipeline's and expose the camera to Assist (cameras are not by default)."""
    await call_ws(
        ui,
        {
            "type": "homeassistant/expose_entity",
            "assistants": ["conversation"],
            "entity_ids": [camera],
            "should_expose": True,
        },
    )
    listed = await call_ws(ui, {"type": "assist_pipeline/pipeline/list"})
    (pipeline,) = [p for p in listed["pipelines"] if p["id"] == listed["preferred_pipeline"]]
    fields = {key: value for key, value in pipeline.items() if key != "id"}
    await call_ws(
        ui,
        {
            "type": "assist_pipeline/pipeline/update",
            "pipeline_id": pipeline["id"],
            **fields,
            "conversation_engine": agent,
        },
    )


async def ask_assist(ui: Ui, question: str, reply: str) -> None:
    """Open Assist's dialog from the dashboard, type the question and wait for the agent's reply in it."""
    page = ui.page
    await ui.goto("/lovelace/0")
    # The dashboard's Assist button: "Assist" (2025.4) or "Assist (A)", with its keyboard shortcut (2026.x).
    await page.get_by_role("button", name=re.compile(r"^Assist( \(A\))?$")).first.click()
    dialog = page.locator("ha-voice-command-dialog")
    request = dialog.get_by_role("textbox").first
    await request.wait_for()
    await request.fill(question)
    await request.press("Enter")
    await dialog.get_by_text(question, exact=True).wait_for()
    await dialog.get_by_text(reply, exact=True).wait_for(timeout=60_000)
