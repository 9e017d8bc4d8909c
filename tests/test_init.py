"""Setup, retry, auth failure and unload of a remote entry against a real server on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.const import (
    BACKEND_EMBEDDED,
    CONF_BACKEND,
    CONF_CONTEXT_SIZE,
    CONF_MMPROJ_PATH,
    CONF_MODEL_PATH,
    CONF_TIMEOUT,
    DOMAIN,
    SUBENTRY_CAMERA,
    SUBENTRY_RULE,
)
from custom_components.miloco.engine.backends.errors import BackendClosed
from custom_components.miloco.engine.backends.llama_cpp import LlamaCppBackend
from custom_components.miloco.engine.probe import probe_request

from .helpers import find_device, remote_entry
from .model_server import FakeModelServer
from .perception_helpers import answer, wait_for, watch
from .scenes import SceneCamera, async_add_cameras, static_room, waving_hand


async def test_setup_and_unload(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    entry = remote_entry(model_server)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    backend = entry.runtime_data.backend
    assert backend.model == "mimo-vl-miloco-7b"

    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    # Unloading stops every request: the closed backend refuses new work.
    request = await hass.async_add_executor_job(probe_request)
    try:
        await backend.async_complete(request)
    except BackendClosed:
        pass
    else:
        raise AssertionError("a closed backend answered")


async def test_unreachable_server_retries_then_recovers(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    entry = remote_entry(model_server)
    port = model_server.port
    await model_server.stop()
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "backend is not available" in (entry.reason or "")

    await model_server.start(port)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


async def test_refused_key_starts_reauth(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    model_server.api_key = "new-key"
    entry = remote_entry(model_server, api_key="old-key")
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler("miloco")
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]

    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {"api_key": "still-wrong"})
    # The refused key is marked on its own field: with fallback servers the form has one per server.
    assert result["errors"] == {"api_key": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {"api_key": "new-key"})
    assert result["type"] == "abort"
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.data["api_key"] == "new-key"
    assert entry.state is ConfigEntryState.LOADED


async def test_two_backends_side_by_side(hass: HomeAssistant, model_server: FakeModelServer) -> None:
    first = remote_entry(model_server)
    model_server.models.append("qwen2.5-vl-7b")
    second: MockConfigEntry = remote_entry(model_server, model="qwen2.5-vl-7b")
    for entry in (first, second):
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert first.runtime_data.backend is not second.runtime_data.backend
    assert {first.state, second.state} == {ConfigEntryState.LOADED}


# --- Live configuration: subentry changes touch only what they concern -----------------------------------

# The camera form's own limits (a check every 2 s at the reference 2 fps).
FORM_CAPTURE = {
    "capture_mode": "snapshot",
    "fps": 2,
    "window_frames": 6,
    "check_interval": 2,
    "detail": "low",
    "change_threshold": 0.5,
    "heartbeat": 60,
    "hold_time": 15,
    "prompt_mode": "combined",
}


def _model_listings(server: FakeModelServer) -> int:
    return sum(1 for body in server.requests if body.get("path") == "/v1/models")


def _watch_unavailability(hass: HomeAssistant, entity_id: str) -> list[str]:
    """Record every state an entity takes from now on."""
    seen: list[str] = []

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        if (state := event.data["new_state"]) is not None:
            seen.append(state.state)

    async_track_state_change_event(hass, [entity_id], changed)
    return seen


async def _flow(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    kind: str,
    form: dict[str, Any],
    subentry_id: str | None = None,
) -> dict[str, Any]:
    """Run a camera or rule subentry flow (reconfigure when a subentry id is given)."""
    context: dict[str, Any] = {"source": "user"}
    if subentry_id is not None:
        context = {"source": "reconfigure", "subentry_id": subentry_id}
    result = await hass.config_entries.subentries.async_init((entry.entry_id, kind), context=context)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    await hass.async_block_till_done()
    return result


def _rule_form(cameras: list[str], condition: str = "someone is waving at the camera") -> dict[str, Any]:
    return {
        "name": "Wave",
        "preset": "custom",
        "condition": condition,
        "cameras": cameras,
        "mode": "event",
        "timing": {"cooldown": 10, "on_checks": 2, "off_delay": 10},
        "enabled": True,
    }


def _rules_asked(server: FakeModelServer, since: int) -> list[list[str]]:
    """Return the rule aliases of each chat request after the first `since` requests."""
    asked = []
    for body in server.requests[since:]:
        if "messages" in body:
            schema = body["response_format"]["json_schema"]["schema"]
            asked.append(list(schema["properties"].get("rules", {}).get("properties", {})))
    return asked


@pytest.fixture
async def two_cameras(hass: HomeAssistant, model_server: FakeModelServer) -> MockConfigEntry:
    """Return a loaded entry watching the living room and the hall, both busy."""
    model_server.default_reply = answer()
    living, hall = SceneCamera("Living room", waving_hand()), SceneCamera("Hall", waving_hand())
    # The porch is in Home Assistant from the start (cameras are registered once), but not yet watched.
    await async_add_cameras(hass, living, hall, SceneCamera("Porch", waving_hand()))
    entry = await watch(hass, model_server, living, hall)
    await wait_for(lambda: hass.states.get("binary_sensor.hall_person").state == "on")
    return entry


async def test_a_rule_is_added_edited_and_removed_without_a_reload(
    hass: HomeAssistant, model_server: FakeModelServer, two_cameras: MockConfigEntry
) -> None:
    entry = two_cameras
    runtime = entry.runtime_data
    backend, watchers = runtime.backend, dict(runtime.watchers)
    listings = _model_listings(model_server)
    hall_states = _watch_unavailability(hass, "binary_sensor.hall_person")
    hall = next(w for w in watchers.values() if w.config.camera_entity_id == "camera.hall")

    result = await _flow(hass, entry, SUBENTRY_RULE, _rule_form(["camera.living_room"]))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    rule_id = next(sid for sid, sub in entry.subentries.items() if sub.subentry_type == SUBENTRY_RULE)
    # The rule's entities appear at once, on its own device; the living room starts asking about it.
    await wait_for(lambda: hass.states.get("switch.wave_enabled") is not None, within=5)
    assert hass.states.get("binary_sensor.wave_condition").state == "off"
    assert find_device(hass, entry, rule_id) is not None
    asked_from = len(model_server.requests)
    await wait_for(lambda: ["r1"] in _rules_asked(model_server, asked_from))

    checks = hall.stats.checks
    result = await _flow(
        hass, entry, SUBENTRY_RULE, _rule_form(["camera.hall"], "someone waves"), subentry_id=rule_id
    )
    assert result["reason"] == "reconfigure_successful"
    # The rule moved to the hall: its new condition is asked there.
    asked_from = len(model_server.requests)
    await wait_for(
        lambda: any(
            "someone waves" in json.dumps(body)
            for body in model_server.requests[asked_from:]
            if "messages" in body
        )
    )
    assert entry.runtime_data.rules[rule_id].config.cameras == ("camera.hall",)

    assert hass.config_entries.async_remove_subentry(entry, rule_id)
    await hass.async_block_till_done()
    assert hass.states.get("switch.wave_enabled") is None
    assert find_device(hass, entry, rule_id) is None
    asked_from = len(model_server.requests)
    await wait_for(lambda: len(_rules_asked(model_server, asked_from)) >= 4)
    assert all(aliases == [] for aliases in _rules_asked(model_server, asked_from)[1:])

    # Nothing else restarted: same backend, same watchers still running, no new model listing.
    assert entry.runtime_data is runtime
    assert runtime.backend is backend
    assert dict(runtime.watchers) == watchers
    assert all(watcher.running for watcher in watchers.values())
    assert _model_listings(model_server) == listings
    assert hall.stats.checks > checks
    assert "unavailable" not in hall_states


async def test_a_rule_added_in_a_still_room_is_asked_at_once(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = answer()
    camera = SceneCamera("Living room", static_room())
    # No heartbeat: in a still room nothing but a new question can start a check.
    entry = await watch(hass, model_server, camera, heartbeat=0)
    await wait_for(lambda: len(_rules_asked(model_server, 0)) == 1)
    served = camera.images_served
    await wait_for(lambda: camera.images_served >= served + 5)
    assert len(_rules_asked(model_server, 0)) == 1

    await _flow(hass, entry, SUBENTRY_RULE, _rule_form(["camera.living_room"]))
    # The unchanged scene is asked about the new rule at the next frame, not at the next change.
    await wait_for(lambda: ["r1"] in _rules_asked(model_server, 0), within=3)


async def test_a_camera_is_added_changed_and_removed_without_touching_the_other(
    hass: HomeAssistant, model_server: FakeModelServer, two_cameras: MockConfigEntry
) -> None:
    entry = two_cameras
    runtime = entry.runtime_data
    listings = _model_listings(model_server)
    hall = runtime.watcher_for("camera.hall")
    assert hall is not None
    hall_states = _watch_unavailability(hass, "binary_sensor.hall_person")
    form = {
        "camera_entity_id": "camera.porch",
        "gestures": ["wave"],
        "activities": ["reading"],
        "presence": True,
        "capture": FORM_CAPTURE,
    }
    result = await _flow(hass, entry, SUBENTRY_CAMERA, form)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    await wait_for(
        lambda: (state := hass.states.get("binary_sensor.porch_person")) is not None and state.state == "on"
    )
    porch_id = next(sid for sid, sub in entry.subentries.items() if sub.title == "Porch")
    assert hass.states.get("binary_sensor.porch_reading") is not None

    # Unticking reading removes its sensor; the porch starts again, the hall never stops.
    result = await _flow(hass, entry, SUBENTRY_CAMERA, {**form, "activities": []}, subentry_id=porch_id)
    assert result["reason"] == "reconfigure_successful"
    await wait_for(lambda: hass.states.get("binary_sensor.porch_person").state == "on")
    assert er.async_get(hass).async_get("binary_sensor.porch_reading") is None
    assert hass.states.get("binary_sensor.porch_reading") is None

    assert hass.config_entries.async_remove_subentry(entry, porch_id)
    await hass.async_block_till_done()
    assert hass.states.get("binary_sensor.porch_person") is None
    assert porch_id not in runtime.watchers
    assert runtime.watcher_for("camera.hall") is hall
    assert hall.running
    assert _model_listings(model_server) == listings
    assert "unavailable" not in hall_states


async def test_a_backend_change_still_reloads(
    hass: HomeAssistant, model_server: FakeModelServer, two_cameras: MockConfigEntry
) -> None:
    entry = two_cameras
    runtime = entry.runtime_data
    hass.config_entries.async_update_entry(entry, data={**entry.data, "timeout": 20})
    await hass.async_block_till_done()
    await wait_for(lambda: entry.state is ConfigEntryState.LOADED and entry.runtime_data is not runtime)


async def test_the_embedded_model_is_loaded_once_across_edits(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixtures = Path(__file__).parent / "fixtures" / "models"
    hass.config.allowlist_external_dirs = {str(fixtures)}
    loads: list[str] = []
    real_load = LlamaCppBackend._load

    def counting_load(backend: LlamaCppBackend) -> None:
        loads.append("load")
        real_load(backend)

    monkeypatch.setattr(LlamaCppBackend, "_load", counting_load)
    await async_add_cameras(
        hass, SceneCamera("Living room", static_room()), SceneCamera("Hall", static_room())
    )
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="tiny",
        unique_id=str(fixtures / "tiny-qwen25vl.gguf"),
        data={
            CONF_BACKEND: BACKEND_EMBEDDED,
            CONF_MODEL_PATH: str(fixtures / "tiny-qwen25vl.gguf"),
            CONF_MMPROJ_PATH: str(fixtures / "tiny-qwen25vl-mmproj.gguf"),
            CONF_CONTEXT_SIZE: 4096,
            CONF_TIMEOUT: 60,
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert loads == ["load"]
    backend = entry.runtime_data.backend
    camera = {
        "camera_entity_id": "camera.living_room",
        "gestures": ["wave"],
        "activities": [],
        "presence": True,
        "capture": FORM_CAPTURE,
    }
    # Five edits: a camera added, a rule added, the rule edited, the camera edited, the rule removed.
    await _flow(hass, entry, SUBENTRY_CAMERA, camera)
    camera_id = next(sid for sid, sub in entry.subentries.items() if sub.subentry_type == SUBENTRY_CAMERA)
    await _flow(hass, entry, SUBENTRY_RULE, _rule_form(["camera.living_room"]))
    rule_id = next(sid for sid, sub in entry.subentries.items() if sub.subentry_type == SUBENTRY_RULE)
    await _flow(hass, entry, SUBENTRY_RULE, _rule_form(["camera.hall"]), subentry_id=rule_id)
    await _flow(hass, entry, SUBENTRY_CAMERA, {**camera, "gestures": []}, subentry_id=camera_id)
    assert hass.config_entries.async_remove_subentry(entry, rule_id)
    await hass.async_block_till_done()
    assert loads == ["load"]
    assert entry.runtime_data.backend is backend
    assert hass.states.get("binary_sensor.living_room_person") is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
