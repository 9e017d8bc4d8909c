"""Key frames: the Last detection image and the event data point at the frame that fired, saved frames stay bounded."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
import io
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.template import Template
from homeassistant.util.yaml import load_yaml_dict
from PIL import Image, ImageChops, ImageStat
import pytest
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.miloco.const import SUBENTRY_CAMERA, SUBENTRY_RULE
from custom_components.miloco.keyframes import KeyFrames, content_type_of, newest_saved, prune

from .helpers import remote_entry
from .lights import SwitchableLight, async_add_lights
from .model_server import FakeModelServer, Reply
from .perception_helpers import answer, capture_events, wait_for, watch
from .scenes import SceneCamera, async_add_cameras, waving_hand
from .test_blueprints import BLUEPRINTS
from .test_camera_flow import camera_form
from .test_rules import Waving, add_rule, rule_form

IMAGE = "image.living_room_last_detection"


class Recorded:
    """A scene that remembers every frame it served, in order."""

    def __init__(self, scene: Callable[[], bytes]) -> None:
        """Wrap `scene`."""
        self.scene = scene
        self.served: list[bytes] = []

    def __call__(self) -> bytes:
        """Serve and remember the next frame."""
        frame = self.scene()
        self.served.append(frame)
        return frame


class RecordingWaving(Waving):
    """The scripted waving model, which also keeps the images of each request."""

    def __init__(self) -> None:
        """Start with nobody waving and no requests."""
        super().__init__()
        self.images: list[tuple[bool, list[bytes]]] = []

    def __call__(self, body: dict[str, Any]) -> Reply:
        """Answer, remembering whether this answer said yes and which images it saw."""
        images = [
            base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            for message in body["messages"]
            if isinstance(message["content"], list)
            for part in message["content"]
            if part.get("type") == "image_url"
        ]
        self.images.append((self.waving, images))
        return super().__call__(body)


def _difference(jpeg: bytes, reference: Image.Image) -> float:
    """Return how far a frame, scaled to the reference's size, is from it (mean absolute pixel difference)."""
    with Image.open(io.BytesIO(jpeg)) as image:
        scaled = image.convert("RGB").resize(reference.size)
    return float(sum(ImageStat.Stat(ImageChops.difference(scaled, reference)).mean))


async def _fetch(
    hass: HomeAssistant, client: ClientSessionGenerator, entity_id: str, content_type: str = "image/jpeg"
) -> bytes:
    """Fetch an image entity's picture the way the frontend does: through its access-token URL."""
    http = await client()
    response = await http.get(hass.states.get(entity_id).attributes["entity_picture"])
    assert response.status == 200
    assert response.content_type == content_type
    return await response.read()


def as_png(scene: Callable[[], bytes]) -> Callable[[], bytes]:
    """Return the scene served as PNG, as some cameras serve their snapshots."""

    def frame() -> bytes:
        buffer = io.BytesIO()
        with Image.open(io.BytesIO(scene())) as image:
            image.save(buffer, format="PNG")
        return buffer.getvalue()

    return frame


@pytest.fixture
def media(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Give Home Assistant a local media folder of its own."""
    hass.config.media_dirs = {"local": str(tmp_path)}
    return tmp_path


async def test_a_rule_trigger_shows_and_points_at_its_frame(
    hass: HomeAssistant,
    model_server: FakeModelServer,
    hass_client: ClientSessionGenerator,
    media: Path,
) -> None:
    model = RecordingWaving()
    model_server.responder = model
    scene = Recorded(waving_hand())
    await async_add_lights(hass, SwitchableLight("Living room"))
    entry = await watch(hass, model_server, SceneCamera("Living room", scene), save_frames=True)
    events = capture_events(hass)
    await add_rule(hass, entry, rule_form(timing={"cooldown": 60, "on_checks": 2, "off_delay": 10}))
    # Checks ran before anything fired: the image has nothing to show yet.
    await wait_for(lambda: len(model.images) >= 2)
    assert hass.states.get(IMAGE).state == "unknown"

    model.waving = True
    await wait_for(lambda: any(event["type"] == "rule_triggered" for event in events))
    fired = next(event for event in events if event["type"] == "rule_triggered")
    assert fired["key_frame_entity_id"] == IMAGE
    shown = await _fetch(hass, hass_client, IMAGE)
    # The frame is one the camera served, and of all of them it is the newest one the triggering check sent.
    assert shown in scene.served
    _, sent = next(entry for entry in model.images if entry[0])
    with Image.open(io.BytesIO(sent[-1])) as newest_sent:
        reference = newest_sent.convert("RGB")
    distances = {frame: _difference(frame, reference) for frame in set(scene.served)}
    assert distances[shown] == min(distances.values())
    # Saved to the media folder too, where the event says.
    path = Path(fired["key_frame_path"])
    assert path.parent == media / "miloco" / "living_room"
    await wait_for(path.exists)
    assert await hass.async_add_executor_job(path.read_bytes) == shown
    assert (
        fired["key_frame_media_content_id"]
        == f"media-source://media_source/local/miloco/living_room/{path.name}"
    )
    assert fired["key_frame_url"] == f"/media/local/miloco/living_room/{path.name}"
    state = hass.states.get(IMAGE)
    assert state.attributes["camera_entity_id"] == "camera.living_room"
    assert state.attributes["detection"] == "Wave for light"
    assert state.attributes["key_frame_url"] == fired["key_frame_url"]

    # The wave goes on for more checks, in the cooldown: nothing fires, so the image does not change.
    updated = state.state
    asked = len(model.images)
    await wait_for(lambda: len(model.images) >= asked + 4)
    assert hass.states.get(IMAGE).state == updated
    assert await _fetch(hass, hass_client, IMAGE) == shown

    # The notify blueprint picks the saved frame of the trigger, not a new snapshot.
    blueprint = load_yaml_dict(str(BLUEPRINTS / "rule_notify_snapshot.yaml"))
    trigger = {"to_state": hass.states.get("event.wave_for_light_triggered")}
    variables: dict[str, Any] = {"trigger": trigger}
    for name in ("camera", "key_frame", "picture"):
        variables[name] = Template(blueprint["variables"][name], hass).async_render(variables)
    assert variables["key_frame"] == IMAGE
    assert variables["picture"] == fired["key_frame_url"]


async def test_the_image_is_private_without_its_token(
    hass: HomeAssistant, model_server: FakeModelServer, hass_client_no_auth: ClientSessionGenerator
) -> None:
    model_server.default_reply = answer()
    model_server.script(answer(("wave",)))
    await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    await wait_for(lambda: hass.states.get(IMAGE).state != "unknown")
    http = await hass_client_no_auth()
    # The proxy refuses a request that has neither a session nor the entity's access token.
    assert (await http.get(f"/api/image_proxy/{IMAGE}")).status == 403


async def test_a_gesture_points_at_its_frame_and_nothing_is_saved_by_default(
    hass: HomeAssistant,
    model_server: FakeModelServer,
    hass_client: ClientSessionGenerator,
    media: Path,
) -> None:
    model_server.default_reply = answer()
    scene = Recorded(waving_hand())
    events = capture_events(hass)
    await watch(hass, model_server, SceneCamera("Living room", scene))
    model_server.script(answer(("thumbs_up",)))
    await wait_for(lambda: any(event["type"] == "gesture" for event in events))
    (gesture,) = [event for event in events if event["type"] == "gesture"]
    assert gesture["key_frame_entity_id"] == IMAGE
    # Saving is off unless the user turns it on: the event names no file and the folder stays empty.
    assert "key_frame_path" not in gesture
    assert await _fetch(hass, hass_client, IMAGE) in scene.served
    assert hass.states.get(IMAGE).attributes["detection"] == "thumbs_up"
    assert not await hass.async_add_executor_job(lambda: any(media.rglob("*")))


async def test_saved_frames_are_pruned_to_the_bound(
    hass: HomeAssistant, model_server: FakeModelServer, media: Path
) -> None:
    folder = media / "miloco" / "living_room"
    await hass.async_add_executor_job(lambda: folder.mkdir(parents=True))
    # The user's own file in the folder is never Miloco's to delete.
    await hass.async_add_executor_job((folder / "holiday.jpg").write_bytes, b"mine")
    model_server.default_reply = answer()
    events = capture_events(hass)
    await watch(
        hass, model_server, SceneCamera("Living room", waving_hand()), save_frames=True, saved_frames_max=2
    )
    # Five separate waves: a check that sees none between them ends each episode.
    for _ in range(5):
        model_server.script(answer(("wave",)), answer(), answer())
    await wait_for(lambda: sum(event["type"] == "gesture" for event in events) >= 5, within=30)
    paths = [Path(event["key_frame_path"]) for event in events if event["type"] == "gesture"]
    await wait_for(paths[-1].exists)
    await asyncio.sleep(0.2)
    saved = await hass.async_add_executor_job(lambda: sorted(path.name for path in folder.iterdir()))
    assert saved == sorted(["holiday.jpg", paths[-2].name, paths[-1].name])


def test_prune_keeps_the_newest_and_ignores_other_files(tmp_path: Path) -> None:
    # A camera that sends PNG some of the time: its frames are saved (and so pruned) as .png.
    names = [f"20261130-0030{second:02d}-000000-wave.{'png' if second % 2 else 'jpg'}" for second in range(6)]
    for name in [*names, "notes.txt", "20261130-003000-000000-Wave.JPG"]:
        (tmp_path / name).write_bytes(b"x")
    deleted = prune(tmp_path, 2)
    assert sorted(path.name for path in deleted) == names[:4]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [*names[4:], "notes.txt", "20261130-003000-000000-Wave.JPG"]
    )


async def test_the_camera_form_offers_bounded_saving(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    await async_add_cameras(hass, SceneCamera("Living room", waving_hand()))
    entry = remote_entry(model_server)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    form = camera_form()
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CAMERA), context={"source": "user"}
    )
    # Off by default, with a bound of 20.
    capture = next(key for key in result["data_schema"].schema if str(key) == "capture")
    suggested = {str(key): key.description for key in result["data_schema"].schema[capture].schema.schema}
    assert suggested["save_frames"]["suggested_value"] is False
    assert suggested["saved_frames_max"]["suggested_value"] == 20
    # Unbounded (or zero) is refused, in the capture section.
    form["capture"] |= {"save_frames": True, "saved_frames_max": 0}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    assert result["errors"] == {"capture": "saved_frames_out_of_range"}
    form["capture"] |= {"saved_frames_max": 5000}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    assert result["errors"] == {"capture": "saved_frames_out_of_range"}
    form["capture"] |= {"saved_frames_max": 3}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["save_frames"] is True
    assert result["data"]["saved_frames_max"] == 3


async def test_the_last_detection_comes_back_after_a_reload_and_an_edit(
    hass: HomeAssistant,
    model_server: FakeModelServer,
    hass_client: ClientSessionGenerator,
    media: Path,
) -> None:
    model_server.default_reply = answer()
    scene = Recorded(as_png(waving_hand()))
    events = capture_events(hass)
    entry = await watch(hass, model_server, SceneCamera("Living room", scene), save_frames=True)
    model_server.script(answer(("thumbs_up",)))
    await wait_for(lambda: any(event["type"] == "gesture" for event in events))
    (gesture,) = [event for event in events if event["type"] == "gesture"]
    # A PNG camera's frame is served and saved as the PNG it is.
    shown = await _fetch(hass, hass_client, IMAGE, "image/png")
    assert shown in scene.served
    path = Path(gesture["key_frame_path"])
    assert path.suffix == ".png"
    await wait_for(path.exists)
    before = hass.states.get(IMAGE)

    # A restart of the integration: the image shows the saved frame again, with its time, label and file.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    after = hass.states.get(IMAGE)
    assert after.state == before.state
    assert after.attributes["detection"] == "thumbs_up"
    assert after.attributes["key_frame_path"] == str(path)
    assert after.attributes["key_frame_url"] == gesture["key_frame_url"]
    assert await _fetch(hass, hass_client, IMAGE, "image/png") == shown

    # An edit of the camera rebuilds its watcher and its entities: the saved frame is shown again too.
    (camera_id,) = entry.subentries
    subentry = entry.subentries[camera_id]
    assert hass.config_entries.async_update_subentry(entry, subentry, data={**subentry.data, "hold_time": 2})
    await hass.async_block_till_done()
    assert entry.runtime_data.watchers[camera_id].config.hold_s == 2
    assert hass.states.get(IMAGE).state == before.state
    assert await _fetch(hass, hass_client, IMAGE, "image/png") == shown
    # Nothing fired meanwhile: the frame on show is the restored one, not a new detection.
    assert sum(event["type"] == "gesture" for event in events) == 1


async def test_a_restore_never_hides_a_newer_frame(
    hass: HomeAssistant, model_server: FakeModelServer, media: Path
) -> None:
    old = waving_hand()()
    for camera in ("porch", "living_room"):
        folder = media / "miloco" / camera
        await hass.async_add_executor_job(lambda folder=folder: folder.mkdir(parents=True))
        await hass.async_add_executor_job((folder / "20261130-003000-000000-wave.jpg").write_bytes, old)
    # A rule's frame is named by the slug of the rule's name.
    rule_frame = folder / "20261130-002000-000000-wave_for_light.jpg"
    await hass.async_add_executor_job(rule_frame.write_bytes, old)
    rule = {"subentry_type": SUBENTRY_RULE, "title": "Wave for light", "unique_id": None, "data": {}}
    entry = remote_entry(model_server, subentries=[rule])
    entry.add_to_hass(hass)
    # A check fired something before the folder was read: the restore leaves that newer frame on show.
    porch = KeyFrames(hass, entry, "camera.porch", save=True, keep=5)
    new = waving_hand()()
    porch.set_check_frame(new)
    porch.record("thumbs_up")
    await porch.async_restore()
    assert porch.current is not None
    assert porch.current.image == new
    await hass.async_block_till_done(wait_background_tasks=True)

    # Without a newer frame, the saved one comes back, with the time and the label its name carries.
    living_room = KeyFrames(hass, entry, "camera.living_room", save=True, keep=5)
    await living_room.async_restore()
    assert living_room.current is not None
    assert living_room.current.image == old
    assert living_room.current.label == "wave"
    assert living_room.current.taken_at.isoformat() == "2026-11-30T00:30:00+00:00"
    # The newest frame is the one a rule fired: it is shown with the rule's name, not the file's slug.
    await hass.async_add_executor_job(rule_frame.rename, folder / "20261130-004000-000000-wave_for_light.jpg")
    by_rule = KeyFrames(hass, entry, "camera.living_room", save=True, keep=5)
    await by_rule.async_restore()
    assert by_rule.current is not None
    assert by_rule.current.label == "Wave for light"
    # With saving off, nothing is read back: the folder is not this camera's to show any more.
    unsaved = KeyFrames(hass, entry, "camera.living_room", save=False, keep=5)
    await unsaved.async_restore()
    assert unsaved.current is None


def test_content_types_are_sniffed_from_the_bytes(tmp_path: Path) -> None:
    image = Image.new("RGB", (8, 8), (10, 200, 30))
    encoded = {}
    for kind in ("JPEG", "PNG", "GIF", "WEBP"):
        buffer = io.BytesIO()
        image.save(buffer, format=kind)
        encoded[kind] = buffer.getvalue()
    assert {kind: content_type_of(data) for kind, data in encoded.items()} == {
        "JPEG": "image/jpeg",
        "PNG": "image/png",
        "GIF": "image/gif",
        "WEBP": "image/webp",
    }
    # The newest saved frame is read back with its own type; files that are not Miloco's are never picked.
    (tmp_path / "20261130-003000-000000-wave.jpg").write_bytes(encoded["JPEG"])
    (tmp_path / "20261130-003001-000000-ok.png").write_bytes(encoded["PNG"])
    (tmp_path / "holiday.png").write_bytes(encoded["PNG"])
    (tmp_path / "20261130-003002-000000-Wave.PNG").write_bytes(encoded["PNG"])
    newest = newest_saved(tmp_path)
    assert newest is not None
    assert (newest.path, newest.content_type, newest.label) == (
        tmp_path / "20261130-003001-000000-ok.png",
        "image/png",
        "ok",
    )
    assert newest_saved(tmp_path / "missing") is None
