"""Miloco's LLM API through real Home Assistant: exposure, look and recent detections, on the loopback model server."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
import importlib
import json
from pathlib import Path
import time

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest

from custom_components.miloco import llm_api
from custom_components.miloco.const import EVENT_MILOCO
from custom_components.miloco.detections import Detection, DetectionRecord, detection_of
from custom_components.miloco.llm_api import MAX_MINUTES

from .assist_helpers import answer_question, asked_about, async_api, async_call, async_expose
from .helpers import remote_entry
from .model_server import FakeModelServer
from .perception_helpers import answer, camera_subentry, capture_events, wait_for
from .scenes import SceneCamera, async_add_cameras, static_room, waving_hand

FRONT = "camera.front_door"
GARAGE = "camera.garage"
ATTIC = "camera.attic"
FRONT_IMAGE = "image.front_door_last_detection"


@pytest.fixture
def media(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Give Home Assistant a local media folder of its own (where key frames are saved)."""
    hass.config.media_dirs = {"local": str(tmp_path)}
    return tmp_path


async def _setup(hass: HomeAssistant, server: FakeModelServer, front: SceneCamera) -> None:
    """Watch the front door; add a garage nobody watches and an attic; expose the front door and the garage."""
    # Exposure lives in the homeassistant integration, which conversation (and AI Task) need set up first.
    assert await async_setup_component(hass, "homeassistant", {})
    await async_add_cameras(
        hass, front, SceneCamera("Garage", static_room()), SceneCamera("Attic", static_room())
    )
    entry = remote_entry(server, subentries=[camera_subentry(front)])
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await async_expose(hass, FRONT, area="Entrance")
    await async_expose(hass, GARAGE)


async def test_the_prompt_names_the_exposed_cameras_their_areas_and_what_each_watches(
    hass: HomeAssistant, model_server: FakeModelServer, media: Path
) -> None:
    await _setup(hass, model_server, SceneCamera("Front door", static_room()))
    api = await async_api(hass)
    assert {tool.name for tool in api.tools} == {"look", "recent_detections"}
    prompt = api.api_prompt
    assert "Front door (camera.front_door), in the Entrance area" in prompt
    (front,) = [line for line in prompt.splitlines() if FRONT in line]
    assert "gestures (thumbs_up, wave)" in front
    assert "activities (" in front
    assert "reading" in front
    assert "watch_tv" in front
    assert "presence" in front
    assert "Garage (camera.garage): not watched by Miloco" in prompt
    # The attic exists but is not exposed: the agent is never told of it.
    assert "attic" not in prompt.lower()


async def test_an_unexposed_camera_is_refused_without_asking_the_model(
    hass: HomeAssistant, model_server: FakeModelServer, media: Path
) -> None:
    await _setup(hass, model_server, SceneCamera("Front door", static_room()))
    asked = len(model_server.chat_requests)
    for name in (ATTIC, "Attic"):
        with pytest.raises(HomeAssistantError) as refused:
            await async_call(hass, "look", camera=name, question="Is the window open?")
        assert refused.value.translation_key == "camera_not_exposed"
        # Translated for the agent, which reads the error text.
        assert "not exposed to Assist" in str(refused.value)
    with pytest.raises(HomeAssistantError) as refused:
        await async_call(hass, "recent_detections", camera=ATTIC)
    assert refused.value.translation_key == "camera_not_exposed"
    with pytest.raises(HomeAssistantError) as refused:
        await async_call(hass, "look", area="Cellar", question="Anyone there?")
    assert refused.value.translation_key == "no_camera_in_area"
    # Two cameras are exposed: a look that names none asks the agent to choose, listing only those two.
    with pytest.raises(HomeAssistantError) as refused:
        await async_call(hass, "look", question="Anyone there?")
    assert refused.value.translation_key == "name_a_camera"
    assert "Front door, Garage" in str(refused.value)
    assert len(model_server.chat_requests) == asked


async def test_look_answers_from_the_live_window_and_keeps_the_frame_it_looked_at(
    hass: HomeAssistant, model_server: FakeModelServer, media: Path
) -> None:
    room = static_room()
    await _setup(hass, model_server, SceneCamera("Front door", room))
    await wait_for(lambda: _window_full(hass))
    answer_question(model_server, "Is anyone at the door?", "Nobody is at the front door.")
    data = await async_call(hass, "look", area="entrance", question="Is anyone at the door?")
    (looked,) = data["answers"]
    assert looked["camera"] == FRONT
    assert looked["answer"] == "Nobody is at the front door."
    (request,) = asked_about(model_server, "Is anyone at the door?")
    # The camera's whole live window (3 frames with the test timing), not a single snapshot.
    assert json.dumps(request["messages"]).count('"type": "image_url"') == 3
    # The frame the answer looked at is the camera's key frame now, named in the answer.
    assert looked["key_frame"]["key_frame_entity_id"] == FRONT_IMAGE
    state = hass.states.get(FRONT_IMAGE)
    assert state is not None
    assert state.attributes["detection"] == "look"
    watcher = next(iter(hass.config_entries.async_entries("miloco"))).runtime_data.watcher_for(FRONT)
    assert watcher is not None
    assert watcher.key_frames.current is not None
    assert watcher.key_frames.current.image == room()


def _window_full(hass: HomeAssistant) -> bool:
    entry = next(iter(hass.config_entries.async_entries("miloco")))
    watcher = entry.runtime_data.watcher_for(FRONT)
    return watcher is not None and len(watcher.recent_frames()) >= 3


async def test_look_at_a_camera_nobody_watches_takes_a_snapshot_and_saves_it(
    hass: HomeAssistant, model_server: FakeModelServer, media: Path
) -> None:
    await _setup(hass, model_server, SceneCamera("Front door", static_room()))
    answer_question(model_server, "Is the car there?", "The car is parked.")
    data = await async_call(hass, "look", camera="Garage", question="Is the car there?")
    (looked,) = data["answers"]
    assert looked["answer"] == "The car is parked."
    (request,) = asked_about(model_server, "Is the car there?")
    assert json.dumps(request["messages"]).count('"type": "image_url"') == 1
    saved = Path(looked["key_frame"]["key_frame_path"])
    # The file is written by a background task of the entry, off the loop: give it a moment (bounded; the
    # entry's other background tasks, its cameras' loops, never end, so they cannot all be waited for).
    for _ in range(100):
        if await hass.async_add_executor_job(saved.is_file):
            break
        await asyncio.sleep(0.05)
    assert await hass.async_add_executor_job(saved.is_file)
    assert saved.parent == media / "miloco" / "garage"
    assert looked["key_frame"]["key_frame_url"].startswith("/media/local/miloco/garage/")


async def test_a_busy_model_says_so_within_the_bounded_wait(
    hass: HomeAssistant, model_server: FakeModelServer, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _setup(hass, model_server, SceneCamera("Front door", static_room()))
    limiter = next(iter(hass.config_entries.async_entries("miloco"))).runtime_data.limiter
    # Every slot taken (as by long checks in flight); the camera's own first check may hold one a moment.
    held: list[str] = []

    def hold() -> bool:
        if limiter.try_acquire(key := f"held{len(held)}", time.monotonic()):
            held.append(key)
        return len(held) == limiter.limit

    await wait_for(hold)
    # A voice user's bound, shortened so the test does not wait 15 s for it.
    monkeypatch.setattr(llm_api, "MAX_LOOK_WAIT_S", 0.3)
    started = time.monotonic()
    with pytest.raises(HomeAssistantError) as busy:
        await async_call(hass, "look", camera=FRONT, question="Anyone?")
    assert busy.value.translation_key == "busy"
    assert 0.25 < time.monotonic() - started < 5
    assert "0.3 s" in str(busy.value)


async def test_recent_detections_list_times_kinds_and_key_frames(
    hass: HomeAssistant, model_server: FakeModelServer, media: Path
) -> None:
    events = capture_events(hass)
    model_server.responder = lambda _body: answer(gestures=("wave",), person=True)
    before = dt_util.utcnow()
    await _setup(hass, model_server, SceneCamera("Front door", waving_hand()))
    await wait_for(lambda: any(event["type"] == "gesture" for event in events))
    await wait_for(lambda: any(event["type"] == "presence_started" for event in events))

    data = await async_call(hass, "recent_detections", camera="Front door", kind="gesture", minutes=5)
    assert data["cameras"] == [FRONT]
    assert data["detections"]
    gesture = data["detections"][0]
    assert gesture["kind"] == "gesture"
    assert gesture["label"] == "wave"
    assert gesture["camera"] == FRONT
    assert gesture["key_frame"]["key_frame_entity_id"] == FRONT_IMAGE
    assert before - timedelta(seconds=1) <= datetime.fromisoformat(gesture["time"]) <= dt_util.utcnow()
    assert gesture["minutes_ago"] < 1

    everything = await async_call(hass, "recent_detections", area="Entrance")
    kinds = {detection["kind"] for detection in everything["detections"]}
    assert {"gesture", "presence"} <= kinds
    presence = next(detection for detection in everything["detections"] if detection["kind"] == "presence")
    assert presence["phase"] == "started"
    # Newest first.
    times = [datetime.fromisoformat(detection["time"]) for detection in everything["detections"]]
    assert times == sorted(times, reverse=True)
    assert (await async_call(hass, "recent_detections", camera=FRONT, kind="rule"))["detections"] == []
    # The garage is exposed but watched by nobody: it has nothing to tell.
    assert (await async_call(hass, "recent_detections", camera=GARAGE))["detections"] == []

    for minutes in (0, MAX_MINUTES + 1):
        with pytest.raises(HomeAssistantError) as refused:
            await async_call(hass, "recent_detections", camera=FRONT, minutes=minutes)
        assert refused.value.translation_key == "invalid_tool_arguments"

    # The record lives with the entry: once it unloads it hears no more events.
    entry = next(iter(hass.config_entries.async_entries("miloco")))
    record = entry.runtime_data.detections
    recorded = len(record.since(dt_util.utc_from_timestamp(0), [FRONT]))
    hass.bus.async_fire(EVENT_MILOCO, {"type": "gesture", "camera_entity_id": FRONT, "gesture": "wave"})
    await hass.async_block_till_done()
    assert len(record.since(dt_util.utc_from_timestamp(0), [FRONT])) == recorded + 1
    assert await hass.config_entries.async_unload(entry.entry_id)
    hass.bus.async_fire(EVENT_MILOCO, {"type": "gesture", "camera_entity_id": FRONT, "gesture": "wave"})
    await hass.async_block_till_done()
    assert len(record.since(dt_util.utc_from_timestamp(0), [FRONT])) == recorded + 1


def test_the_record_is_bounded_and_reads_back_by_time_camera_and_kind() -> None:
    record = DetectionRecord(maxlen=5)
    start = datetime(2026, 1, 1, 12, 0, tzinfo=dt_util.UTC)
    for minute in range(8):
        kind = "gesture" if minute % 2 else "presence"
        camera = FRONT if minute < 7 else GARAGE
        record.add(
            Detection(time=start + timedelta(minutes=minute), camera_entity_id=camera, kind=kind, label="x")
        )
    # Only the newest five are kept (minutes 3 to 7).
    kept = record.since(start, [FRONT, GARAGE])
    assert [detection.time.minute for detection in kept] == [7, 6, 5, 4, 3]
    assert [d.time.minute for d in record.since(start + timedelta(minutes=5), [FRONT])] == [6, 5]
    assert [d.time.minute for d in record.since(start, [FRONT], "gesture")] == [5, 3]


def test_each_miloco_event_becomes_its_detection() -> None:
    now = dt_util.utcnow()
    base = {"device_id": "d", "camera_entity_id": FRONT}
    frame = {"key_frame_entity_id": FRONT_IMAGE, "key_frame_path": "/media/miloco/front_door/x.jpg"}
    rule = detection_of(
        {**base, "type": "rule_triggered", "rule": "Wave for light", "reason": "a wave", **frame}, now
    )
    assert rule is not None
    assert (rule.kind, rule.label, rule.reason, rule.key_frame) == ("rule", "Wave for light", "a wave", frame)
    started = detection_of({**base, "type": "activity_started", "activity": "reading"}, now)
    assert started is not None
    assert (started.kind, started.label, started.phase) == ("activity", "reading", "started")
    ended = detection_of({**base, "type": "presence_ended"}, now)
    assert ended is not None
    assert (ended.kind, ended.label, ended.phase) == ("presence", "person", "ended")
    assert detection_of({**base, "type": "something_new"}, now) is None
    assert detection_of({"type": "gesture", "gesture": "wave"}, now) is None


def test_the_schema_library_is_chosen_once_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    # Looking for probatio at every call was a blocking import on the event loop each time (it does not exist
    # on HA 2025.4, and a failed import is not cached): the choice is made once, as the module is imported.
    def no_import(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a module was imported after the integration loaded")

    monkeypatch.setattr(importlib, "import_module", no_import)
    assert llm_api._schemas() is llm_api._SCHEMAS
    assert hasattr(llm_api._schemas(), "Schema")
