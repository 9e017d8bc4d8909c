"""The service actions: miloco.analyze and miloco.evaluate_rule, happy paths and every error."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.miloco.const import DOMAIN, SUBENTRY_RULE
from custom_components.miloco.reasons import reason_text

from .helpers import find_device, remote_entry
from .lights import SwitchableLight, async_add_lights
from .model_server import FakeModelServer, Reply, error, garbage
from .perception_helpers import answer, camera_subentry, capture_events, wait_for, watch
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
    if key == "backend_error":
        # The reason is worded for a person (a 500 is the server's fault), never its raw key.
        assert caught.value.translation_placeholders == {"reason": reason_text(hass, "server_error")}
        assert "server_error" not in str(caught.value)


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


# --- one check path, one limiter ---------------------------------------------------------------------------


def _is_question(body: dict[str, Any]) -> bool:
    """Return whether a chat request is an analyze question (not a live check)."""
    return "Answer the user's question" in body["messages"][0]["content"]


def _busy_model(delay_s: float) -> Any:
    """Return a responder that answers questions and checks alike, each after `delay_s`."""

    def respond(body: dict[str, Any]) -> Reply:
        if _is_question(body):
            return Reply(content=json.dumps({"answer": "a room"}), delay_s=delay_s)
        reply = answer()
        reply.delay_s = delay_s
        return reply

    return respond


async def _watch_with_one_slot(hass: HomeAssistant, model_server: FakeModelServer) -> MockConfigEntry:
    """Watch the living room (a waving hand: every frame changes) on a backend that takes one request."""
    camera = SceneCamera("Living room", waving_hand())
    await async_add_cameras(hass, camera)
    entry = remote_entry(model_server, max_concurrent=1, subentries=[camera_subentry(camera)])
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    watcher = next(iter(entry.runtime_data.watchers.values()))
    await wait_for(lambda: len(watcher.recent_frames()) == 3)
    return entry


async def test_parallel_analyze_calls_share_the_one_slot_with_live_checks(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.responder = _busy_model(0.2)
    await _watch_with_one_slot(hass, model_server)
    responses = await asyncio.gather(
        *(_analyze(hass, cameras=["camera.living_room"], question=f"Question {n}?") for n in range(4))
    )
    assert [r["cameras"]["camera.living_room"]["answer"] for r in responses] == ["a room"] * 4
    # Four service calls and the camera's own checks, never more than one at a time on the server.
    assert model_server.in_flight_max == 1
    assert len([body for body in model_server.chat_requests if _is_question(body)]) == 4


async def test_a_camera_named_many_times_is_asked_once(
    hass: HomeAssistant, entry: MockConfigEntry, model_server: FakeModelServer
) -> None:
    model_server.responder = _busy_model(0)
    response = await _analyze(hass, cameras=["camera.living_room"] * 30, question="What is going on?")
    assert list(response["cameras"]) == ["camera.living_room"]
    assert len([body for body in model_server.chat_requests if _is_question(body)]) == 1


async def test_a_busy_model_ends_the_wait_with_a_translated_error(
    hass: HomeAssistant, entry: MockConfigEntry, model_server: FakeModelServer
) -> None:
    limiter = entry.runtime_data.limiter
    # Every slot taken (as by long checks in flight).
    held = 0
    while limiter.try_acquire(f"held{held}", time.monotonic()):
        held += 1
    started = time.monotonic()
    with pytest.raises(HomeAssistantError) as caught:
        await _analyze(hass, cameras=["camera.living_room"], question="Anyone?", max_wait=0.3)
    assert 0.25 < time.monotonic() - started < 5
    assert caught.value.translation_key == "busy"
    assert "0.3 s" in str(caught.value)
    assert not [body for body in model_server.chat_requests if _is_question(body)]
    for index in range(held):
        limiter.release(f"held{index}")
    # Once a slot is free again, the same call is answered.
    model_server.responder = _busy_model(0)
    response = await _analyze(hass, cameras=["camera.living_room"], question="Anyone?", max_wait=5)
    assert response["cameras"]["camera.living_room"]["answer"] == "a room"


async def test_a_live_camera_keeps_checking_while_services_hammer(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.responder = _busy_model(0.1)
    entry = await _watch_with_one_slot(hass, model_server)
    watcher = next(iter(entry.runtime_data.watchers.values()))
    answered = 0
    stop = time.monotonic() + 3

    async def hammer() -> None:
        nonlocal answered
        while time.monotonic() < stop:
            await _analyze(hass, cameras=["camera.living_room"], question="Again?", max_wait=30)
            answered += 1

    checks_before = watcher.stats.checks
    await asyncio.gather(*(hammer() for _ in range(3)))
    # A check is due every 0.5 s and each request takes 0.1 s: the camera keeps most of its turns.
    assert watcher.stats.checks - checks_before >= 3
    assert answered >= 3
    assert model_server.in_flight_max == 1


async def test_analyze_is_answered_while_two_busy_cameras_share_one_slot(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    """Issue 18, case 8: one of two always-changing cameras on a one-slot backend always waits for the slot;
    a person's question used to wait behind it until it timed out."""
    model_server.responder = _busy_model(0.3)
    cameras = (SceneCamera("Front", waving_hand()), SceneCamera("Back", waving_hand()))
    await async_add_cameras(hass, *cameras)
    entry = remote_entry(
        model_server, max_concurrent=1, timeout=5, subentries=[camera_subentry(camera) for camera in cameras]
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    watchers = list(entry.runtime_data.watchers.values())
    await wait_for(lambda: all(w.stats.checks >= 2 and w.stats.skipped_busy >= 1 for w in watchers))
    for camera_id in ("camera.front", "camera.back", "camera.front"):
        started = time.monotonic()
        response = await _analyze(hass, cameras=[camera_id], question="What is going on?")
        assert response["cameras"][camera_id]["answer"] == "a room"
        # About one check ahead of it and its own answer, far inside its 5 s wait.
        assert time.monotonic() - started < 2.5
    checks = [w.stats.checks for w in watchers]
    # The cameras keep their turns between the questions.
    await wait_for(lambda: all(w.stats.checks > before for w, before in zip(watchers, checks, strict=True)))
    assert model_server.in_flight_max == 1


def _verdict(body: dict[str, Any]) -> bool:
    """Return a verdict that depends on every byte of the request's messages (prompt, frames, question)."""
    digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).digest()
    return digest[0] % 2 == 0


def _judging_model(body: dict[str, Any]) -> Reply:
    """Answer a combined check or a per-condition question with the request's own verdict."""
    holds = _verdict(body)
    schema = body["response_format"]["json_schema"]["schema"]
    if "result" in schema["properties"]:
        return Reply(content=json.dumps({"result": "yes" if holds else "no"}))
    aliases = list(schema["properties"].get("rules", {}).get("properties", {}))
    return answer(rules=dict.fromkeys(aliases, holds), reason="judged")


def _rule_question(body: dict[str, Any]) -> str:
    return str(body["messages"][1]["content"][-1]["text"])


@pytest.mark.parametrize("prompt_mode", ["combined", "per_condition"])
async def test_evaluate_rule_gives_the_live_verdict(
    hass: HomeAssistant, model_server: FakeModelServer, prompt_mode: str
) -> None:
    """Same frames (a still room), same camera settings: the dry run sends the live request, verdict and all."""
    model_server.responder = _judging_model
    camera = SceneCamera("Living room", static_room())
    await async_add_cameras(hass, camera)
    rule = {
        "subentry_type": SUBENTRY_RULE,
        "title": "Wave for light",
        "unique_id": None,
        "data": {"condition": "someone is waving at the camera", "cameras": ["camera.living_room"]},
    }
    # A heartbeat re-checks the still room every second; the camera is not at the default 2 fps.
    entry = remote_entry(
        model_server,
        subentries=[camera_subentry(camera, prompt_mode=prompt_mode, heartbeat=1), rule],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    rule_id = next(sid for sid, sub in entry.subentries.items() if sub.subentry_type == SUBENTRY_RULE)
    watcher = next(iter(entry.runtime_data.watchers.values()))
    live: list[bool | None] = []
    watcher.events.verdicts.add(
        lambda verdicts: live.append(
            next((holds for asked, holds in verdicts.holds.items() if asked.rule_id == rule_id), None)
        )
    )
    # The second check: the first may have run before the window filled up.
    await wait_for(lambda: len(live) >= 2)
    live_requests = list(model_server.chat_requests)
    device = find_device(hass, entry, rule_id)
    assert device is not None

    response = await hass.services.async_call(
        DOMAIN, "evaluate_rule", {"rule": device.id}, blocking=True, return_response=True
    )

    assert response is not None
    rule_question = "someone is waving at the camera"
    asked = [
        body
        for body in model_server.chat_requests[len(live_requests) :]
        if rule_question in _rule_question(body)
    ]
    assert asked, "the dry run asked about the rule"
    reference = [body for body in live_requests if _rule_question(body) == _rule_question(asked[0])]
    assert reference, "a live check asked the very same question"
    # Byte for byte the live request (live checks that ran meanwhile send it too).
    for body in asked:
        assert body["messages"][0] == reference[-1]["messages"][0]
        assert body["messages"] == reference[-1]["messages"]
    assert response["cameras"]["camera.living_room"]["verdict"] is live[-1] is _verdict(asked[0])
