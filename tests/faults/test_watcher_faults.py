"""The camera watcher under real faults: odd frames, malformed replies, 401/429/500, a still room."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.const import DOMAIN, SUBENTRY_RULE
from custom_components.miloco.watcher import CameraWatcher

from ..helpers import remote_entry
from ..model_server import FakeModelServer, Reply, error
from ..perception_helpers import answer, camera_subentry, capture_events, wait_for, watch
from ..scenes import Freezable, SceneCamera, async_add_cameras, waving_hand
from .cameras import extreme_aspect

UNCAUGHT = ("Task exception was never retrieved", "Error doing job", "Exception in callback")


def only_watcher(entry: MockConfigEntry) -> CameraWatcher:
    """Return the entry's single camera watcher."""
    (watcher,) = entry.runtime_data.watchers.values()
    return watcher


def assert_nothing_uncaught(caplog: pytest.LogCaptureFixture) -> None:
    """Fail on any error that escaped to asyncio or Home Assistant's job runner."""
    escaped = [
        record.getMessage() for record in caplog.records if any(m in record.getMessage() for m in UNCAUGHT)
    ]
    assert not escaped, escaped


async def test_a_frame_of_extreme_aspect_is_accounted_for(
    hass: HomeAssistant, model_server: FakeModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    model_server.default_reply = answer()
    entry = await watch(hass, model_server, SceneCamera("Strip", extreme_aspect()))
    watcher = only_watcher(entry)
    # Each due check either answers or counts as a failure; none vanishes into an unretrieved task.
    await wait_for(lambda: watcher.stats.checks + watcher.stats.failures >= 3)
    if watcher.stats.failures:
        await wait_for(lambda: hass.states.get("binary_sensor.strip_person").state == STATE_UNAVAILABLE)
    assert_nothing_uncaught(caplog)


async def test_malformed_content_parts_make_the_camera_unavailable(
    hass: HomeAssistant, model_server: FakeModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    model_server.default_reply = answer()
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_ON)
    body = {
        "id": "chatcmpl-odd",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": [{"type": "text", "text": 7}]}}],
    }
    model_server.default_reply = Reply(
        raw_body=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_UNAVAILABLE)
    assert only_watcher(entry).stats.failures >= 3
    assert_nothing_uncaught(caplog)
    # And it recovers once the server answers properly again.
    model_server.default_reply = answer()
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_ON, within=30)


async def test_retry_after_is_honoured(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    model_server.default_reply = answer()
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    watcher = only_watcher(entry)
    await wait_for(lambda: watcher.stats.checks >= 1)
    model_server.default_reply = error(429, "slow down", **{"Retry-After": "30"})
    await wait_for(lambda: watcher.stats.failures >= 1)
    asked = len(model_server.chat_requests)
    # The scene moves on every frame, so without the server's wait a check would go out every 0.5 s.
    assert watcher.next_check_in > 25
    await asyncio.sleep(2)
    assert len(model_server.chat_requests) == asked


async def test_server_errors_back_off_exponentially(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = answer()
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    watcher = only_watcher(entry)
    await wait_for(lambda: watcher.stats.checks >= 1)
    waits: list[float] = []

    def note_wait() -> None:
        if watcher.stats.failures > len(waits):
            waits.append(watcher.next_check_in)

    watcher.events.add_listener(note_wait)
    model_server.default_reply = error(500, "CUDA out of memory")
    await wait_for(lambda: len(waits) >= 3, within=30)
    # 0.5 s, 1 s, 2 s, ...: each failure waits about twice as long as the one before.
    assert waits[1] > waits[0] * 1.5
    assert waits[2] > waits[1] * 1.5
    model_server.default_reply = answer()
    failures = watcher.stats.failures
    await wait_for(lambda: watcher.stats.checks >= 2, within=30)
    assert watcher.stats.failures <= failures + 1
    # Success resets the back-off: the next check is due within the normal interval.
    assert watcher.next_check_in <= 0.5


async def test_a_key_revoked_while_running_starts_reauth_and_stops_the_checks(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = answer()
    model_server.api_key = "first-key"
    camera = SceneCamera("Living room", waving_hand())
    await async_add_cameras(hass, camera)
    entry = remote_entry(model_server, api_key="first-key", subentries=[camera_subentry(camera)])
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_ON)

    model_server.api_key = "second-key"
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_UNAVAILABLE)
    await hass.async_block_till_done()
    flows = [flow for flow in hass.config_entries.flow.async_progress() if flow["handler"] == DOMAIN]
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    refused = len(model_server.chat_requests)
    await asyncio.sleep(2)
    # No hammering with a key that will not start working by itself, and no second flow.
    assert len(model_server.chat_requests) == refused
    assert len([f for f in hass.config_entries.flow.async_progress() if f["handler"] == DOMAIN]) == 1

    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {"api_key": "second-key"})
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_ON)


WAVE_RULE: dict[str, Any] = {
    "name": "Wave for light",
    "preset": "custom",
    "condition": "someone is waving at the camera",
    "cameras": ["camera.living_room"],
    "mode": "event",
    "timing": {"cooldown": 2, "on_checks": 2, "off_delay": 10},
    "enabled": True,
}


def rule_reply(waving: dict[str, bool]) -> Any:
    """Answer every rule asked about (and the wave gesture) as `waving["now"]` says."""

    def respond(body: dict[str, Any]) -> Reply:
        schema = body["response_format"]["json_schema"]["schema"]
        aliases = list(schema["properties"].get("rules", {}).get("properties", {}))
        gestures = ("wave",) if waving["now"] else ()
        return answer(gestures, rules={alias: waving["now"] for alias in aliases})

    return respond


async def still_room(server: FakeModelServer, scene: Freezable) -> None:
    """Freeze the scene, let the check of its change run, then sit still without a model call."""
    scene.frozen = True
    await asyncio.sleep(1.5)
    asked = len(server.chat_requests)
    # Several windows (0.3 s each) of a still room: no change, no model call.
    await asyncio.sleep(1.5)
    assert len(server.chat_requests) == asked


async def test_a_second_wave_after_a_still_room_fires_the_rule_again(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    # The model keeps saying "waving": the last window before the room went still held the end of the wave.
    waving = {"now": True}
    model_server.responder = rule_reply(waving)
    scene = Freezable(waving_hand())
    entry = await watch(hass, model_server, SceneCamera("Living room", scene))
    events = capture_events(hass)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_RULE), context={"source": "user"}
    )
    await hass.config_entries.subentries.async_configure(result["flow_id"], WAVE_RULE)
    await hass.async_block_till_done()
    fired = lambda: [event for event in events if event["type"] == "rule_triggered"]  # noqa: E731
    await wait_for(lambda: len(fired()) == 1)
    first = time.monotonic()
    await still_room(model_server, scene)
    # Past the 2 s cooldown, someone waves again.
    await asyncio.sleep(max(0.0, 2.2 - (time.monotonic() - first)))
    scene.frozen = False
    await wait_for(lambda: len(fired()) == 2, within=5)
    assert hass.states.get("event.wave_for_light_triggered").state != STATE_UNAVAILABLE


async def test_a_second_wave_after_a_still_room_fires_the_gesture_again(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = answer(("wave",), activities=("reading",))
    scene = Freezable(waving_hand())
    events = capture_events(hass)
    await watch(hass, model_server, SceneCamera("Living room", scene))
    gestures = lambda: [event for event in events if event["type"] == "gesture"]  # noqa: E731
    await wait_for(lambda: len(gestures()) == 1)
    await still_room(model_server, scene)
    # States keep their verdict in a still room (the 1 s hold time is long past).
    assert hass.states.get("binary_sensor.living_room_reading").state == STATE_ON
    assert len(gestures()) == 1
    scene.frozen = False
    await wait_for(lambda: len(gestures()) == 2, within=5)
    assert hass.states.get("event.living_room_gesture").attributes["event_type"] == "wave"


async def test_a_state_rule_forgets_the_yes_of_a_camera_that_stopped_checking(
    hass: HomeAssistant, model_server: FakeModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    holds = {"now": True}
    model_server.responder = rule_reply(holds)
    porch = SceneCamera("Porch", waving_hand())
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()), porch)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_RULE), context={"source": "user"}
    )
    rule = {
        **WAVE_RULE,
        "cameras": ["camera.living_room", "camera.porch"],
        "mode": "state",
        "timing": {"cooldown": 2, "on_checks": 1, "off_delay": 1},
    }
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], rule)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    sensor = "binary_sensor.wave_for_light_condition"
    await wait_for(lambda: hass.states.get(sensor).state == STATE_ON)
    # The porch camera said yes, then stops giving images; the living room goes on checking and says no.
    await wait_for(lambda: all(watcher.stats.checks >= 2 for watcher in entry.runtime_data.watchers.values()))
    porch.failing = True
    await wait_for(lambda: hass.states.get("binary_sensor.porch_person").state == STATE_UNAVAILABLE)
    holds["now"] = False
    await wait_for(lambda: hass.states.get(sensor).state == STATE_OFF, within=5)
