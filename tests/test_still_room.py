"""A still room is cheap: a camera at rest takes fewer frames and writes its entities rarely, until it moves."""

from __future__ import annotations

import asyncio

from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event

from custom_components.miloco.frame_intake import REST_STRIDE
from custom_components.miloco.watcher import STILL_WRITE_S

from .model_server import FakeModelServer
from .perception_helpers import answer, wait_for, watch
from .scenes import SceneCamera, static_room, waving_hand

FPS = 10


async def _served_in(camera: SceneCamera, seconds: float) -> int:
    """Return how many frames the camera served in the next `seconds`."""
    before = camera.images_served
    await asyncio.sleep(seconds)
    return camera.images_served - before


async def test_a_camera_at_rest_takes_fewer_frames_until_something_moves(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = answer()
    room, hand = static_room(), waving_hand()
    moving = False
    camera = SceneCamera("Living room", lambda: hand() if moving else room())
    await watch(hass, model_server, camera, fps=FPS, spare_slots=False)
    await wait_for(lambda: len(model_server.chat_requests) == 1)
    # Still for a whole window (3 frames) after the first check: the camera rests.
    await asyncio.sleep(1.0)
    resting = await _served_in(camera, 2.0)
    # One frame in two (REST_STRIDE) while at rest.
    assert REST_STRIDE == 2
    assert resting <= 2.0 * FPS / 2 + 2, resting
    moving = True
    # The first moving frame brings the camera's own rate back (a check in flight keeps it).
    await asyncio.sleep(0.5)
    awake = await _served_in(camera, 2.0)
    assert awake >= 2.0 * FPS - 4, awake
    assert len(model_server.chat_requests) > 1


async def test_a_still_room_writes_its_entities_rarely(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = answer()
    camera = SceneCamera("Living room", static_room())
    entry = await watch(hass, model_server, camera)
    watcher = next(iter(entry.runtime_data.watchers.values()))
    await wait_for(lambda: watcher.stats.skipped_by_gate >= 1)
    entity_id = er.async_get(hass).async_get_entity_id(
        "sensor", "miloco", f"{watcher.subentry_id}_skipped_by_gate"
    )
    assert entity_id is not None
    writes: list[str] = []

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        writes.append(new.state if new else "")

    async_track_state_change_event(hass, [entity_id], changed)
    counted = watcher.stats.skipped_by_gate
    # A skip is counted every 2 s; written at most every STILL_WRITE_S.
    await asyncio.sleep(5.0)
    assert watcher.stats.skipped_by_gate >= counted + 2
    assert len(writes) <= 5.0 / STILL_WRITE_S + 1, writes
