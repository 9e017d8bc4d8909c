"""End to end through a real Home Assistant process: slow cameras, rules added at once, waves, reloads.

What a user does in the UI, done over the same REST and websocket APIs the frontend uses: add a backend, two
cameras (one whose snapshots take 1.5 s, as network cameras' do) and a rule right away; wave, stop, wave again;
reload, delete and re-add the entry. The model is a real HTTP server on loopback that answers from the frames it is
sent: it sees a wave when a frame of the window shows the red hand.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncGenerator
import io
import json
from pathlib import Path
import time
from typing import Any

import numpy as np
from PIL import Image
import pytest

from testkit.home_assistant import miloco_errors
from testkit.ports import free_port

from ..model_server import FakeModelServer, Reply
from .real_hass import HAND, RealHomeAssistant

LIVING_ROOM, PORCH = "Living room", "Porch"
LIGHT = "light.bed_light"
WAVE = "someone is waving at the camera"
# Snapshot delays: a quick camera and one as slow as a busy RTSP camera's snapshot.
CAMERAS = {LIVING_ROOM: 0.05, PORCH: 1.5}


def _shows_hand(data_url: str) -> bool:
    """Return whether a frame sent to the model shows the red hand (over 1% of its pixels)."""
    image = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")
    pixels = np.asarray(image, dtype=np.int16)
    red = (np.abs(pixels - np.array(HAND, dtype=np.int16)) < 50).all(axis=2)
    return int(red.sum()) > image.width * image.height // 100


class WindowModel:
    """A vision model that sees a wave when any frame of the window shows the hand (as a real one would)."""

    def __init__(self) -> None:
        """Count the perception checks it answers."""
        self.checks = 0

    def __call__(self, body: dict[str, Any]) -> Reply:
        """Answer one chat request from its frames and its requested answer structure."""
        schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
        properties = schema.get("properties", {})
        if "person_present" not in properties:
            return Reply()  # the setup flow's probe
        self.checks += 1
        frames = [
            part["image_url"]["url"]
            for message in body["messages"]
            if isinstance(message.get("content"), list)
            for part in message["content"]
            if part.get("type") == "image_url"
        ]
        waving = any(_shows_hand(frame) for frame in frames)
        answer: dict[str, Any] = {
            "gestures": ["wave"] if waving else [],
            "activities": [],
            "person_present": "yes",
            "reason": "a hand moves left and right" if waving else "an empty room",
        }
        aliases = list(properties.get("rules", {}).get("properties", {}))
        if aliases:
            answer["rules"] = {alias: "yes" if waving else "no" for alias in aliases}
        return Reply(content=json.dumps(answer))


@pytest.fixture
async def real_hass(socket_enabled: None, tmp_path: Path) -> AsyncGenerator[RealHomeAssistant]:
    """Run a real Home Assistant with the two folder cameras, onboarded and logged in."""
    ha = RealHomeAssistant(tmp_path / "config", free_port(), CAMERAS)
    async with ha.running():
        yield ha


async def _add_backend(ha: RealHomeAssistant, server: FakeModelServer) -> str:
    result = await ha.run_flow(
        "/api/config/config_entries/flow",
        "miloco",
        {"next_step_id": "remote"},
        {"url": server.url},
        {"model": "mimo-vl-miloco-7b"},
    )
    return str(result["result"]["entry_id"])


async def _add_camera(ha: RealHomeAssistant, entry_id: str, name: str) -> None:
    await ha.run_flow(
        "/api/config/config_entries/subentries/flow",
        [entry_id, "camera"],
        {
            "camera_entity_id": f"camera.{name.lower().replace(' ', '_')}",
            "gestures": ["wave"],
            "activities": [],
            "presence": True,
        },
    )


async def _add_rule(ha: RealHomeAssistant, entry_id: str, name: str) -> str:
    """Add an event rule 'wave → light on' with a short cooldown; return its subentry id."""
    before = {sub["subentry_id"] for sub in await _subentries(ha, entry_id)}
    await ha.run_flow(
        "/api/config/config_entries/subentries/flow",
        [entry_id, "rule"],
        {
            "name": name,
            "preset": "custom",
            "condition": WAVE,
            "cameras": ["camera.living_room"],
            "mode": "event",
            "timing": {"cooldown": 2},
            "action": [{"action": "light.turn_on", "target": {"entity_id": LIGHT}}],
            "enabled": True,
        },
    )
    (added,) = [
        sub["subentry_id"] for sub in await _subentries(ha, entry_id) if sub["subentry_id"] not in before
    ]
    return str(added)


async def _subentries(ha: RealHomeAssistant, entry_id: str) -> list[dict[str, Any]]:
    return list(await ha.ws("config_entries/subentries/list", entry_id=entry_id))


async def _entry_state(ha: RealHomeAssistant, entry_id: str) -> str | None:
    entries = await ha.rest("GET", "/api/config/config_entries/entry")
    return next((str(entry["state"]) for entry in entries if entry["entry_id"] == entry_id), None)


async def _light_off(ha: RealHomeAssistant) -> None:
    await ha.rest("POST", "/api/services/light/turn_off", {"entity_id": LIGHT})
    await ha.wait_for_state(LIGHT, "off", within=5)


async def test_waves_rules_and_reloads_through_a_real_home_assistant(
    real_hass: RealHomeAssistant, model_server: FakeModelServer
) -> None:
    ha = real_hass
    model = WindowModel()
    model_server.responder = model
    for entity_id in ("camera.living_room", "camera.porch", LIGHT):
        await ha.wait_for_entity(entity_id)

    # A backend, two cameras and a rule at once, as the README walkthrough goes.
    entry_id = await _add_backend(ha, model_server)
    await _add_camera(ha, entry_id, LIVING_ROOM)
    await _add_camera(ha, entry_id, PORCH)
    await _light_off(ha)

    await _five_waves_with_rules_added_at_once(ha, entry_id)
    await _a_second_wave_after_a_still_room(ha, entry_id, model)
    await _reload_delete_and_readd_with_slow_snapshots(ha, entry_id, model_server)

    log = ha.log_text()
    assert "Task exception was never retrieved" not in log
    assert not miloco_errors(log), miloco_errors(log)


async def _five_waves_with_rules_added_at_once(ha: RealHomeAssistant, entry_id: str) -> None:
    """Five times in a row: a rule added right away gets its entities, sees the wave and turns the light on."""
    living_room = ha.scenes[LIVING_ROOM]
    for run in range(5):
        rule_id = await _add_rule(ha, entry_id, f"Wave run {run}")
        await ha.wait_for_state(f"binary_sensor.wave_run_{run}_condition", "off", within=10)
        living_room.waving()
        await ha.wait_for_state(LIGHT, "on", within=20)
        living_room.still()
        await _light_off(ha)
        await ha.ws("config_entries/subentries/delete", entry_id=entry_id, subentry_id=rule_id)
        assert await _entry_state(ha, entry_id) == "loaded"


async def _a_second_wave_after_a_still_room(ha: RealHomeAssistant, entry_id: str, model: WindowModel) -> None:
    """A wave turns the light on; after 15 s of a still room, a second wave turns it on again."""
    living_room = ha.scenes[LIVING_ROOM]
    await _add_rule(ha, entry_id, "Wave for light")
    await ha.wait_for_state("binary_sensor.wave_for_light_condition", "off", within=10)
    living_room.waving()
    await ha.wait_for_state(LIGHT, "on", within=20)
    living_room.still()
    await _light_off(ha)
    checks_before_still = model.checks
    still_until = time.monotonic() + 15
    while time.monotonic() < still_until:
        assert await ha.state(LIGHT) == "off"
        await asyncio.sleep(0.5)
    # A still room costs (almost) nothing: the checks that saw the wave end, and no more.
    assert model.checks - checks_before_still <= 4, model.checks - checks_before_still
    living_room.waving()
    await ha.wait_for_state(LIGHT, "on", within=20)
    living_room.still()


async def _reload_delete_and_readd_with_slow_snapshots(
    ha: RealHomeAssistant, entry_id: str, model_server: FakeModelServer
) -> None:
    """Reload, delete and re-add, each in under 2 s, while the porch camera's 1.5 s snapshots are in flight."""
    for _ in range(3):
        start = time.monotonic()
        await ha.rest("POST", f"/api/config/config_entries/entry/{entry_id}/reload")
        assert time.monotonic() - start < 2, f"reload took {time.monotonic() - start:.1f} s"
        assert await _entry_state(ha, entry_id) == "loaded"
        await asyncio.sleep(2)
    start = time.monotonic()
    await ha.rest("DELETE", f"/api/config/config_entries/entry/{entry_id}")
    assert time.monotonic() - start < 2, f"delete took {time.monotonic() - start:.1f} s"
    requests_after_delete = len(model_server.chat_requests)
    await asyncio.sleep(3)
    assert len(model_server.chat_requests) == requests_after_delete, "a watcher outlived its entry"
    start = time.monotonic()
    entry_id = await _add_backend(ha, model_server)
    await _add_camera(ha, entry_id, PORCH)
    assert time.monotonic() - start < 2, f"re-adding took {time.monotonic() - start:.1f} s"
    assert await _entry_state(ha, entry_id) == "loaded"
