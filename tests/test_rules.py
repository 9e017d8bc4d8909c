"""Rules end to end: "wave to turn on the lights" through the subentry flow, real entities and a real light."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.const import SUBENTRY_CAMERA, SUBENTRY_RULE

from .helpers import find_device
from .lights import SwitchableLight, async_add_lights
from .model_server import FakeModelServer, Reply
from .perception_helpers import answer, capture_events, wait_for, watch
from .scenes import SceneCamera, waving_hand

WAVE = "someone is waving at the camera"
TURN_ON_LIGHT = [{"action": "light.turn_on", "target": {"entity_id": "light.living_room"}}]


def rule_form(**overrides: Any) -> dict[str, Any]:
    """Return the filled-in rule form of the walkthrough."""
    form: dict[str, Any] = {
        "name": "Wave for light",
        "preset": "custom",
        "condition": WAVE,
        "cameras": ["camera.living_room"],
        "mode": "event",
        "timing": {"cooldown": 10, "on_checks": 2, "off_delay": 10},
        "action": TURN_ON_LIGHT,
        "enabled": True,
    }
    form.update(overrides)
    return form


class Waving:
    """A model that sees a wave while `waving` is set, and answers only for rules it was asked about."""

    def __init__(self) -> None:
        """Start with nobody waving."""
        self.waving = False
        self.asked_about_rules: list[list[str]] = []

    def __call__(self, body: dict[str, Any]) -> Reply:
        """Answer a combined request."""
        schema = body["response_format"]["json_schema"]["schema"] if "response_format" in body else {}
        aliases = list(schema.get("properties", {}).get("rules", {}).get("properties", {}))
        self.asked_about_rules.append(aliases)
        # An unknown rule in the reply must be ignored: the model can only answer for rules that exist.
        rules = {alias: self.waving for alias in aliases} | {"r99": True}
        return answer(rules=rules, reason="a hand moves left and right" if self.waving else "nobody waves")


@pytest.fixture
async def setup(hass: HomeAssistant, model_server: FakeModelServer) -> tuple[MockConfigEntry, Waving]:
    """Return a backend entry watching the living room, a light, and the scripted model."""
    model = Waving()
    model_server.responder = model
    await async_add_lights(hass, SwitchableLight("Living room"))
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    return entry, model


async def add_rule(hass: HomeAssistant, entry: MockConfigEntry, form: dict[str, Any]) -> dict[str, Any]:
    """Run the rule subentry flow."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_RULE), context={"source": "user"}
    )
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    await hass.async_block_till_done()
    return result


def rule_id(entry: MockConfigEntry) -> str:
    return next(sid for sid, sub in entry.subentries.items() if sub.subentry_type == SUBENTRY_RULE)


async def test_wave_to_turn_on_the_lights(hass: HomeAssistant, setup: tuple[MockConfigEntry, Waving]) -> None:
    entry, model = setup
    events = capture_events(hass)
    result = await add_rule(hass, entry, rule_form())
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.state is ConfigEntryState.LOADED
    device = find_device(hass, entry, rule_id(entry))
    assert device is not None
    assert device.name == "Wave for light"
    assert hass.states.get("binary_sensor.wave_for_light_condition").state == STATE_OFF
    assert hass.states.get("switch.wave_for_light_enabled").state == STATE_ON
    assert hass.states.get("light.living_room").state == STATE_OFF

    model.waving = True
    await wait_for(lambda: hass.states.get("light.living_room").state == STATE_ON)
    assert hass.states.get("binary_sensor.wave_for_light_condition").state == STATE_ON
    triggered = hass.states.get("event.wave_for_light_triggered")
    assert triggered.attributes["camera_entity_id"] == "camera.living_room"
    assert triggered.attributes["reason"] == "a hand moves left and right"
    # The wave goes on for several checks: it fired once.
    await wait_for(lambda: len(model.asked_about_rules) >= 8)
    fired = [event for event in events if event["type"] == "rule_triggered"]
    assert len(fired) == 1
    assert fired[0]["device_id"] == device.id
    assert fired[0]["rule"] == "Wave for light"
    assert fired[0]["camera_entity_id"] == "camera.living_room"
    # The model sees the rule as r1 and nothing else; its invented r99 changed nothing.
    assert ["r1"] in model.asked_about_rules


async def test_stop_and_wave_again_fires_again_after_the_cooldown(
    hass: HomeAssistant, setup: tuple[MockConfigEntry, Waving]
) -> None:
    entry, model = setup
    events = capture_events(hass)
    await add_rule(hass, entry, rule_form(timing={"cooldown": 2, "on_checks": 2, "off_delay": 10}))
    fired = lambda: [event for event in events if event["type"] == "rule_triggered"]  # noqa: E731
    model.waving = True
    await wait_for(lambda: len(fired()) == 1)
    first = time.monotonic()
    model.waving = False
    await wait_for(lambda: hass.states.get("binary_sensor.wave_for_light_condition").state == STATE_OFF)
    # False, then true again once the 2 s cooldown is over: a new wave, a new trigger.
    await asyncio.sleep(max(0.0, 2.2 - (time.monotonic() - first)))
    model.waving = True
    await wait_for(lambda: len(fired()) == 2)
    assert hass.states.get("light.living_room").state == STATE_ON


async def test_cooldown_swallows_a_quick_second_wave(
    hass: HomeAssistant, setup: tuple[MockConfigEntry, Waving]
) -> None:
    entry, model = setup
    events = capture_events(hass)
    await add_rule(hass, entry, rule_form(timing={"cooldown": 60, "on_checks": 2, "off_delay": 10}))
    model.waving = True
    await wait_for(lambda: any(event["type"] == "rule_triggered" for event in events))
    model.waving = False
    await wait_for(lambda: hass.states.get("binary_sensor.wave_for_light_condition").state == STATE_OFF)
    model.waving = True
    await wait_for(lambda: hass.states.get("binary_sensor.wave_for_light_condition").state == STATE_ON)
    await asyncio.sleep(1)
    assert len([event for event in events if event["type"] == "rule_triggered"]) == 1


async def test_a_disabled_rule_is_not_sent_to_the_model(
    hass: HomeAssistant, setup: tuple[MockConfigEntry, Waving]
) -> None:
    entry, model = setup
    await add_rule(hass, entry, rule_form())
    await wait_for(lambda: ["r1"] in model.asked_about_rules)
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": "switch.wave_for_light_enabled"}, blocking=True
    )
    assert hass.states.get("switch.wave_for_light_enabled").state == STATE_OFF
    # No reload for a switch: the same runtime carries on, and remembers the choice.
    assert entry.subentries[rule_id(entry)].data["enabled"] is False
    model.waving = True
    asked = len(model.asked_about_rules)
    await wait_for(lambda: len(model.asked_about_rules) >= asked + 4)
    assert all(aliases == [] for aliases in model.asked_about_rules[asked + 1 :])
    assert hass.states.get("light.living_room").state == STATE_OFF

    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.wave_for_light_enabled"}, blocking=True
    )
    await wait_for(lambda: hass.states.get("light.living_room").state == STATE_ON)


async def test_the_ha_condition_blocks_the_action(
    hass: HomeAssistant, setup: tuple[MockConfigEntry, Waving]
) -> None:
    entry, model = setup
    assert await async_setup_component(hass, "input_boolean", {"input_boolean": {"evening": {}}})
    events = capture_events(hass)
    only_in_the_evening = [{"condition": "state", "entity_id": "input_boolean.evening", "state": "on"}]
    await add_rule(hass, entry, rule_form(ha_condition=only_in_the_evening))
    model.waving = True
    await wait_for(lambda: any(event["type"] == "rule_triggered" for event in events))
    await asyncio.sleep(0.5)
    # The rule triggered (and says so), but its condition kept the light off.
    assert hass.states.get("light.living_room").state == STATE_OFF


async def test_state_mode_needs_consecutive_checks_and_turns_off_after_the_delay(
    hass: HomeAssistant, setup: tuple[MockConfigEntry, Waving]
) -> None:
    entry, model = setup
    await add_rule(
        hass, entry, rule_form(mode="state", timing={"cooldown": 10, "on_checks": 3, "off_delay": 1})
    )
    sensor = "binary_sensor.wave_for_light_condition"
    model.waving = True
    asked = len(model.asked_about_rules)
    await wait_for(lambda: hass.states.get(sensor).state == STATE_ON)
    # On only after three positive checks in a row.
    assert len(model.asked_about_rules) - asked >= 3
    assert hass.states.get("light.living_room").state == STATE_ON
    model.waving = False
    await wait_for(lambda: hass.states.get(sensor).state == STATE_OFF)


async def test_reconfigure_changes_behaviour_at_once(
    hass: HomeAssistant, setup: tuple[MockConfigEntry, Waving]
) -> None:
    entry, model = setup
    await add_rule(hass, entry, rule_form(action=[]))
    model.waving = True
    await wait_for(lambda: hass.states.get("binary_sensor.wave_for_light_condition").state == STATE_ON)
    assert hass.states.get("light.living_room").state == STATE_OFF
    model.waving = False
    await wait_for(lambda: hass.states.get("binary_sensor.wave_for_light_condition").state == STATE_OFF)

    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_RULE), context={"source": "reconfigure", "subentry_id": rule_id(entry)}
    )
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], rule_form())
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    model.waving = True
    await wait_for(lambda: hass.states.get("light.living_room").state == STATE_ON)


async def test_deleting_the_rule_removes_its_device(
    hass: HomeAssistant, setup: tuple[MockConfigEntry, Waving]
) -> None:
    entry, model = setup
    await add_rule(hass, entry, rule_form())
    subentry_id = rule_id(entry)
    assert hass.config_entries.async_remove_subentry(entry, subentry_id)
    await hass.async_block_till_done()
    assert find_device(hass, entry, subentry_id) is None
    assert hass.states.get("binary_sensor.wave_for_light_condition") is None
    assert er.async_get(hass).async_get("switch.wave_for_light_enabled") is None
    asked = len(model.asked_about_rules)
    await wait_for(lambda: len(model.asked_about_rules) >= asked + 2)
    assert model.asked_about_rules[-1] == []


async def test_rules_survive_a_reload(hass: HomeAssistant, setup: tuple[MockConfigEntry, Waving]) -> None:
    entry, model = setup
    await add_rule(hass, entry, rule_form())
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    model.waving = True
    await wait_for(lambda: hass.states.get("light.living_room").state == STATE_ON)


async def test_a_failing_action_is_logged_and_the_rule_goes_on(
    hass: HomeAssistant, setup: tuple[MockConfigEntry, Waving], caplog: pytest.LogCaptureFixture
) -> None:
    entry, model = setup
    events = capture_events(hass)
    broken = [
        {"action": "light.turn_on", "target": {"entity_id": "light.living_room"}, "data": {"brightness": "x"}}
    ]
    await add_rule(
        hass, entry, rule_form(action=broken, timing={"cooldown": 0, "on_checks": 2, "off_delay": 10})
    )
    fired = lambda: [event for event in events if event["type"] == "rule_triggered"]  # noqa: E731
    model.waving = True
    await wait_for(lambda: len(fired()) == 1)
    await wait_for(lambda: "Wave for light" in caplog.text and "failed" in caplog.text)
    model.waving = False
    await wait_for(lambda: hass.states.get("binary_sensor.wave_for_light_condition").state == STATE_OFF)
    model.waving = True
    await wait_for(lambda: len(fired()) == 2)


async def test_a_rule_on_an_unwatched_camera_watches_it(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model = Waving()
    model_server.responder = model
    await async_add_lights(hass, SwitchableLight("Living room"))
    hall = SceneCamera("Hall", waving_hand())
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()), hall)
    # A backend with only the living room watched: drop the hall's camera subentry first.
    hall_id = next(
        sid for sid, sub in entry.subentries.items() if sub.data.get("camera_entity_id") == "camera.hall"
    )
    hass.config_entries.async_remove_subentry(entry, hall_id)
    await hass.async_block_till_done()
    await add_rule(hass, entry, rule_form(cameras=["camera.hall"]))
    cameras = [
        sub.data["camera_entity_id"]
        for sub in entry.subentries.values()
        if sub.subentry_type == SUBENTRY_CAMERA
    ]
    assert sorted(cameras) == ["camera.hall", "camera.living_room"]
    model.waving = True
    await wait_for(lambda: hass.states.get("light.living_room").state == STATE_ON)


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"name": "  "}, {"name": "name_empty"}),
        ({"condition": ""}, {"condition": "condition_empty"}),
        ({"condition": "someone is waving " * 30}, {"condition": "condition_too_long"}),
        ({"condition": "detected someone waving"}, {"condition": "condition_past_event"}),
        ({"cameras": []}, {"cameras": "no_camera"}),
        ({"cameras": ["camera.nowhere"]}, {"cameras": "camera_not_found"}),
        ({"timing": {"cooldown": 10, "on_checks": 0, "off_delay": 10}}, {"timing": "timing_out_of_range"}),
        (
            {
                "ha_condition": [
                    {"condition": "device", "device_id": "gone", "domain": "light", "type": "is_on"}
                ]
            },
            {"ha_condition": "invalid_condition"},
        ),
        ({"action": [{"delay": "not a duration"}]}, {"action": "invalid_action"}),
        ({"action": [{"action": "light.turn_on", "no_such_key": 1}]}, {"action": "invalid_action"}),
    ],
)
async def test_bad_rules_get_a_translated_error(
    hass: HomeAssistant,
    setup: tuple[MockConfigEntry, Waving],
    overrides: dict[str, Any],
    errors: dict[str, str],
) -> None:
    entry, _ = setup
    result = await add_rule(hass, entry, rule_form(**overrides))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors


async def test_a_catalogue_preset_uses_the_trained_wording(
    hass: HomeAssistant, setup: tuple[MockConfigEntry, Waving]
) -> None:
    entry, _ = setup
    await add_rule(hass, entry, rule_form(preset="thumbs_up", condition=""))
    assert entry.subentries[rule_id(entry)].data["condition"] == "someone is showing a Thumbs Up gesture"
