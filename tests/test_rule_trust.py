"""Rules through edits (issue 18): an answer to a question asked before an edit, Enabled in the form, and
the running action of a rule that was removed, edited or turned off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import timedelta
import json
from typing import Any

from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.miloco.const import SUBENTRY_RULE

from .gated_model_server import GatedModelServer
from .lights import SwitchableLight, async_add_lights
from .model_server import Reply
from .perception_helpers import answer, capture_events, wait_for, watch
from .scenes import SceneCamera, static_room, waving_hand
from .test_rules import WAVE, Waving, add_rule, rule_form, rule_id

LIVING_ROOM, HALL = "camera.living_room", "camera.hall"
CONDITION = "binary_sensor.wave_for_light_condition"
SWITCH = "switch.wave_for_light_enabled"
LIGHT = "light.living_room"


@pytest.fixture
async def gated_server(socket_enabled: None) -> AsyncGenerator[GatedModelServer]:
    """Run a model server whose requests the test can hold."""
    server = GatedModelServer()
    await server.start()
    yield server
    server.open_gate()
    await server.stop()


@pytest.fixture
async def rooms(hass: HomeAssistant, gated_server: GatedModelServer) -> tuple[MockConfigEntry, Waving]:
    """Return a backend watching a living room and a hall (both with someone moving), a light, the model."""
    model = Waving()
    gated_server.responder = model
    await async_add_lights(hass, SwitchableLight("Living room"))
    entry = await watch(
        hass,
        gated_server,
        SceneCamera("Living room", waving_hand()),
        SceneCamera("Hall", waving_hand()),
        gestures=[],
        activities=[],
    )
    return entry, model


def asked_rules(body: dict[str, Any]) -> list[str]:
    """Return the rule aliases a check request asks about."""
    schema = body["response_format"]["json_schema"]["schema"] if "response_format" in body else {}
    return list(schema.get("properties", {}).get("rules", {}).get("properties", {}))


def triggers(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the rule_triggered events."""
    return [event for event in events if event["type"] == "rule_triggered"]


async def reconfigure_rule(hass: HomeAssistant, entry: MockConfigEntry, form: dict[str, Any]) -> None:
    """Save the rule's form again, as the UI does."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_RULE), context={"source": "reconfigure", "subentry_id": rule_id(entry)}
    )
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()


async def hold_a_check_of_the_rule(server: GatedModelServer) -> list[dict[str, Any]]:
    """Hold the checks from now on; return the held ones once one of them asks about the rule."""
    server.close_gate()
    await wait_for(lambda: any(asked_rules(body) for body in server.held))
    return list(server.held)


def yes_to_the_held(held: list[dict[str, Any]], model: Waving) -> Any:
    """Return a responder that says yes to every rule in the held requests, and asks `model` for later ones."""

    def respond(body: dict[str, Any]) -> Reply:
        if any(body is old for old in held):
            return answer(rules=dict.fromkeys(asked_rules(body), True), reason="a hand moves (old question)")
        return model(body)

    return respond


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param({"cameras": [HALL]}, id="moved-to-another-camera"),
        pytest.param({"condition": "someone is clapping their hands"}, id="condition-changed"),
    ],
)
async def test_a_yes_to_the_question_before_an_edit_fires_nothing(
    hass: HomeAssistant,
    rooms: tuple[MockConfigEntry, Waving],
    gated_server: GatedModelServer,
    edit: dict[str, Any],
) -> None:
    entry, model = rooms
    events = capture_events(hass)
    await add_rule(hass, entry, rule_form())
    await wait_for(lambda: ["r1"] in model.asked_about_rules)
    held = await hold_a_check_of_the_rule(gated_server)
    await reconfigure_rule(hass, entry, rule_form(**edit))
    answered = len(gated_server.chat_requests)
    # The check of the living room asked the old question; its answer comes after the edit: "yes".
    gated_server.open_gate(yes_to_the_held(held, model))
    await wait_for(lambda: len(gated_server.chat_requests) >= answered + len(held) + 4)
    assert triggers(events) == []
    assert hass.states.get(LIGHT).state == STATE_OFF
    assert hass.states.get(CONDITION).state == STATE_OFF

    # The rule as edited works: a wave where it looks now fires it.
    model.waving = True
    await wait_for(lambda: hass.states.get(LIGHT).state == STATE_ON)
    assert len(triggers(events)) == 1
    assert triggers(events)[0]["camera_entity_id"] == (HALL if "cameras" in edit else LIVING_ROOM)


@pytest.fixture
async def living_room(hass: HomeAssistant, gated_server: GatedModelServer) -> tuple[MockConfigEntry, Waving]:
    """Return a backend watching the living room only, a light, and the scripted model."""
    model = Waving()
    gated_server.responder = model
    await async_add_lights(hass, SwitchableLight("Living room"))
    entry = await watch(hass, gated_server, SceneCamera("Living room", waving_hand()))
    return entry, model


async def test_the_enabled_box_of_the_form_works_like_the_switch(
    hass: HomeAssistant, living_room: tuple[MockConfigEntry, Waving], gated_server: GatedModelServer
) -> None:
    entry, model = living_room
    await add_rule(hass, entry, rule_form())
    runner = entry.runtime_data.rules[rule_id(entry)]
    await wait_for(lambda: ["r1"] in model.asked_about_rules)

    await reconfigure_rule(hass, entry, rule_form(enabled=False))
    assert hass.states.get(SWITCH).state == STATE_OFF
    # Applied live: the same rule, turned off, not rebuilt.
    assert entry.runtime_data.rules[rule_id(entry)] is runner
    model.waving = True
    asked = len(gated_server.chat_requests)
    await wait_for(lambda: len(gated_server.chat_requests) >= asked + 4)
    # At most one check was already on its way with the rule; none after it asks about it.
    later = gated_server.chat_requests[asked + 1 :]
    assert all(WAVE not in json.dumps(body) and asked_rules(body) == [] for body in later)
    assert hass.states.get(LIGHT).state == STATE_OFF
    assert hass.states.get(CONDITION).state == STATE_OFF

    await reconfigure_rule(hass, entry, rule_form(enabled=True))
    assert hass.states.get(SWITCH).state == STATE_ON
    assert entry.runtime_data.rules[rule_id(entry)] is runner
    await wait_for(lambda: hass.states.get(LIGHT).state == STATE_ON)


async def _enable_in_the_form(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await reconfigure_rule(hass, entry, rule_form())


async def _turn_on(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await hass.services.async_call("switch", "turn_on", {"entity_id": SWITCH}, blocking=True)


@pytest.mark.parametrize(
    "enable", [pytest.param(_enable_in_the_form, id="form"), pytest.param(_turn_on, id="switch")]
)
async def test_a_rule_turned_on_is_asked_at_once_about_a_still_room(
    hass: HomeAssistant, gated_server: GatedModelServer, enable: Any
) -> None:
    model = Waving()
    gated_server.responder = model
    await async_add_lights(hass, SwitchableLight("Living room"))
    entry = await watch(hass, gated_server, SceneCamera("Living room", static_room()))
    await add_rule(hass, entry, rule_form(enabled=False))
    # The room is still and there is no heartbeat: once the first checks are done, nothing asks again.
    await wait_for(lambda: len(gated_server.chat_requests) >= 1)
    await asyncio.sleep(1.5)
    asked = len(model.asked_about_rules)
    await asyncio.sleep(1.0)
    assert len(model.asked_about_rules) == asked
    await enable(hass, entry)
    assert hass.states.get(SWITCH).state == STATE_ON
    await wait_for(lambda: ["r1"] in model.asked_about_rules[asked:], within=3)


async def _remove(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    assert hass.config_entries.async_remove_subentry(entry, rule_id(entry))


async def _edit(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await reconfigure_rule(hass, entry, rule_form(condition="someone is clapping their hands", action=SLOW))


async def _turn_off(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await hass.services.async_call("switch", "turn_off", {"entity_id": SWITCH}, blocking=True)


async def _keep(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Change nothing: shows that the action would have run on."""


# Ten minutes of waiting, then a light that must never turn on once the rule is gone, edited or off.
SLOW = [{"delay": "00:10:00"}, {"action": "light.turn_on", "target": {"entity_id": LIGHT}}]


@pytest.mark.parametrize(
    ("change", "light_after"),
    [
        pytest.param(_remove, STATE_OFF, id="removed"),
        pytest.param(_edit, STATE_OFF, id="edited"),
        pytest.param(_turn_off, STATE_OFF, id="turned-off"),
        pytest.param(_keep, STATE_ON, id="kept"),
    ],
)
async def test_the_running_action_of_a_changed_rule_is_stopped(
    hass: HomeAssistant,
    living_room: tuple[MockConfigEntry, Waving],
    change: Any,
    light_after: str,
) -> None:
    entry, model = living_room
    events = capture_events(hass)
    await add_rule(hass, entry, rule_form(action=SLOW))
    model.waving = True
    await wait_for(lambda: len(triggers(events)) == 1)
    # Nobody waves any more: an edited rule has nothing to fire on.
    model.waving = False
    await asyncio.sleep(0.2)
    await change(hass, entry)
    await hass.async_block_till_done()
    # Ten minutes later, the delay of an action still running would be over.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=11))
    await hass.async_block_till_done()
    await asyncio.sleep(0.2)
    assert hass.states.get(LIGHT).state == light_after
