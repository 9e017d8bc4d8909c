"""Sensitivity end to end: a rule's threshold against the P(yes) a scripted server gives, and a server without any."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco import settings
from custom_components.miloco.camera_config import CameraConfig
from custom_components.miloco.diagnostics import async_get_config_entry_diagnostics
from custom_components.miloco.engine.labels import by_key
from custom_components.miloco.engine.prompt import condition_question
from custom_components.miloco.rule_config import RuleConfig

from .model_server import FakeModelServer, Reply, yes_no_logprobs
from .perception_helpers import answer, capture_events, wait_for, watch
from .scenes import SceneCamera, waving_hand
from .test_rules import add_rule, rule_form

CONDITION = "binary_sensor.wave_for_light_condition"
TRIGGERED = "event.wave_for_light_triggered"


class Sure:
    """A model that says "yes" to the rule (and to presence) with a scripted P(yes), log-probabilities and all."""

    def __init__(self) -> None:
        """Start fairly sure: yes, at P = 0.7."""
        self.p_rule = 0.7
        self.p_person = 0.6
        self.checks_with_rule = 0

    def __call__(self, body: dict[str, Any]) -> Reply:
        """Answer a combined request about presence and the rules asked."""
        schema = body["response_format"]["json_schema"]["schema"]
        aliases = list(schema["properties"].get("rules", {}).get("properties", {}))
        self.checks_with_rule += bool(aliases)
        return yes_no_logprobs(
            {"person_present": self.p_person} | {f"rules.{alias}": self.p_rule for alias in aliases}
        )


@pytest.fixture
async def sure(hass: HomeAssistant, model_server: FakeModelServer) -> tuple[MockConfigEntry, Sure]:
    """Return an entry watching a waving scene for presence only (with a camera threshold of 80 %)."""
    model = Sure()
    model_server.responder = model
    entry = await watch(
        hass,
        model_server,
        SceneCamera("Living room", waving_hand()),
        gestures=[],
        activities=[],
        label_threshold=80,
    )
    return entry, model


def rule_at(threshold: float | None) -> dict[str, Any]:
    """Return the rule form without an action, its sensitivity set (None leaves it empty)."""
    timing: dict[str, Any] = {"cooldown": 60, "on_checks": 1, "off_delay": 10}
    if threshold is not None:
        timing["threshold"] = threshold
    form = rule_form(timing=timing)
    form.pop("action")
    return form


async def test_a_rule_at_80_percent_fires_at_p_0_9_and_not_at_0_7(
    hass: HomeAssistant, sure: tuple[MockConfigEntry, Sure]
) -> None:
    entry, model = sure
    events = capture_events(hass)
    result = await add_rule(hass, entry, rule_at(80))
    assert result["type"] is FlowResultType.CREATE_ENTRY

    # The model says "yes" at P = 0.7: below the rule's 80 %, so the rule does not hold.
    await wait_for(lambda: model.checks_with_rule >= 6)
    await wait_for(lambda: hass.states.get(CONDITION).attributes.get("probability") == 0.7)
    assert hass.states.get(CONDITION).state == STATE_OFF
    assert not [event for event in events if event["type"] == "rule_triggered"]

    model.p_rule = 0.9
    await wait_for(lambda: any(event["type"] == "rule_triggered" for event in events))
    fired = [event for event in events if event["type"] == "rule_triggered"]
    assert len(fired) == 1
    assert fired[0]["probability"] == pytest.approx(0.9)
    triggered = hass.states.get(TRIGGERED)
    assert triggered.attributes["probability"] == pytest.approx(0.9)
    assert triggered.attributes["camera_entity_id"] == "camera.living_room"
    assert hass.states.get(CONDITION).state == STATE_ON

    # Presence at P = 0.6 is a "yes" from the model, but under the camera's 80 %: nobody counts as present.
    presence = hass.states.get("binary_sensor.living_room_person")
    assert presence.state == STATE_OFF
    assert presence.attributes["probability"] == 0.6
    assert hass.states.get("sensor.living_room_last_analysis").attributes["probabilities"] == {"person": 0.6}
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["logprobs"] == "accepted"
    (rule,) = diagnostics["rules"].values()
    assert rule["last_probability"] == pytest.approx(0.9)
    assert rule["config"]["threshold"] == pytest.approx(0.8)


async def test_without_a_threshold_the_model_s_own_yes_decides(
    hass: HomeAssistant, sure: tuple[MockConfigEntry, Sure]
) -> None:
    entry, model = sure
    events = capture_events(hass)
    await add_rule(hass, entry, rule_at(None))
    await wait_for(lambda: any(event["type"] == "rule_triggered" for event in events))
    fired = next(event for event in events if event["type"] == "rule_triggered")
    # A "yes" at P = 0.7 holds, as it did before thresholds existed; the event still says how sure it was.
    assert fired["probability"] == pytest.approx(0.7)
    assert model.p_rule == 0.7


async def test_a_server_without_logprobs_behaves_as_before(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.refuse_logprobs = True
    model_server.responder = lambda body: answer(
        rules=dict.fromkeys(
            body["response_format"]["json_schema"]["schema"]["properties"]
            .get("rules", {})
            .get("properties", {}),
            True,
        )
    )
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()), label_threshold=80)
    events = capture_events(hass)
    # The threshold cannot apply without a probability: the model's "yes" decides, as before.
    await add_rule(hass, entry, rule_at(80))
    await wait_for(lambda: any(event["type"] == "rule_triggered" for event in events))
    fired = next(event for event in events if event["type"] == "rule_triggered")
    assert fired["probability"] is None
    assert hass.states.get(TRIGGERED).attributes["probability"] is None
    assert hass.states.get(CONDITION).state == STATE_ON
    assert "probability" not in hass.states.get(CONDITION).attributes
    # Presence is the model's "yes" too, though the camera's threshold is 80 %.
    assert hass.states.get("binary_sensor.living_room_person").state == STATE_ON
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["logprobs"] == "refused"
    assert all(camera["last_probabilities"] == {} for camera in diagnostics["cameras"].values())
    # After the one refusal the client stops asking: later requests are today's requests.
    await asyncio.sleep(0.2)
    asked = [request for request in model_server.requests if "logprobs" in request]
    assert len(asked) <= 1
    assert "logprobs" not in model_server.requests[-1]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -5, 0, 100, "abc"])
def test_the_table_refuses_a_threshold_that_is_not_a_percentage(bad: Any) -> None:
    for setting in (settings.THRESHOLD, settings.LABEL_THRESHOLD):
        with pytest.raises(settings.InvalidValue):
            setting.parse(bad)


def test_thresholds_are_stored_in_percent_and_used_as_probabilities() -> None:
    rule = RuleConfig.from_data(
        {"condition": "someone is waving", "cameras": ["camera.hall"], "threshold": 80}
    )
    assert rule.threshold == pytest.approx(0.8)
    assert RuleConfig.from_data({"condition": "someone is waving"}).threshold is None
    camera = CameraConfig.from_data({"camera_entity_id": "camera.hall", "label_threshold": 62.5})
    assert camera.check_spec().label_threshold == pytest.approx(0.625)
    assert CameraConfig.from_data({"camera_entity_id": "camera.hall"}).check_spec().label_threshold is None


async def test_the_rule_form_refuses_an_out_of_range_sensitivity(
    hass: HomeAssistant, sure: tuple[MockConfigEntry, Sure]
) -> None:
    entry, _ = sure
    result = await add_rule(hass, entry, rule_at(150))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"timing": "threshold_out_of_range"}


async def test_per_condition_an_activity_holds_at_the_camera_threshold(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    p_reading = [0.7]
    reading = condition_question(by_key("reading").condition)

    def respond(body: dict[str, Any]) -> Reply:
        question = body["messages"][-1]["content"][-1]["text"].removesuffix("/no_think")
        assert question == reading
        return yes_no_logprobs({"result": p_reading[0]})

    model_server.responder = respond
    events = capture_events(hass)
    await watch(
        hass,
        model_server,
        SceneCamera("Living room", waving_hand()),
        gestures=[],
        activities=["reading"],
        presence=False,
        prompt_mode="per_condition",
        label_threshold=80,
    )
    sensor = "binary_sensor.living_room_reading"
    # The model's "yes" at P = 0.7 is under the camera's 80 %.
    await wait_for(lambda: hass.states.get(sensor).attributes.get("probability") == 0.7)
    await asyncio.sleep(0.5)
    assert hass.states.get(sensor).state == STATE_OFF
    p_reading[0] = 0.9
    await wait_for(lambda: hass.states.get(sensor).state == STATE_ON)
    assert hass.states.get(sensor).attributes["probability"] == 0.9
    started = next(event for event in events if event["type"] == "activity_started")
    assert started["probability"] == pytest.approx(0.9)
