"""End to end: core's Ollama conversation agent, with Miloco's LLM API selected, looks through a camera.

A scripted Ollama-compatible server on loopback plays the agent's language model: it calls Miloco's look tool,
then answers with the tool's result. The tool runs through Miloco against the loopback vision model server,
which receives the camera's real frames. Both supported lines have what this needs (llm.async_register_api,
Ollama's conversation agent with a selectable LLM API), so it runs on each.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
import json
from pathlib import Path
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.ollama.config_flow import OllamaConfigFlow
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.llm_api import API_ID

from .assist_helpers import answer_question, asked_about, async_expose
from .helpers import remote_entry
from .model_server import FakeModelServer
from .ollama_server import MODEL, ScriptedOllama
from .perception_helpers import camera_subentry, wait_for
from .scenes import SceneCamera, async_add_cameras, static_room

QUESTION = "Is anyone at the door?"
ANSWER = "A courier in a red jacket is waiting at the door."


@pytest.fixture
async def ollama(socket_enabled: None) -> AsyncGenerator[ScriptedOllama]:
    """Run the scripted Ollama server: it asks Miloco's look tool about the front door."""
    server = ScriptedOllama("look", {"camera": "Front door", "question": QUESTION})
    await server.start()
    yield server
    await server.stop()


def _ollama_entry(url: str) -> MockConfigEntry:
    """Return an Ollama entry whose conversation agent uses Miloco's API, in this HA line's entry format."""
    if OllamaConfigFlow.VERSION >= 3:
        # HA 2025.7 on: the server is the entry, each agent a conversation subentry with a list of APIs.
        return MockConfigEntry(
            domain="ollama",
            version=OllamaConfigFlow.VERSION,
            minor_version=getattr(OllamaConfigFlow, "MINOR_VERSION", 1),
            data={"url": url},
            subentries_data=[
                {
                    "subentry_type": "conversation",
                    "title": "Ollama Conversation",
                    "unique_id": None,
                    "data": {"model": MODEL, "llm_hass_api": [API_ID]},
                }
            ],  # type: ignore[list-item]
        )
    # HA 2025.4: one agent per entry, the API chosen in its options.
    return MockConfigEntry(
        domain="ollama", data={"url": url, "model": MODEL}, options={"llm_hass_api": API_ID}
    )


async def test_an_ollama_agent_answers_with_what_miloco_saw(
    hass: HomeAssistant, model_server: FakeModelServer, ollama: ScriptedOllama, tmp_path: Path
) -> None:
    hass.config.media_dirs = {"local": str(tmp_path)}
    # Exposure lives in the homeassistant integration, which conversation (and AI Task) need set up first.
    assert await async_setup_component(hass, "homeassistant", {})
    front = SceneCamera("Front door", static_room())
    await async_add_cameras(hass, front)
    miloco = remote_entry(model_server, subentries=[camera_subentry(front)])
    miloco.add_to_hass(hass)
    assert await hass.config_entries.async_setup(miloco.entry_id)
    await async_expose(hass, "camera.front_door", area="Entrance")
    answer_question(model_server, QUESTION, ANSWER)
    watcher = miloco.runtime_data.watcher_for("camera.front_door")
    assert watcher is not None
    await wait_for(lambda: len(watcher.recent_frames()) >= 3)

    assert await async_setup_component(hass, "conversation", {})
    entry = _ollama_entry(ollama.url)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    (agent,) = [
        registered.entity_id
        for registered in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if registered.domain == "conversation"
    ]

    result = await conversation.async_converse(
        hass, "Is anyone at the front door?", None, Context(), language="en", agent_id=agent
    )

    speech: dict[str, Any] = result.response.speech["plain"]
    assert speech["speech"] == f"Miloco says: {ANSWER}"
    first, second = ollama.chats
    # The agent was offered Miloco's tools, and its prompt named the exposed camera and its area.
    assert {tool["function"]["name"] for tool in first["tools"]} == {"look", "recent_detections"}
    assert "Front door (camera.front_door), in the Entrance area" in first["messages"][0]["content"]
    # The tool's result went back to the agent, naming the key frame the answer looked at.
    (tool_message,) = [message for message in second["messages"] if message["role"] == "tool"]
    assert "image.front_door_last_detection" in tool_message["content"]
    # Miloco asked the vision model once, about the camera's live window of real frames.
    (request,) = asked_about(model_server, QUESTION)
    assert json.dumps(request["messages"]).count('"type": "image_url"') == 3
