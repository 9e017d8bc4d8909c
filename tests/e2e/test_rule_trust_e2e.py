"""Issue 18 tried as a new user would, in a real Home Assistant process with a remote model server.

One Home Assistant, two cameras, a rule "someone waves → light on", driven over the REST and websocket APIs the
frontend uses (the rule's own form for every change):
1. the rule is moved to the other camera while a check of a wave on its old camera is held by the model: that
   check's "yes" fires nothing, and a wave on the new camera turns the light on;
2. Enabled unticked in the form turns the rule's switch off and the model is no longer asked; ticked again, the
   switch is on and a wave fires the rule;
3. a state rule that is on when Home Assistant restarts is on at once after the restart, and its action (a counter)
   does not run again at the next "yes", only after it went off and on again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
import io
import json
from pathlib import Path
import time
from typing import Any

from PIL import Image, ImageDraw
import pytest

from testkit.home_assistant import miloco_errors
from testkit.ports import free_port

from ..gated_model_server import GatedModelServer
from .real_hass import room_jpeg
from .restartable_hass import COUNTER, RestartableHomeAssistant
from .test_real_hass import WAVE, WindowModel, _add_backend, _add_camera, _light_off, _subentries

LIVING_ROOM, PORCH = "Living room", "Porch"
LIGHT = "light.bed_light"
RULE_CONDITION = "binary_sensor.someone_waves_condition"
RULE_SWITCH = "switch.someone_waves_enabled"
STATE_RULE_CONDITION = "binary_sensor.someone_keeps_waving_condition"
# Both cameras quick: this test is about the rules, not slow snapshots.
CAMERAS = {LIVING_ROOM: 0.05, PORCH: 0.05}
# Every wait is bounded: a check of a changed scene takes well under a second here.
WITHIN = 20.0


@pytest.fixture
async def gated_server(socket_enabled: None) -> AsyncGenerator[GatedModelServer]:
    """Run the remote model server, answering from the frames it is sent, with a gate the test can close."""
    server = GatedModelServer()
    server.responder = WindowModel()
    await server.start()
    try:
        yield server
    finally:
        server.open_gate()
        await server.stop()


@pytest.fixture
async def hass_process(socket_enabled: None, tmp_path: Path) -> AsyncGenerator[RestartableHomeAssistant]:
    """Run a real Home Assistant with the two folder cameras, onboarded and logged in."""
    ha = RestartableHomeAssistant(tmp_path / "config", free_port(), CAMERAS)
    async with ha.running():
        yield ha


def asked_rules(body: dict[str, Any]) -> list[str]:
    """Return the rule aliases a check request asks about."""
    schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
    return list(schema.get("properties", {}).get("rules", {}).get("properties", {}))


def sees_the_rule_hold(body: dict[str, Any]) -> bool:
    """Return whether the model answers "yes" for a rule to this request (it asks one, and a hand waves)."""
    content = WindowModel()(body).content
    return content is not None and "yes" in json.loads(content).get("rules", {}).values()


def someone_walking() -> list[bytes]:
    """Return frames of the room with someone moving (a blue shape), nobody waving."""
    frames = []
    for x in (60, 120, 180, 120):
        image = Image.open(io.BytesIO(room_jpeg()))
        ImageDraw.Draw(image).rectangle((x, 40, x + 50, 130), fill=(40, 60, 200))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        frames.append(buffer.getvalue())
    return frames


async def wait_until(condition: Callable[[], bool], what: str, ha: RestartableHomeAssistant) -> None:
    """Wait (bounded) until the test process sees `condition` hold."""
    deadline = time.monotonic() + WITHIN
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WITHIN} s: {what}\n{ha.log_tail()}")
        await asyncio.sleep(0.1)


async def first_state(ha: RestartableHomeAssistant, entity_id: str) -> dict[str, Any]:
    """Return the first state the entity itself writes after a start (not HA's placeholder of a late entity)."""
    deadline = time.monotonic() + WITHIN
    while (state := await ha.full_state(entity_id)) is None or state["attributes"].get("restored"):
        if time.monotonic() > deadline:
            raise AssertionError(f"{entity_id} is not set up within {WITHIN} s: {state}\n{ha.log_tail()}")
        await asyncio.sleep(0.1)
    return state


async def add_rule(ha: RestartableHomeAssistant, entry_id: str, form: dict[str, Any]) -> str:
    """Add a rule through its form; return its subentry id."""
    before = {sub["subentry_id"] for sub in await _subentries(ha, entry_id)}
    await ha.run_flow("/api/config/config_entries/subentries/flow", [entry_id, "rule"], form)
    (added,) = [
        sub["subentry_id"] for sub in await _subentries(ha, entry_id) if sub["subentry_id"] not in before
    ]
    return str(added)


async def test_rules_keep_to_their_settings_through_edits_and_a_restart(
    hass_process: RestartableHomeAssistant, gated_server: GatedModelServer
) -> None:
    ha = hass_process
    for entity_id in ("camera.living_room", "camera.porch", LIGHT, COUNTER):
        await ha.wait_for_entity(entity_id)
    entry_id = await _add_backend(ha, gated_server)
    await _add_camera(ha, entry_id, LIVING_ROOM)
    await _add_camera(ha, entry_id, PORCH)
    await _light_off(ha)
    rule_id = await add_rule(
        ha,
        entry_id,
        {
            "name": "Someone waves",
            "preset": "custom",
            "condition": WAVE,
            "cameras": ["camera.living_room"],
            "mode": "event",
            "timing": {"cooldown": 2},
            "action": [{"action": "light.turn_on", "target": {"entity_id": LIGHT}}],
            "enabled": True,
        },
    )
    await ha.wait_for_state(RULE_CONDITION, "off", within=10)

    await _moved_while_a_check_is_held(ha, entry_id, rule_id, gated_server)
    await _enabled_unticked_and_ticked_in_the_form(ha, entry_id, rule_id, gated_server)
    await ha.ws("config_entries/subentries/delete", entry_id=entry_id, subentry_id=rule_id)
    await _a_state_rule_through_a_restart(ha, entry_id, gated_server)

    log = ha.all_logs()
    assert "Task exception was never retrieved" not in log
    assert not miloco_errors(log), miloco_errors(log)


async def _moved_while_a_check_is_held(
    ha: RestartableHomeAssistant, entry_id: str, rule_id: str, server: GatedModelServer
) -> None:
    """The living room's wave is held by the model while the rule moves to the porch: its "yes" fires nothing."""
    # The model takes its time over the living room's wave (other checks are answered as they come).
    server.close_gate(holds=sees_the_rule_hold)
    ha.scenes[LIVING_ROOM].waving()
    await wait_until(
        lambda: any(sees_the_rule_hold(body) for body in server.held),
        "a check of the living room's wave, asking about the rule, is held by the model",
        ha,
    )
    await ha.reconfigure_subentry(entry_id, "rule", rule_id, {"cameras": ["camera.porch"]})
    held, answered = len(server.held), len(server.chat_requests)
    # The held checks get their answers now ("yes": the hand waves), and the living room, still waving, goes on.
    server.open_gate()
    await wait_until(
        lambda: len(server.chat_requests) >= answered + held + 3,
        "the held checks and three more are answered",
        ha,
    )
    await asyncio.sleep(1.0)
    assert await ha.state(LIGHT) == "off"
    assert await ha.state(RULE_CONDITION) == "off"
    assert "Rule Someone waves triggered" not in ha.log_text()

    # The rule as moved works: a wave on the porch turns the light on.
    ha.scenes[LIVING_ROOM].still()
    ha.scenes[PORCH].waving()
    await ha.wait_for_state(LIGHT, "on", within=WITHIN)
    assert "Rule Someone waves triggered on camera.porch" in ha.log_text()
    assert "Rule Someone waves triggered on camera.living_room" not in ha.log_text()
    ha.scenes[PORCH].still()
    await _light_off(ha)


async def _enabled_unticked_and_ticked_in_the_form(
    ha: RestartableHomeAssistant, entry_id: str, rule_id: str, server: GatedModelServer
) -> None:
    """Unticked, the rule is off and not asked about; ticked again, it is on and fires at the next wave."""
    await ha.reconfigure_subentry(entry_id, "rule", rule_id, {"enabled": False})
    await ha.wait_for_state(RULE_SWITCH, "off", within=5)
    ha.scenes[PORCH].waving()
    asked = len(server.chat_requests)
    await wait_until(lambda: len(server.chat_requests) >= asked + 4, "four checks of the wave", ha)
    # At most one check was on its way before the wave; none after it asks about the rule, though a hand waves.
    later = server.chat_requests[asked + 1 :]
    assert all(WAVE not in json.dumps(body) and not asked_rules(body) for body in later)
    assert any(json.loads(WindowModel()(body).content or "{}").get("gestures") for body in later)
    assert await ha.state(LIGHT) == "off"
    assert await ha.state(RULE_CONDITION) == "off"

    await ha.reconfigure_subentry(entry_id, "rule", rule_id, {"enabled": True})
    await ha.wait_for_state(RULE_SWITCH, "on", within=5)
    await ha.wait_for_state(LIGHT, "on", within=WITHIN)
    ha.scenes[PORCH].still()
    await _light_off(ha)


async def _a_state_rule_through_a_restart(
    ha: RestartableHomeAssistant, entry_id: str, server: GatedModelServer
) -> None:
    """On before the restart, on at once after it; its next "yes" is no news: the action does not run again."""
    await add_rule(
        ha,
        entry_id,
        {
            "name": "Someone keeps waving",
            "preset": "custom",
            "condition": WAVE,
            "cameras": ["camera.porch"],
            "mode": "state",
            "timing": {"cooldown": 0, "on_checks": 1, "off_delay": 1},
            "action": [{"action": "counter.increment", "target": {"entity_id": COUNTER}}],
            "enabled": True,
        },
    )
    await ha.wait_for_state(STATE_RULE_CONDITION, "off", within=10)
    ha.scenes[PORCH].waving()
    await ha.wait_for_state(STATE_RULE_CONDITION, "on", within=WITHIN)
    await ha.wait_for_state(COUNTER, "1", within=5)
    yes_before = sum(map(sees_the_rule_hold, server.chat_requests))
    await wait_until(
        lambda: sum(map(sees_the_rule_hold, server.chat_requests)) >= yes_before + 2, "two more yes", ha
    )
    assert await ha.state(COUNTER) == "1"

    # Restarted while the porch still waves; the model holds every check, so what shows first is restored.
    server.close_gate()
    await ha.restart()
    answered = len(server.chat_requests)
    condition = await first_state(ha, STATE_RULE_CONDITION)
    assert condition["state"] == "on", condition
    assert len(server.chat_requests) == answered, "a check was answered: the state is not the restored one"
    assert await ha.state(COUNTER) == "1"

    server.open_gate()
    await wait_until(
        lambda: sum(map(sees_the_rule_hold, server.chat_requests[answered:])) >= 3,
        "three checks after the restart answer yes",
        ha,
    )
    await asyncio.sleep(1.0)
    assert await ha.state(STATE_RULE_CONDITION) == "on"
    assert await ha.state(COUNTER) == "1"

    # Off in between, then on again: that is news, and the action runs.
    ha.scenes[PORCH].show(someone_walking())
    await ha.wait_for_state(STATE_RULE_CONDITION, "off", within=WITHIN)
    ha.scenes[PORCH].waving()
    await ha.wait_for_state(COUNTER, "2", within=WITHIN)
