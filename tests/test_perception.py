"""The perception loop end to end: generated scenes, a scripted model server, real Home Assistant."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.miloco import health
from custom_components.miloco.const import DOMAIN

from .helpers import find_device
from .model_server import FakeModelServer, Reply, error
from .perception_helpers import answer, capture_events, wait_for, watch
from .scenes import SceneCamera, static_room, waving_hand


async def test_a_held_gesture_fires_once_per_episode(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.script(
        answer(("thumbs_up",)),
        answer(("thumbs_up",)),
        answer(("thumbs_up", "wave")),
        answer(),
        answer(("thumbs_up",)),
    )
    model_server.default_reply = answer()
    events = capture_events(hass)
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    await wait_for(lambda: len(model_server.chat_requests) >= 6)

    gestures = [event["gesture"] for event in events if event["type"] == "gesture"]
    # Three checks saw the same thumbs-up: one event. It went away and came back: a second one.
    assert gestures == ["thumbs_up", "wave", "thumbs_up"]
    device = find_device(hass, entry, next(iter(entry.subentries)))
    assert device is not None
    assert {event["device_id"] for event in events} == {device.id}
    assert {event["camera_entity_id"] for event in events} == {"camera.living_room"}
    state = hass.states.get("event.living_room_gesture")
    assert state.attributes["event_type"] == "thumbs_up"
    assert state.attributes["camera_entity_id"] == "camera.living_room"


async def test_activity_sensor_follows_the_scene_with_its_hold_time(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.script(answer(activities=("reading",)), answer(activities=("reading",)))
    model_server.default_reply = answer()
    events = capture_events(hass)
    await watch(hass, model_server, SceneCamera("Living room", waving_hand()))

    await wait_for(lambda: hass.states.get("binary_sensor.living_room_reading").state == STATE_ON)
    started = time.monotonic()
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_reading").state == STATE_OFF)
    # Off only after the hold time (1 s) from the last sighting: no flicker between checks.
    assert time.monotonic() - started >= 0.9
    kinds = [
        (event["type"], event.get("activity")) for event in events if event["type"].startswith("activity")
    ]
    assert kinds == [("activity_started", "reading"), ("activity_ended", "reading")]
    assert hass.states.get("binary_sensor.living_room_watching_tv").state == STATE_OFF
    assert hass.states.get("binary_sensor.living_room_person").state == STATE_ON


async def test_a_static_scene_costs_no_model_calls(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = answer(activities=("reading",))
    camera = SceneCamera("Living room", static_room())
    entry = await watch(hass, model_server, camera)
    await wait_for(lambda: camera.images_served >= 50)
    # One check establishes the scene; after that an unchanged picture asks nothing.
    assert len(model_server.chat_requests) == 1
    watcher = next(iter(entry.runtime_data.watchers.values()))
    # 5 s still at 10 fps: a skip is counted (and the states refreshed) every 2 s, not at every frame.
    assert 2 <= watcher.stats.skipped_by_gate <= 5
    # No change, no news: the reader is still reading long after the 1 s hold time.
    assert hass.states.get("binary_sensor.living_room_reading").state == STATE_ON
    # Nor does it cost the model's frame sizes: still for a whole window, a frame gets only its thumbnail.
    assert all(frame.thumb is not None and frame.prepared is None for frame in watcher.recent_frames())


async def test_a_moving_scene_has_its_frames_prepared_once_at_capture(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = answer()
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    await wait_for(lambda: len(model_server.chat_requests) >= 3)
    watcher = next(iter(entry.runtime_data.watchers.values()))
    # Every frame of a moving scene carries its model sizes from capture: a check only picks them.
    assert all(frame.prepared is not None for frame in watcher.recent_frames())


async def test_heartbeat_rechecks_a_static_scene(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    model_server.default_reply = answer()
    camera = SceneCamera("Living room", static_room())
    await watch(hass, model_server, camera, heartbeat=1)
    await wait_for(lambda: len(model_server.chat_requests) >= 3, within=10)


async def test_request_carries_the_window_oldest_first(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = answer()
    await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    await wait_for(lambda: len(model_server.chat_requests) >= 2)
    body = model_server.chat_requests[-1]
    content = body["messages"][1]["content"]
    assert content[0]["text"] == "Image sequence is as follows:"
    assert [part["type"] for part in content[1:-1]] == ["image_url"] * 3
    question = content[-1]["text"]
    assert question.endswith("/no_think")
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["gestures"]["items"]["enum"] == ["thumbs_up", "wave"]
    assert schema["properties"]["activities"]["items"]["enum"] == ["watch_tv", "reading"]


async def test_unknown_labels_in_a_reply_are_ignored(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = Reply(
        content=json.dumps(
            {"gestures": ["thumbs_up", "middle_finger"], "activities": ["cooking"], "person_present": "yes"}
        )
    )
    events = capture_events(hass)
    await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    await wait_for(lambda: len(model_server.chat_requests) >= 2)
    assert [event.get("gesture") for event in events if event["type"] == "gesture"] == ["thumbs_up"]


async def test_a_slow_backend_is_never_queued(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    model_server.default_reply = Reply(content=answer().content, delay_s=1.0)
    cameras = [SceneCamera(f"Cam {index}", waving_hand()) for index in range(3)]
    entry = await watch(hass, model_server, *cameras)
    await wait_for(lambda: len(model_server.chat_requests) >= 5, within=20)
    runtime = entry.runtime_data
    # The backend allows two at once; the third camera is skipped, never queued.
    assert model_server.in_flight_max <= 2
    assert sum(watcher.stats.skipped_busy for watcher in runtime.watchers.values()) > 0
    # Every camera got its turn.
    assert all(watcher.stats.checks >= 1 for watcher in runtime.watchers.values())
    # Memory stays bounded: each window holds at most its capacity.
    for watcher in runtime.watchers.values():
        held, capacity = watcher.buffered_frames
        assert held <= capacity


async def test_the_event_loop_is_never_blocked(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    model_server.default_reply = answer(("thumbs_up",), ("reading",))
    await watch(hass, model_server, *(SceneCamera(f"Cam {index}", waving_hand()) for index in range(4)))
    worst = 0.0
    until = time.monotonic() + 3
    while time.monotonic() < until:
        before = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - before - 0.01)
    assert len(model_server.chat_requests) >= 4
    # Decoding and resizing run in executors; the loop only schedules (and encodes a small window, parses a
    # short reply: well under a millisecond each).
    assert worst < 0.15, f"event loop blocked for {worst * 1000:.0f} ms"


async def test_backend_failure_and_recovery(
    hass: HomeAssistant,
    model_server: FakeModelServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(health, "BACKEND_ISSUE_AFTER_S", 1.0)
    caplog.set_level(logging.INFO, logger="custom_components.miloco")
    model_server.default_reply = answer()
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_ON)

    model_server.default_reply = error(500, "CUDA out of memory")
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_UNAVAILABLE)
    issue_id = f"backend_failing_{entry.entry_id}"
    await wait_for(lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None)
    assert hass.states.get("event.living_room_gesture").state == STATE_UNAVAILABLE

    model_server.default_reply = answer()
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_ON)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    lost = [record for record in caplog.records if "cannot analyse" in record.getMessage()]
    back = [record for record in caplog.records if "analyses camera.living_room again" in record.getMessage()]
    # One line when lost, one when back: not one per failed check.
    assert len(lost) == 1
    assert len(back) == 1


async def test_a_failing_camera_affects_only_its_own_entities(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = answer()
    broken = SceneCamera("Porch", waving_hand())
    await watch(hass, model_server, SceneCamera("Living room", waving_hand()), broken)
    await wait_for(lambda: hass.states.get("binary_sensor.porch_person").state == STATE_ON)
    broken.failing = True
    await wait_for(lambda: hass.states.get("binary_sensor.porch_person").state == STATE_UNAVAILABLE)
    assert hass.states.get("binary_sensor.living_room_person").state == STATE_ON
    broken.failing = False
    await wait_for(lambda: hass.states.get("binary_sensor.porch_person").state == STATE_ON)


async def test_a_camera_that_disappears(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    model_server.default_reply = answer()
    await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_ON)
    # The user deletes the camera: only its watcher's entities go unavailable.
    er.async_get(hass).async_remove("camera.living_room")
    await hass.async_block_till_done()
    assert hass.states.get("camera.living_room") is None
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_UNAVAILABLE)


async def test_unload_stops_every_task_and_request(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = Reply(content=answer().content, delay_s=5)
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    await wait_for(lambda: len(model_server.chat_requests) >= 1)
    watcher = next(iter(entry.runtime_data.watchers.values()))
    assert await hass.config_entries.async_unload(entry.entry_id)
    served = len(model_server.chat_requests)
    await asyncio.sleep(1)
    assert len(model_server.chat_requests) == served
    assert not watcher.running


async def test_diagnostics_show_each_camera(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, model_server: FakeModelServer
) -> None:
    assert await async_setup_component(hass, "diagnostics", {})
    model_server.default_reply = answer(("wave",))
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    await wait_for(lambda: len(model_server.chat_requests) >= 2)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    (camera,) = diagnostics["cameras"].values()
    assert camera["config"]["camera_entity_id"] == "camera.living_room"
    assert camera["stats"]["checks"] >= 1
    assert camera["available"] is True
    assert diagnostics["limiter"]["limit"] == 2
    # Frames are counted, never dumped.
    assert "base64" not in json.dumps(diagnostics, default=str)
