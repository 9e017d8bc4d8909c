"""The logbook shows each detection once, as its entity's own line, read back through the real logbook and recorder.

Each gesture, activity, presence change and rule trigger has an entity whose state change the logbook lists
anyway; the miloco_event bus event beside it (for automations) is not described, or every detection would show
twice.
"""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.components.recorder.common import async_wait_recording_done
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.miloco.const import DOMAIN, EVENT_MILOCO

from .model_server import FakeModelServer
from .perception_helpers import answer, capture_events, wait_for, watch
from .scenes import SceneCamera, waving_hand
from .test_rules import Waving, add_rule, rule_form

GESTURE = "event.living_room_gesture"
READING = "binary_sensor.living_room_reading"
PERSON = "binary_sensor.living_room_person"
TRIGGERED = "event.wave_for_light_triggered"


async def _logbook(hass: HomeAssistant, client: WebSocketGenerator, since: str) -> list[dict[str, Any]]:
    """Return every logbook entry since `since`, as the frontend reads them."""
    await async_wait_recording_done(hass)
    ws = await client()
    await ws.send_json({"id": 1, "type": "logbook/get_events", "start_time": since})
    reply = await ws.receive_json()
    assert reply["success"], reply
    entries: list[dict[str, Any]] = reply["result"]
    return entries


def lines_of(entries: list[dict[str, Any]], entity_id: str, state: str | None = None) -> list[dict[str, Any]]:
    """Return the entity's detection lines (not its going away at unload), or those that changed to `state`."""
    return [
        entry
        for entry in entries
        if entry.get("entity_id") == entity_id
        and entry.get("state") != "unavailable"
        and (state is None or entry.get("state") == state)
    ]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_mock: Any, enable_custom_integrations: None) -> None:
    """Start the recorder before Home Assistant (the harness insists), then allow custom integrations."""


@pytest.fixture
async def logbook(hass: HomeAssistant) -> None:
    """Run the real recorder and logbook."""
    assert await async_setup_component(hass, "logbook", {})
    await hass.async_block_till_done()


async def test_a_gesture_and_an_activity_show_once(
    logbook: None, hass: HomeAssistant, hass_ws_client: WebSocketGenerator, model_server: FakeModelServer
) -> None:
    since = dt_util.utcnow().isoformat()
    model_server.script(answer(("wave",), ("reading",)))
    model_server.default_reply = answer((), ("reading",))
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    events = capture_events(hass)
    await wait_for(lambda: {"gesture", "activity_started"} <= {event["type"] for event in events})
    # The frontend names each line by its entity: the camera's, then what it saw.
    assert hass.states.get(GESTURE).name == "Living room Gesture"
    assert hass.states.get(GESTURE).attributes["event_type"] == "wave"
    await hass.config_entries.async_unload(entry.entry_id)

    entries = await _logbook(hass, hass_ws_client, since)
    # Automations still get the bus events; the logbook shows none of them beside the entities' lines.
    assert not [entry for entry in entries if entry.get("domain") == DOMAIN]
    assert len(lines_of(entries, GESTURE)) == 1
    assert len(lines_of(entries, READING, "on")) == 1
    assert len(lines_of(entries, PERSON, "on")) == 1


async def test_a_rule_trigger_shows_once_as_the_rules_line(
    logbook: None, hass: HomeAssistant, hass_ws_client: WebSocketGenerator, model_server: FakeModelServer
) -> None:
    since = dt_util.utcnow().isoformat()
    model = Waving()
    model_server.responder = model
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    events = capture_events(hass)
    await add_rule(hass, entry, rule_form(action=[]))
    model.waving = True
    await wait_for(lambda: any(event["type"] == "rule_triggered" for event in events))
    # The rule's line leads to the trigger's details: the camera and the model's reason are on its event.
    triggered = hass.states.get(TRIGGERED)
    assert triggered.attributes["camera_entity_id"] == "camera.living_room"
    assert triggered.attributes["reason"] == "a hand moves left and right"
    # Named by the rule, as the user named it.
    assert triggered.name == "Wave for light Triggered"
    await hass.config_entries.async_unload(entry.entry_id)

    entries = await _logbook(hass, hass_ws_client, since)
    assert not [entry for entry in entries if entry.get("domain") == DOMAIN]
    assert len(lines_of(entries, TRIGGERED)) == 1


@pytest.mark.parametrize(
    "data",
    [
        {"type": "gesture", "gesture": "wave"},
        {"type": "activity_started", "activity": "reading"},
        {"type": "presence_ended"},
        {"type": "rule_triggered", "rule": "Door", "reason": None},
    ],
)
async def test_the_bus_event_alone_adds_no_line(
    logbook: None, *, hass: HomeAssistant, hass_ws_client: WebSocketGenerator, data: dict[str, Any]
) -> None:
    since = dt_util.utcnow().isoformat()
    hass.states.async_set("camera.hall", "idle", {"friendly_name": "Hall cam"})
    await hass.async_block_till_done()
    # Loaded (no entry needed): had it a logbook platform describing miloco_event, the line would show here.
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()
    hass.bus.async_fire(EVENT_MILOCO, {"device_id": None, "camera_entity_id": "camera.hall", **data})
    await hass.async_block_till_done()
    assert await _logbook(hass, hass_ws_client, since) == []
