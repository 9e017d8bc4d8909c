"""The logbook words Miloco's bus events, read back through the real logbook and recorder."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.components.recorder.common import async_wait_recording_done
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.miloco.const import EVENT_MILOCO

from .model_server import FakeModelServer
from .perception_helpers import answer, capture_events, wait_for, watch
from .scenes import SceneCamera, waving_hand
from .test_rules import Waving, add_rule, rule_form


async def _logbook(hass: HomeAssistant, client: WebSocketGenerator, since: str) -> list[dict[str, Any]]:
    """Return the logbook's entries since `since`, as the frontend reads them."""
    await async_wait_recording_done(hass)
    ws = await client()
    await ws.send_json({"id": 1, "type": "logbook/get_events", "start_time": since})
    reply = await ws.receive_json()
    assert reply["success"], reply
    entries: list[dict[str, Any]] = reply["result"]
    return [entry for entry in entries if entry.get("domain") == "miloco"]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_mock: Any, enable_custom_integrations: None) -> None:
    """Start the recorder before Home Assistant (the harness insists), then allow custom integrations."""


@pytest.fixture
async def logbook(hass: HomeAssistant) -> None:
    """Run the real recorder and logbook."""
    assert await async_setup_component(hass, "logbook", {})
    await hass.async_block_till_done()


async def test_a_rule_trigger_reads_as_a_sentence(
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
    await hass.config_entries.async_unload(entry.entry_id)

    entries = await _logbook(hass, hass_ws_client, since)
    triggered = [entry for entry in entries if entry["name"] == "Wave for light"]
    assert len(triggered) == 1
    assert triggered[0]["message"] == "triggered on Living room: a hand moves left and right"
    assert triggered[0]["entity_id"] == "camera.living_room"


async def test_a_gesture_reads_with_the_camera_and_the_gesture_name(
    logbook: None, hass: HomeAssistant, hass_ws_client: WebSocketGenerator, model_server: FakeModelServer
) -> None:
    since = dt_util.utcnow().isoformat()
    model_server.script(answer(("wave",)))
    model_server.default_reply = answer()
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    events = capture_events(hass)
    await wait_for(lambda: any(event["type"] == "gesture" for event in events))
    await hass.config_entries.async_unload(entry.entry_id)

    entries = await _logbook(hass, hass_ws_client, since)
    assert {"name": "Living room", "message": "saw a Wave gesture"}.items() <= next(
        entry for entry in entries if "gesture" in entry["message"]
    ).items()


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        ({"type": "activity_started", "activity": "reading"}, "Hall cam", "sees Reading"),
        ({"type": "activity_ended", "activity": "watch_tv"}, "Hall cam", "no longer sees Watch TV"),
        ({"type": "presence_started"}, "Hall cam", "sees someone"),
        ({"type": "presence_ended"}, "Hall cam", "no longer sees anyone"),
        ({"type": "rule_triggered", "rule": "Door", "reason": None}, "Door", "triggered on Hall cam"),
        # A type a newer release adds still gets a readable line rather than none.
        ({"type": "something_new"}, "Hall cam", "reported something new"),
    ],
)
async def test_every_event_type_reads_well(
    logbook: None,
    *,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    data: dict[str, Any],
    name: str,
    message: str,
) -> None:
    since = dt_util.utcnow().isoformat()
    hass.states.async_set("camera.hall", "idle", {"friendly_name": "Hall cam"})
    # The logbook reads Miloco's logbook platform once the integration is loaded (no entry needed).
    assert await async_setup_component(hass, "miloco", {})
    await hass.async_block_till_done()
    hass.bus.async_fire(EVENT_MILOCO, {"device_id": None, "camera_entity_id": "camera.hall", **data})
    await hass.async_block_till_done()
    entries = await _logbook(hass, hass_ws_client, since)
    assert [(entry["name"], entry["message"]) for entry in entries] == [(name, message)]
