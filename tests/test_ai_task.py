"""ai_task.generate_data through real Home Assistant, answered by the backend on the loopback model server."""

from __future__ import annotations

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

from custom_components.miloco.ai_task_flow import default_ai_task_subentry
from custom_components.miloco.const import DOMAIN, SUBENTRY_AI_TASK

from .ai_task_helpers import generate, images, setup_ai_task_entity
from .helpers import remote_entry
from .model_server import FakeModelServer, Reply
from .perception_helpers import answer, camera_subentry, wait_for
from .scenes import SceneCamera, async_add_cameras, static_room, waving_hand

CAMERA = "media-source://camera/camera.living_room"


@pytest.fixture
def media(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Give Home Assistant a local media folder of its own (read when media_source sets up)."""
    hass.config.media_dirs = {"local": str(tmp_path)}
    return tmp_path


@pytest.fixture
async def entity_id(hass: HomeAssistant, model_server: FakeModelServer, media: Path) -> str:
    """Set up AI Task, a camera and a backend entry with its default AI Task subentry; return the entity."""
    await async_add_cameras(hass, SceneCamera("Living room", static_room()))
    return await setup_ai_task_entity(hass, model_server)


def _schema(request: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = request["response_format"]["json_schema"]["schema"]
    return schema


async def test_camera_attachment_gives_a_free_text_answer(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer
) -> None:
    model_server.script(Reply(content='{"answer": "A living room with a blue sofa and a TV."}'))
    response = await generate(
        hass,
        entity_id,
        instructions="Describe the room.",
        attachments=[{"media_content_id": CAMERA, "media_content_type": "image/jpeg"}],
    )
    assert response["data"] == "A living room with a blue sofa and a TV."
    (request,) = model_server.chat_requests
    (image,) = images(request)
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
    response = await generate(
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
    assert len(images(request)) == 1


async def test_a_media_png_is_sent_as_a_jpeg(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer, media: Path
) -> None:
    await hass.async_add_executor_job(Image.new("RGB", (640, 480), (200, 30, 30)).save, media / "red.png")
    model_server.script(Reply(content='{"answer": "red"}'))
    response = await generate(
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
    (image,) = images(model_server.chat_requests[0])
    with Image.open(io.BytesIO(image)) as decoded:
        assert decoded.format == "JPEG"
        red, green, _ = decoded.convert("RGB").getpixel((5, 5))
        assert red > 150 > green


async def test_an_unreadable_video_or_a_text_is_refused_before_the_model_is_asked(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer, media: Path
) -> None:
    await hass.async_add_executor_job((media / "clip.mp4").write_bytes, b"\x00\x00\x00\x18ftypmp42")
    await hass.async_add_executor_job((media / "notes.txt").write_text, "not a picture")
    with pytest.raises(HomeAssistantError) as raised:
        await generate(
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
    assert raised.value.translation_key == "video_unreadable"
    with pytest.raises(HomeAssistantError) as raised:
        await generate(
            hass,
            entity_id,
            instructions="What is it?",
            attachments=[
                {
                    "media_content_id": "media-source://media_source/local/notes.txt",
                    "media_content_type": "text/plain",
                }
            ],
        )
    assert raised.value.translation_key == "unsupported_attachment"
    assert "text/plain" in str(raised.value)
    assert model_server.chat_requests == []


async def test_the_backend_down_is_a_translated_error_and_frees_the_slot(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer
) -> None:
    await model_server.stop()
    with pytest.raises(HomeAssistantError) as raised:
        await generate(
            hass,
            entity_id,
            instructions="Describe the room.",
            attachments=[{"media_content_id": CAMERA, "media_content_type": "image/jpeg"}],
        )
    assert raised.value.translation_key == "backend_error"
    # The reason is worded for a person, not shown as its key.
    assert raised.value.translation_placeholders == {"reason": "the model server cannot be reached"}
    assert "cannot_connect" not in str(raised.value)
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert entry.runtime_data.limiter.in_flight == 0


async def _busy_entity(
    hass: HomeAssistant, model_server: FakeModelServer, *cameras: SceneCamera, **extra: Any
) -> tuple[MockConfigEntry, str]:
    """Set up a backend with an AI Task entity that watches the cameras; return the entry and the entity."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "ai_task", {})
    await async_add_cameras(hass, *cameras)
    subentries = [*(camera_subentry(camera) for camera in cameras), default_ai_task_subentry()]
    entry = remote_entry(model_server, subentries=subentries, **extra)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    subentry_id = next(sid for sid, sub in entry.subentries.items() if sub.subentry_type == SUBENTRY_AI_TASK)
    found = er.async_get(hass).async_get_entity_id("ai_task", DOMAIN, subentry_id)
    assert found is not None
    return entry, found


async def test_a_busy_backend_is_waited_for_the_entry_timeout_then_refused(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    # The least model timeout a server may have: a person's question waits that long for a slot, no longer.
    entry, entity_id = await _busy_entity(hass, model_server, timeout=5)
    limiter = entry.runtime_data.limiter
    # Two cameras' checks hold both slots of the backend.
    assert limiter.try_acquire("camera_a", time.monotonic())
    assert limiter.try_acquire("camera_b", time.monotonic())
    started = time.monotonic()
    with pytest.raises(HomeAssistantError) as raised:
        await generate(hass, entity_id, instructions="Say hello.")
    assert 4.5 < time.monotonic() - started < 10
    # The one "busy" of every person's question, saying how long it waited.
    assert raised.value.translation_key == "busy"
    assert "5 s" in str(raised.value)
    assert model_server.chat_requests == []
    # A check ends: the task gets its turn.
    limiter.release("camera_a")
    model_server.script(Reply(content='{"answer": "hello"}'))
    assert (await generate(hass, entity_id, instructions="Say hello."))["data"] == "hello"
    # The task gave its slot back: only camera_b's remains taken.
    assert limiter.in_flight == 1


def _is_task(body: dict[str, Any]) -> bool:
    """Return whether a chat request is an AI Task's (not a camera's check)."""
    return "Do the user's task" in body["messages"][0]["content"]


async def test_a_task_is_answered_while_two_busy_cameras_share_one_slot(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    """Issue 18, case 8: with more always-changing cameras than slots one camera always waits; a person's
    question used to wait behind it until it gave up."""

    def respond(body: dict[str, Any]) -> Reply:
        if _is_task(body):
            return Reply(content='{"answer": "hello"}', delay_s=0.3)
        reply = answer()
        reply.delay_s = 0.3
        return reply

    model_server.responder = respond
    cameras = (SceneCamera("Front", waving_hand()), SceneCamera("Back", waving_hand()))
    entry, entity_id = await _busy_entity(hass, model_server, *cameras, max_concurrent=1, timeout=5)
    watchers = list(entry.runtime_data.watchers.values())
    # Both cameras check and are turned away in turn: one of them is always waiting for the slot.
    await wait_for(lambda: all(w.stats.checks >= 2 and w.stats.skipped_busy >= 1 for w in watchers))
    for _ in range(3):
        started = time.monotonic()
        response = await generate(hass, entity_id, instructions="Say hello.")
        assert response["data"] == "hello"
        # Within about one check ahead of it and its own answer, far inside its 5 s wait.
        assert time.monotonic() - started < 2.5
    checks = [w.stats.checks for w in watchers]
    # The cameras still get their turns between the questions.
    await wait_for(lambda: all(w.stats.checks > before for w, before in zip(watchers, checks, strict=True)))
    assert model_server.in_flight_max == 1


async def test_photos_of_different_shapes_keep_their_shapes_and_are_named(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer, media: Path
) -> None:
    def save() -> None:
        Image.new("RGB", (600, 1200), (200, 30, 30)).save(media / "portrait.jpg", quality=90)
        Image.new("RGB", (1600, 900), (30, 30, 200)).save(media / "landscape.jpg", quality=90)

    await hass.async_add_executor_job(save)
    model_server.script(Reply(content='{"answer": "a red and a blue picture"}'))
    response = await generate(
        hass,
        entity_id,
        instructions="What colours are the photos?",
        attachments=[
            {
                "media_content_id": "media-source://media_source/local/portrait.jpg",
                "media_content_type": "image/jpeg",
            },
            {
                "media_content_id": "media-source://media_source/local/landscape.jpg",
                "media_content_type": "image/jpeg",
            },
        ],
    )
    assert response["data"] == "a red and a blue picture"
    (request,) = model_server.chat_requests
    portrait, landscape = images(request)
    with Image.open(io.BytesIO(portrait)) as decoded:
        # Tall, as the photo is (1:2 to within a 28-px cell), and still red: not the landscape's shape.
        assert abs(decoded.width / decoded.height - 0.5) < 0.1
        red, green, _ = decoded.convert("RGB").getpixel((5, 5))
        assert red > 150 > green
    with Image.open(io.BytesIO(landscape)) as decoded:
        assert abs(decoded.width / decoded.height - 16 / 9) < 0.2
    # Each image follows its name, in the order given; nothing calls them a sequence in time.
    parts = request["messages"][1]["content"]
    kinds = [part["text"] if part["type"] == "text" else "<image>" for part in parts]
    assert kinds[:4] == ["Image 1: portrait.jpg", "<image>", "Image 2: landscape.jpg", "<image>"]
    assert "separate images" in request["messages"][0]["content"]
    assert "oldest first" not in json.dumps(request["messages"])


@pytest.mark.parametrize("instructions", ["x" * 2001, "x" * 3_000_000, "   "])
async def test_instructions_are_bounded_before_the_model_is_asked(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer, instructions: str
) -> None:
    with pytest.raises(HomeAssistantError) as raised:
        await generate(hass, entity_id, instructions=instructions)
    assert raised.value.translation_key == "invalid_instructions"
    assert "2000" in str(raised.value)
    assert model_server.chat_requests == []


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
    await generate(
        hass,
        kitchen,
        instructions="Look.",
        attachments=[{"media_content_id": CAMERA, "media_content_type": "image/jpeg"}],
    )
    (image,) = images(model_server.chat_requests[-1])
    with Image.open(io.BytesIO(image)) as decoded:
        assert decoded.size == (336, 196)
