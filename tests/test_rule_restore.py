"""Rules keep their state across a reload and a restart (issue 18, case 4): no second action, no lost cooldown."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import time
from typing import Any

from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant, State
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    mock_restore_cache,
    mock_restore_cache_with_extra_data,
)

from custom_components.miloco.const import SUBENTRY_RULE

from .helpers import remote_entry
from .lights import SwitchableLight, async_add_lights
from .model_server import FakeModelServer
from .perception_helpers import camera_subentry, capture_events, wait_for
from .scenes import SceneCamera, async_add_cameras, waving_hand
from .test_rules import WAVE, Waving, add_rule, rule_form

CONDITION = "binary_sensor.wave_for_light_condition"
TRIGGERED = "event.wave_for_light_triggered"
LIGHT = "light.living_room"
STATE_RULE: dict[str, Any] = {"mode": "state", "timing": {"cooldown": 10, "on_checks": 2, "off_delay": 1}}


class Room:
    """The living room: its camera, its light (counting how often it was turned on), the scripted model."""

    def __init__(self, server: FakeModelServer) -> None:
        """Script the server with a model nobody waves at yet."""
        self.camera = SceneCamera("Living room", waving_hand())
        self.light = SwitchableLight("Living room")
        self.model = Waving()
        server.responder = self.model

    async def async_add(self, hass: HomeAssistant) -> None:
        """Register the camera and the light."""
        await async_add_lights(hass, self.light)
        await async_add_cameras(hass, self.camera)

    def yes_checks_since(self, asked: int) -> int:
        """Return how many checks asked about the rule since `asked` of them had been."""
        return sum(1 for aliases in self.model.asked_about_rules[asked:] if aliases)


@pytest.fixture
async def room(hass: HomeAssistant, model_server: FakeModelServer) -> Room:
    """Return the living room, registered."""
    room = Room(model_server)
    await room.async_add(hass)
    return room


async def watched(
    hass: HomeAssistant, server: FakeModelServer, *subentries: dict[str, Any]
) -> MockConfigEntry:
    """Set up a backend entry watching the living room, with more subentries."""
    entry = remote_entry(
        server, subentries=[camera_subentry(SceneCamera("Living room", waving_hand())), *subentries]
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def stored_rule(**overrides: Any) -> dict[str, Any]:
    """Return the rule subentry the walkthrough's form stores (a state rule unless overridden)."""
    return {
        "subentry_type": SUBENTRY_RULE,
        "title": "Wave for light",
        "unique_id": None,
        "data": {
            "name": "Wave for light",
            "preset": "custom",
            "condition": WAVE,
            "cameras": ["camera.living_room"],
            "mode": "state",
            "cooldown": 10,
            "on_checks": 2,
            "off_delay": 1,
            "action": [{"action": "light.turn_on", "target": {"entity_id": LIGHT}}],
            "enabled": True,
            **overrides,
        },
    }


async def test_a_state_rule_on_before_a_reload_is_on_at_once_and_does_not_act_again(
    hass: HomeAssistant, room: Room, model_server: FakeModelServer
) -> None:
    entry = await watched(hass, model_server)
    await add_rule(hass, entry, rule_form(**STATE_RULE))
    room.model.waving = True
    await wait_for(lambda: hass.states.get(CONDITION).state == STATE_ON and room.light.turned_on == 1)

    assert await hass.config_entries.async_reload(entry.entry_id)
    assert hass.states.get(CONDITION).state == STATE_ON
    asked = len(room.model.asked_about_rules)
    await wait_for(lambda: room.yes_checks_since(asked) >= 4)
    assert hass.states.get(CONDITION).state == STATE_ON
    assert room.light.turned_on == 1

    # Off in between, then on again: that is news, and the action runs.
    room.model.waving = False
    await wait_for(lambda: hass.states.get(CONDITION).state == STATE_OFF)
    room.model.waving = True
    await wait_for(lambda: room.light.turned_on == 2)


async def test_a_state_rule_on_before_a_restart_is_on_at_once_and_does_not_act_again(
    hass: HomeAssistant, room: Room, model_server: FakeModelServer
) -> None:
    mock_restore_cache(hass, [State(CONDITION, STATE_ON)])
    room.model.waving = True
    await watched(hass, model_server, stored_rule())
    assert hass.states.get(CONDITION).state == STATE_ON
    await wait_for(lambda: room.yes_checks_since(0) >= 4)
    assert hass.states.get(CONDITION).state == STATE_ON
    assert room.light.turned_on == 0


async def test_a_rule_edited_starts_clean_instead_of_restoring(
    hass: HomeAssistant, room: Room, model_server: FakeModelServer
) -> None:
    entry = await watched(hass, model_server)
    await add_rule(hass, entry, rule_form(**STATE_RULE))
    room.model.waving = True
    await wait_for(lambda: room.light.turned_on == 1)
    room.model.waving = False
    # A new question: its first "yes" turns the rule on and acts, whatever the old one said.
    await add_rule_edit(hass, entry, rule_form(condition="someone raises a hand", **STATE_RULE))
    assert hass.states.get(CONDITION).state == STATE_OFF
    room.model.waving = True
    await wait_for(lambda: room.light.turned_on == 2)


async def add_rule_edit(hass: HomeAssistant, entry: MockConfigEntry, form: dict[str, Any]) -> None:
    """Save the rule's form again."""
    rule = next(sid for sid, sub in entry.subentries.items() if sub.subentry_type == SUBENTRY_RULE)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_RULE), context={"source": "reconfigure", "subentry_id": rule}
    )
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()


async def test_an_event_rule_keeps_its_cooldown_across_a_reload(
    hass: HomeAssistant, room: Room, model_server: FakeModelServer
) -> None:
    entry = await watched(hass, model_server)
    events = capture_events(hass)
    await add_rule(hass, entry, rule_form(timing={"cooldown": 10, "on_checks": 2, "off_delay": 10}))
    triggers = lambda: [event for event in events if event["type"] == "rule_triggered"]  # noqa: E731
    room.model.waving = True
    await wait_for(lambda: len(triggers()) == 1)
    fired_at = time.monotonic()
    room.model.waving = False
    await wait_for(lambda: hass.states.get(CONDITION).state == STATE_OFF)

    assert await hass.config_entries.async_reload(entry.entry_id)
    room.model.waving = True
    await wait_for(lambda: hass.states.get(CONDITION).state == STATE_ON)
    await asyncio.sleep(0.5)
    # A new edge inside the cooldown of the trigger before the reload: swallowed.
    assert time.monotonic() - fired_at < 10
    assert len(triggers()) == 1
    assert room.light.turned_on == 1


async def test_an_event_rule_keeps_its_cooldown_across_a_restart(
    hass: HomeAssistant, room: Room, model_server: FakeModelServer
) -> None:
    two_seconds_ago = dt_util.utcnow() - timedelta(seconds=2)
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(TRIGGERED, two_seconds_ago.isoformat(timespec="milliseconds")),
                {"last_event_type": "triggered", "last_event_attributes": {"reason": "a hand moves"}},
            )
        ],
    )
    events = capture_events(hass)
    room.model.waving = True
    await watched(hass, model_server, stored_rule(mode="event", cooldown=10))
    assert hass.states.get(TRIGGERED).state == two_seconds_ago.isoformat(timespec="milliseconds")
    await wait_for(lambda: hass.states.get(CONDITION).state == STATE_ON)
    await asyncio.sleep(0.5)
    assert [event for event in events if event["type"] == "rule_triggered"] == []
    assert room.light.turned_on == 0
