"""AI Task with a video attachment: the clip's frames reach the model in order; the chat log's context rides along."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

pytest.importorskip(
    "homeassistant.components.ai_task",
    reason="Home Assistant's AI Task building block exists only from 2025.8 on; the oldest supported line "
    "(2025.4) has none, so Miloco offers no AI Task entity there and there is nothing to test",
)

import av
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from PIL import Image

from .ai_task_helpers import generate, images, setup_ai_task_entity
from .model_server import FakeModelServer, Reply

# The clip: one solid colour per frame, two frames a second, in this order.
COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 40), (210, 40, 210), (40, 210, 210)]
CLIP = "media-source://media_source/local/clip.mp4"


@pytest.fixture
async def entity_id(hass: HomeAssistant, model_server: FakeModelServer, tmp_path: Path) -> str:
    """Set up AI Task and a backend entry with its default AI Task subentry, and write the clip; return the entity."""
    hass.config.media_dirs = {"local": str(tmp_path)}
    found = await setup_ai_task_entity(hass, model_server)
    await hass.async_add_executor_job(_write_clip, tmp_path / "clip.mp4")
    return found


def _write_clip(path: Path) -> None:
    """Encode the colours as an MP4 at 2 frames per second with PyAV."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=2)
        stream.width, stream.height = 160, 120
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 2_000_000
        for colour in COLOURS:
            frame = av.VideoFrame.from_image(Image.new("RGB", (160, 120), colour))
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _nearest(image: bytes) -> tuple[int, int, int]:
    """Return the clip colour nearest to the image's mean colour."""
    with Image.open(io.BytesIO(image)) as decoded:
        mean = decoded.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert isinstance(mean, tuple)
    return min(COLOURS, key=lambda colour: sum((a - b) ** 2 for a, b in zip(colour, mean, strict=True)))


async def test_an_mp4_clip_reaches_the_model_as_its_frames_in_order(
    hass: HomeAssistant, entity_id: str, model_server: FakeModelServer
) -> None:
    model_server.script(Reply(content='{"answer": "The colours change."}'))
    response = await generate(
        hass,
        entity_id,
        instructions="What happens in the clip?",
        attachments=[{"media_content_id": CLIP, "media_content_type": "video/mp4"}],
    )
    assert response["data"] == "The colours change."
    (request,) = model_server.chat_requests
    assert [_nearest(image) for image in images(request)] == COLOURS
    text = json.dumps(request["messages"])
    # Described as a clip over time, at its own rate: six frames half a second apart.
    assert "6 frames taken over 3 seconds (2 frames per second), oldest first" in text
    assert "What happens in the clip?" in text
    # The chat log's system content is context (the date and time HA adds), without HA's generic AI Task line.
    assert "Context from Home Assistant" in text
    assert "Today's date is" in text
    assert "Home Assistant expert" not in text


async def test_a_video_goes_alone(hass: HomeAssistant, entity_id: str, model_server: FakeModelServer) -> None:
    with pytest.raises(HomeAssistantError) as raised:
        await generate(
            hass,
            entity_id,
            instructions="Compare them.",
            attachments=[
                {"media_content_id": CLIP, "media_content_type": "video/mp4"},
                {"media_content_id": CLIP, "media_content_type": "video/mp4"},
            ],
        )
    assert raised.value.translation_key == "video_with_other_attachments"
    assert model_server.chat_requests == []
