"""A rule that cannot know is unavailable, not off (issue 18, case 5a), and comes back by itself."""

from __future__ import annotations

from typing import Any

from homeassistant.const import EVENT_STATE_CHANGED, STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.const import SUBENTRY_CAMERA

from .lights import SwitchableLight, async_add_lights
from .model_server import FakeModelServer, Reply, error
from .perception_helpers import wait_for, watch
from .scenes import SceneCamera, waving_hand
from .test_rules import Waving, add_rule, rule_form

CONDITION = "binary_sensor.wave_for_light_condition"
TRIGGERED = "event.wave_for_light_triggered"
SWITCH = "switch.wave_for_light_enabled"
LIGHT = "light.living_room"
BOTH_ROOMS = ["camera.living_room", "camera.hall"]


class FlakyModel:
    """The waving model, or a server error for every request while `down`."""

    def __init__(self) -> None:
        """Start up and answering."""
        self.waving = Waving()
        self.down = False

    def __call__(self, body: dict[str, Any]) -> Reply:
        """Answer, or fail with HTTP 500."""
        return error(500, "model crashed") if self.down else self.waving(body)


@pytest.fixture
async def rooms(
    hass: HomeAssistant, model_server: FakeModelServer
) -> tuple[MockConfigEntry, FlakyModel, SceneCamera, SceneCamera]:
    """Return a backend watching a living room and a hall, a light, the model, and both cameras."""
    model = FlakyModel()
    model_server.responder = model
    await async_add_lights(hass, SwitchableLight("Living room"))
    living_room, hall = SceneCamera("Living room", waving_hand()), SceneCamera("Hall", waving_hand())
    entry = await watch(hass, model_server, living_room, hall, gestures=[], activities=[])
    return entry, model, living_room, hall


def state_writes(hass: HomeAssistant, entity_id: str) -> list[str]:
    """Return the list of the states an entity changes to from now on."""
    writes: list[str] = []

    @callback
    def listener(event: Event[EventStateChangedData]) -> None:
        if event.data["entity_id"] == entity_id and (new := event.data["new_state"]) is not None:
            writes.append(new.state)

    hass.bus.async_listen(EVENT_STATE_CHANGED, listener)
    return writes


def living_room_subentry(entry: MockConfigEntry) -> str:
    """Return the id of the living room's camera subentry."""
    return next(
        sid
        for sid, sub in entry.subentries.items()
        if sub.subentry_type == SUBENTRY_CAMERA and sub.data["camera_entity_id"] == "camera.living_room"
    )


def state(hass: HomeAssistant, entity_id: str) -> str:
    """Return an entity's state."""
    return hass.states.get(entity_id).state


async def test_a_rule_whose_cameras_all_fail_is_unavailable_until_one_is_back(
    hass: HomeAssistant, rooms: tuple[MockConfigEntry, FlakyModel, SceneCamera, SceneCamera]
) -> None:
    entry, model, living_room, hall = rooms
    await add_rule(hass, entry, rule_form(cameras=BOTH_ROOMS))
    await wait_for(lambda: ["r1"] in model.waving.asked_about_rules)
    assert state(hass, CONDITION) == STATE_OFF

    living_room.failing = True
    await wait_for(lambda: not entry.runtime_data.watcher_for("camera.living_room").available)
    # The hall still reports: the rule still knows.
    assert state(hass, CONDITION) == STATE_OFF
    hall.failing = True
    await wait_for(lambda: state(hass, CONDITION) == STATE_UNAVAILABLE)
    assert state(hass, TRIGGERED) == STATE_UNAVAILABLE
    # The switch is no report of the cameras: a rule can be turned off while they fail.
    assert state(hass, SWITCH) == STATE_ON

    hall.failing = False
    await wait_for(lambda: state(hass, CONDITION) == STATE_OFF)
    assert state(hass, TRIGGERED) != STATE_UNAVAILABLE
    model.waving.waving = True
    await wait_for(lambda: state(hass, LIGHT) == STATE_ON)


async def test_a_rule_is_unavailable_while_the_model_is_down(
    hass: HomeAssistant, rooms: tuple[MockConfigEntry, FlakyModel, SceneCamera, SceneCamera]
) -> None:
    entry, model, _, _ = rooms
    await add_rule(hass, entry, rule_form(cameras=BOTH_ROOMS))
    await wait_for(lambda: ["r1"] in model.waving.asked_about_rules)
    writes = state_writes(hass, CONDITION)

    model.down = True
    await wait_for(lambda: state(hass, CONDITION) == STATE_UNAVAILABLE, within=30)
    model.down = False
    await wait_for(lambda: state(hass, CONDITION) == STATE_OFF, within=30)
    # Written when its availability changed, not at every failed check or counter change.
    assert writes == [STATE_UNAVAILABLE, STATE_OFF]
    model.waving.waving = True
    await wait_for(lambda: state(hass, LIGHT) == STATE_ON)


async def test_a_rule_whose_cameras_nobody_watches_is_unavailable(
    hass: HomeAssistant, rooms: tuple[MockConfigEntry, FlakyModel, SceneCamera, SceneCamera]
) -> None:
    entry, _, _, _ = rooms
    await add_rule(hass, entry, rule_form())
    assert state(hass, CONDITION) == STATE_OFF
    assert hass.config_entries.async_remove_subentry(entry, living_room_subentry(entry))
    await hass.async_block_till_done()
    assert state(hass, CONDITION) == STATE_UNAVAILABLE


async def test_editing_its_camera_does_not_flash_a_rule_unavailable(
    hass: HomeAssistant, rooms: tuple[MockConfigEntry, FlakyModel, SceneCamera, SceneCamera]
) -> None:
    entry, model, _, _ = rooms
    await add_rule(hass, entry, rule_form())
    await wait_for(lambda: ["r1"] in model.waving.asked_about_rules)
    writes = state_writes(hass, CONDITION)
    subentry = entry.subentries[living_room_subentry(entry)]
    hass.config_entries.async_update_subentry(entry, subentry, data={**subentry.data, "check_interval": 0.7})
    await hass.async_block_till_done()
    assert STATE_UNAVAILABLE not in writes
    assert state(hass, CONDITION) == STATE_OFF
