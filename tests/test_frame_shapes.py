"""Cameras of any frame shape are watched: each frame prepared once at capture, the model asked about it."""

from __future__ import annotations

import base64
import io
from typing import Any

from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from PIL import Image, ImageDraw
import pytest

from custom_components.miloco.engine.frames import DETAIL_BUDGETS, image_tokens

from .model_server import FakeModelServer
from .perception_helpers import answer, wait_for, watch
from .scenes import SceneCamera


def _moving_strip(width: int, height: int) -> Any:
    """Return a scene of a strip of that shape whose bright bar moves every frame (the gate opens)."""
    count = 0

    def frame() -> bytes:
        nonlocal count
        count += 1
        image = Image.new("RGB", (width, height), (40, 60, 90))
        long_side = max(width, height)
        at = (count * long_side // 7) % long_side
        bar = (at, 0, at + long_side // 5, height) if width >= height else (0, at, width, at + long_side // 5)
        ImageDraw.Draw(image).rectangle(bar, fill=(240, 220, 200))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        return buffer.getvalue()

    return frame


def _image_sizes(body: dict[str, Any]) -> list[tuple[int, int]]:
    """Return the sizes of the images in a chat request, in order."""
    sizes = []
    for part in body["messages"][1]["content"]:
        if part.get("type") == "image_url":
            data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            sizes.append(Image.open(io.BytesIO(data)).size)
    return sizes


@pytest.mark.parametrize(("width", "height"), [(4000, 16), (16, 4000)])
async def test_a_camera_of_extreme_aspect_is_checked(
    hass: HomeAssistant, model_server: FakeModelServer, width: int, height: int
) -> None:
    # A 4000×16 frame used to raise ValueError out of every check (plan_sizes could not fit it): nothing was
    # counted, and the entities kept stale states.
    model_server.default_reply = answer()
    camera = SceneCamera("Strip", _moving_strip(width, height))
    await watch(hass, model_server, camera)
    # The test cameras' window is 3 frames at low detail; the first checks of a slow (loaded) machine may start
    # before it has filled, so wait for a full one.
    await wait_for(lambda: any(len(_image_sizes(body)) == 3 for body in model_server.chat_requests))
    await wait_for(lambda: hass.states.get("binary_sensor.strip_person").state == STATE_ON)
    for body in model_server.chat_requests:
        sizes = _image_sizes(body)
        assert 1 <= len(sizes) <= 3
        assert sum(image_tokens(w, h) for w, h in sizes) <= DETAIL_BUDGETS["low"]
        for w, h in sizes:
            assert w % 28 == 0 and h % 28 == 0 and min(w, h) >= 56
            # Squeezed along the long side, which stays the long side.
            assert (w > h) == (width > height)
    (watcher,) = hass.config_entries.async_entries("miloco")[0].runtime_data.watchers.values()
    assert watcher.stats.failures == 0
    assert watcher.stats.checks >= 1
