"""The blueprints: valid for Home Assistant's blueprint schema, and the gesture one runs end to end."""

from __future__ import annotations

from pathlib import Path
import shutil

from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint.models import Blueprint
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import load_yaml_dict
import pytest

from .lights import SwitchableLight, async_add_lights
from .model_server import FakeModelServer
from .perception_helpers import answer, wait_for, watch
from .scenes import SceneCamera, waving_hand

BLUEPRINTS = Path(__file__).parent.parent / "blueprints" / "automation" / "miloco"


@pytest.mark.parametrize("path", sorted(BLUEPRINTS.glob("*.yaml")), ids=lambda path: path.name)
def test_blueprint_is_valid(path: Path) -> None:
    blueprint = Blueprint(
        load_yaml_dict(str(path)), expected_domain="automation", schema=AUTOMATION_BLUEPRINT_SCHEMA
    )
    assert blueprint.name.startswith("Miloco")
    assert blueprint.inputs


def test_there_are_two_blueprints() -> None:
    assert {path.name for path in BLUEPRINTS.glob("*.yaml")} == {
        "gesture_action.yaml",
        "rule_notify_snapshot.yaml",
    }


async def test_gesture_blueprint_turns_on_the_light_once_per_gesture(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    target = Path(hass.config.path("blueprints", "automation", "miloco"))
    await hass.async_add_executor_job(lambda: shutil.copytree(BLUEPRINTS, target, dirs_exist_ok=True))
    await async_add_lights(hass, SwitchableLight("Living room"))
    light = hass.data["light"].get_entity("light.living_room")
    model_server.default_reply = answer()
    await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "use_blueprint": {
                    "path": "miloco/gesture_action.yaml",
                    "input": {
                        "gesture_entity": "event.living_room_gesture",
                        "gesture": "wave",
                        "actions": [{"action": "light.toggle", "target": {"entity_id": "light.living_room"}}],
                    },
                }
            }
        },
    )
    await hass.async_block_till_done()
    # A thumbs up is not the wanted gesture: nothing happens.
    model_server.script(answer(("thumbs_up",)))
    await wait_for(
        lambda: hass.states.get("event.living_room_gesture").attributes.get("event_type") == "thumbs_up"
    )
    assert hass.states.get("light.living_room").state == STATE_OFF
    # A wave held over several checks toggles the light exactly once.
    model_server.script(answer(), answer(("wave",)), answer(("wave",)), answer(("wave",)), answer())
    await wait_for(lambda: hass.states.get("light.living_room").state == STATE_ON)
    await wait_for(lambda: not model_server.replies)
    assert hass.states.get("light.living_room").state == STATE_ON
    assert light.turned_on == 1
