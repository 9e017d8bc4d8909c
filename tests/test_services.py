"""The service actions: miloco.analyze and miloco.evaluate_rule, happy paths and every error."""

from __future__ import annotations

import json
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.miloco.const import DOMAIN, SUBENTRY_RULE

from .helpers import find_device
from .lights import SwitchableLight, async_add_lights
from .model_server import FakeModelServer, Reply, error, garbage
from .perception_helpers import answer, capture_events, wait_for, watch
from .scenes import SceneCamera, async_add_cameras, static_room, waving_hand
from .test_rules import add_rule, rule_form


async def _analyze(hass: HomeAssistant, **data: Any) -> dict[str, Any]:
    response = await hass.services.async_call(DOMAIN, "analyze", data, blocking=True, return_response=True)
    assert response is not None
    return dict(response)


@pytest.fixture
async def entry(hass: HomeAssistant, model_server: FakeModelServer) -> MockConfigEntry:
    """A backend watching the living room; the hall camera exists but is not watched."""
    model_server.default_reply = answer()
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    watcher = next(iter(entry.runtime_data.watchers.values()))
    await wait_for(lambda: len(watcher.recent_frames()) == 3)
    return entry


async def test_analyze_a_watched_camera_uses_its_window(
    hass: HomeAssistant, entry: MockConfigEntry, model_server: FakeModelServer
) -> None:
    model_server.default_reply = Reply(content=json.dumps({"answer": "Someone is waving."}))
    response = await _analyze(hass, cameras=["camera.living_room"], question="What is going on?")
    result = response["cameras"]["camera.living_room"]
    assert result["answer"] == "Someone is waving."
    assert result["frames"] == 3
    assert result["model"] == "mimo-vl-miloco-7b"
    request = model_server.chat_requests[-1]
    assert request["messages"][1]["content"][-1]["text"] == "What is going on?/no_think"


async def test_analyze_with_a_structure(
    hass: HomeAssistant, entry: MockConfigEntry, model_server: FakeModelServer
) -> None:
    model_server.default_reply = Reply(content='Thinking... {"people": 2, "pets": "none"}')
    structure = {"type": "object", "properties": {"people": {"type": "integer"}}, "required": ["people"]}
    response = await _analyze(
        hass, cameras=["camera.living_room"], question="How many people?", structure=structure
    )
    # Only the asked-for structure comes back, checked: the unasked "pets" is dropped.
    assert response["cameras"]["camera.living_room"]["answer"] == {"people": 2}
    assert model_server.chat_requests[-1]["response_format"]["json_schema"]["schema"] == structure


async def test_analyze_an_unwatched_camera_takes_a_snapshot(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = answer()
    await watch(
        hass, model_server, SceneCamera("Living room", waving_hand()), SceneCamera("Hall", static_room())
    )
    # Forget the hall's watcher to make it "unwatched" for this call: remove its subentry.
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    hall = next(
        sid for sid, sub in entry.subentries.items() if sub.data.get("camera_entity_id") == "camera.hall"
    )
    hass.config_entries.async_remove_subentry(entry, hall)
    await hass.async_block_till_done()
    model_server.default_reply = Reply(content=json.dumps({"answer": "An empty hall."}))
    response = await _analyze(hass, cameras=["camera.hall"], question="Anyone there?")
    assert response["cameras"]["camera.hall"] == {
        "answer": "An empty hall.",
        "frames": 1,
        "model": "mimo-vl-miloco-7b",
        "latency_s": response["cameras"]["camera.hall"]["latency_s"],
    }


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"cameras": ["camera.nowhere"], "question": "?"}, "camera_not_found"),
        ({"cameras": ["light.living_room"], "question": "?"}, "camera_not_found"),
        (
            {"cameras": ["camera.living_room"], "question": "?", "structure": {"type": "string"}},
            "invalid_structure",
        ),
        (
            {
                "cameras": ["camera.living_room"],
                "question": "?",
                "structure": {"type": "object", "oneOf": []},
            },
            "invalid_structure",
        ),
        ({"cameras": ["camera.living_room"], "question": "?", "config_entry_id": "nope"}, "entry_not_loaded"),
    ],
)
async def test_analyze_bad_targets(
    hass: HomeAssistant, entry: MockConfigEntry, data: dict[str, Any], key: str
) -> None:
    with pytest.raises(ServiceValidationError) as caught:
        await _analyze(hass, **data)
    assert caught.value.translation_key == key
    # Translated: the message is the English text, not the key.
    assert key not in str(caught.value)


async def test_analyze_without_any_backend(hass: HomeAssistant) -> None:
    await async_add_cameras(hass, SceneCamera("Living room", static_room()))
    assert await async_setup_component(hass, DOMAIN, {})
    with pytest.raises(ServiceValidationError) as caught:
        await _analyze(hass, cameras=["camera.living_room"], question="?")
    assert caught.value.translation_key == "no_backend"


@pytest.mark.parametrize(
    ("reply", "key"), [(error(500, "boom"), "backend_error"), (garbage(), "reply_not_understood")]
)
async def test_analyze_backend_failures(
    hass: HomeAssistant, entry: MockConfigEntry, model_server: FakeModelServer, reply: Reply, key: str
) -> None:
    model_server.default_reply = reply
    with pytest.raises(HomeAssistantError) as caught:
        await _analyze(hass, cameras=["camera.living_room"], question="What is going on?")
    assert caught.value.translation_key == key


async def test_evaluate_rule_is_a_dry_run(
    hass: HomeAssistant, entry: MockConfigEntry, model_server: FakeModelServer
) -> None:
    await async_add_lights(hass, SwitchableLight("Living room"))
    await add_rule(hass, entry, rule_form(enabled=False))
    rule_id = next(sid for sid, sub in entry.subentries.items() if sub.subentry_type == SUBENTRY_RULE)
    device = find_device(hass, entry, rule_id)
    assert device is not None
    events = capture_events(hass)
    model_server.default_reply = answer(rules={"r1": True}, reason="a hand waves")
    response = await hass.services.async_call(
        DOMAIN, "evaluate_rule", {"rule": device.id}, blocking=True, return_response=True
    )
    assert response is not None
    assert response["rule"] == "Wave for light"
    verdict = response["cameras"]["camera.living_room"]
    assert verdict["verdict"] is True
    assert verdict["reason"] == "a hand waves"
    assert '"r1": "yes"' in verdict["raw_reply"]
    # A dry run: no trigger, no action, no state change.
    assert not [event for event in events if event["type"] == "rule_triggered"]
    assert hass.states.get("light.living_room").state == "off"
    assert hass.states.get("binary_sensor.wave_for_light_condition").state == "off"


async def test_diagnostics_show_each_rule(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, entry: MockConfigEntry
) -> None:
    assert await async_setup_component(hass, "diagnostics", {})
    await add_rule(hass, entry, rule_form(enabled=False))
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    (rule,) = diagnostics["rules"].values()
    assert rule["enabled"] is False
    assert rule["config"]["condition"] == "someone is waving at the camera"
    assert rule["config"]["action"] == [
        {"action": "light.turn_on", "target": {"entity_id": "light.living_room"}}
    ]


async def test_evaluate_rule_needs_a_rule_device(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    camera_device = find_device(hass, entry, next(iter(entry.subentries)))
    assert camera_device is not None
    for target in ("no-such-device", camera_device.id):
        with pytest.raises(ServiceValidationError) as caught:
            await hass.services.async_call(
                DOMAIN, "evaluate_rule", {"rule": target}, blocking=True, return_response=True
            )
        assert caught.value.translation_key == "rule_not_found"
