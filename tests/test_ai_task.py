"""ai_task.generate_data through real Home Assistant, answered by the backend on the loopback model server."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
import time
from typing import Any

import pytest

pytest.importorskip(
    "homeassistant.components.ai_task",
    reason="Home Assistant's AI Task building block exists only from 2025.8 on; the oldest supported line "
    "(2025.4) has none, so Miloco offers no AI Task entity there and there is nothing to test",
)

from homeassistant import config_entries
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from PIL import Image
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco import ai_task as miloco_ai_task
from custom_components.miloco.ai_task_flow import default_ai_task_subentry
from custom_components.miloco.const import DOMAIN, SUBENTRY_AI_TASK

from .helpers import remote_entry
from .model_server import FakeModelServer, Reply
from .scenes import SceneCamera, async_add_cameras, static_room

CAMERA = "media-source://camera/camera.living_room"


@pytest.fixture
def media(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Give Home Assistant a local media folder of its own (read when media_source sets up)."""
    hass.config.media_dirs = {"local": str(tmp_path)}
    return tmp_path


@pytest.fixture
async def entity_id(hass: HomeAssistant, model_server: FakeModelServer, media: Path) -> str:
    """Set up AI Task, a camera and a backend entry with its default AI Task subentry; return the entity."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "media_source", {})
    assert await async_setup_component(hass, "ai_task", {})
    await async_add_cameras(hass, SceneCamera("Living room", static_room()))
    entry = remote_entry(model_server, subentries=[default_ai_task_subentry()])
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    subentry_id = next(iter(entry.subentries))
    found = er.async_get(hass).async_get_entity_id("ai_task", DOMAIN, subentry_id)
    assert found is not None
    return found


async def _generate(hass: HomeAssistant, entity_id: str, **data: Any) -> dict[str, Any]:
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


def _images(request: dict[str, Any]) -> list[bytes]:
    """Return the images a chat request carried, decoded from their data URLs."""
    return [
        base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
        for message in request["messages"]
        if isinstance(message["content"], list)
        for part in message["content"]
        if part.get("type") == "image_url"
    ]


def _schema(request: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = request["response_format"]["json_schema"]["schema"]
    return schema


async def test_camera_attachment_gives_a_free_text_answer(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer
) -> None:
    model_server.script(Reply(content='{"answer": "A living room with a blue sofa and a TV."}'))
    response = await _generate(
        hass,
        entity_id,
        instructions="Describe the room.",
        attachments=[{"media_content_id": CAMERA, "media_content_type": "image/jpeg"}],
    )
    assert response["data"] == "A living room with a blue sofa and a TV."
    (request,) = model_server.chat_requests
    (image,) = _images(request)
    # The camera's frame, resized within the default (medium) token budget like a check's frames.
    with Image.open(io.BytesIO(image)) as decoded:
        assert decoded.format == "JPEG"
        assert decoded.width % 28 == 0
        assert decoded.height % 28 == 0
    text = json.dumps(request["messages"])
    assert "Describe the room." in text
    assert set(_schema(request)["properties"]) == {"answer"}
    # The AI Task entity shows when it last worked.
    assert hass.states.get(entity_id).state not in ("unknown", "unavailable")


async def test_structure_becomes_the_requested_schema_and_is_parsed(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer
) -> None:
    # A fenced, loosely typed reply: the same parser as the checks reads it.
    model_server.script(Reply(content='```json\n{"people": 2.0, "sofa_used": "yes", "extra": 1}\n```'))
    response = await _generate(
        hass,
        entity_id,
        instructions="How many people are on the sofa?",
        structure={
            "people": {"selector": {"number": {"min": 0, "max": 10}}, "required": True},
            "sofa_used": {"selector": {"boolean": {}}, "description": "Anyone on the sofa"},
        },
        attachments=[{"media_content_id": CAMERA, "media_content_type": "image/jpeg"}],
    )
    assert response["data"] == {"people": 2.0, "sofa_used": True}
    (request,) = model_server.chat_requests
    schema = _schema(request)
    assert schema["type"] == "object"
    assert schema["required"] == ["people"]
    assert schema["properties"]["people"]["type"] == "number"
    assert schema["properties"]["people"]["maximum"] == 10
    assert schema["properties"]["sofa_used"]["type"] == "boolean"
    assert len(_images(request)) == 1


async def test_a_media_png_is_sent_as_a_jpeg(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer, media: Path
) -> None:
    await hass.async_add_executor_job(Image.new("RGB", (640, 480), (200, 30, 30)).save, media / "red.png")
    model_server.script(Reply(content='{"answer": "red"}'))
    response = await _generate(
        hass,
        entity_id,
        instructions="What colour is it?",
        attachments=[
            {
                "media_content_id": "media-source://media_source/local/red.png",
                "media_content_type": "image/png",
            }
        ],
    )
    assert response["data"] == "red"
    (image,) = _images(model_server.chat_requests[0])
    with Image.open(io.BytesIO(image)) as decoded:
        assert decoded.format == "JPEG"
        red, green, _ = decoded.convert("RGB").getpixel((5, 5))
        assert red > 150 > green


async def test_a_video_attachment_is_refused_before_the_model_is_asked(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer, media: Path
) -> None:
    await hass.async_add_executor_job((media / "clip.mp4").write_bytes, b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(HomeAssistantError) as raised:
        await _generate(
            hass,
            entity_id,
            instructions="What happens?",
            attachments=[
                {
                    "media_content_id": "media-source://media_source/local/clip.mp4",
                    "media_content_type": "video/mp4",
                }
            ],
        )
    assert raised.value.translation_key == "unsupported_attachment"
    assert "video/mp4" in str(raised.value)
    assert model_server.chat_requests == []


async def test_the_backend_down_is_a_translated_error_and_frees_the_slot(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer
) -> None:
    await model_server.stop()
    with pytest.raises(HomeAssistantError) as raised:
        await _generate(
            hass,
            entity_id,
            instructions="Describe the room.",
            attachments=[{"media_content_id": CAMERA, "media_content_type": "image/jpeg"}],
        )
    assert raised.value.translation_key == "backend_error"
    assert "cannot_connect" in str(raised.value)
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert entry.runtime_data.limiter.in_flight == 0


async def test_a_busy_backend_is_waited_for_then_refused_in_time(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(miloco_ai_task, "AI_TASK_SLOT_WAIT_S", 0.5)
    limiter = hass.config_entries.async_entries(DOMAIN)[0].runtime_data.limiter
    # Two cameras' checks hold both slots of the backend.
    assert limiter.try_acquire("camera_a", time.monotonic())
    assert limiter.try_acquire("camera_b", time.monotonic())
    with pytest.raises(HomeAssistantError) as raised:
        await _generate(hass, entity_id, instructions="Say hello.")
    assert raised.value.translation_key == "backend_busy"
    assert model_server.chat_requests == []
    # A check ends: the task gets its turn, ahead of the camera that was just served.
    limiter.release("camera_a")
    model_server.script(Reply(content='{"answer": "hello"}'))
    assert (await _generate(hass, entity_id, instructions="Say hello."))["data"] == "hello"
    # The task gave its slot back: only camera_b's remains taken.
    assert limiter.in_flight == 1


async def test_a_new_backend_gets_its_ai_task_entity(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    # Home Assistant's own core integration, always loaded outside tests, which conversation needs.
    assert await async_setup_component(hass, "homeassistant", {})
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "remote"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"url": model_server.url, "verify_ssl": True, "timeout": 10, "max_concurrent": 2},
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": "mimo-vl-miloco-7b"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry: MockConfigEntry = result["result"]
    (subentry,) = entry.subentries.values()
    assert subentry.subentry_type == SUBENTRY_AI_TASK
    await hass.async_block_till_done()
    assert er.async_get(hass).async_get_entity_id("ai_task", DOMAIN, subentry.subentry_id) is not None


async def test_another_ai_task_entity_can_be_added_and_changed(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer
) -> None:
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_AI_TASK), context={"source": "user"}
    )
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Kitchen helper", "detail": "low"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    added = next(sub for sub in entry.subentries.values() if sub.title == "Kitchen helper")
    assert added.data == {"detail": "low"}
    kitchen = er.async_get(hass).async_get_entity_id("ai_task", DOMAIN, added.subentry_id)
    assert kitchen == "ai_task.kitchen_helper"

    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_AI_TASK),
        context={"source": "reconfigure", "subentry_id": added.subentry_id},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Kitchen helper", "detail": "high"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.subentries[added.subentry_id].data == {"detail": "high"}
    # A high-detail task spends up to 1024 image tokens on one 320x180 camera frame: no upscaling past it.
    model_server.script(Reply(content='{"answer": "ok"}'))
    await _generate(
        hass,
        kitchen,
        instructions="Look.",
        attachments=[{"media_content_id": CAMERA, "media_content_type": "image/jpeg"}],
    )
    (image,) = _images(model_server.chat_requests[-1])
    with Image.open(io.BytesIO(image)) as decoded:
        assert decoded.size == (336, 196)
