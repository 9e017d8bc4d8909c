"""Stream capture end to end: a real H.264 stream decoded by PyAV, a scripted model server, real HA."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import logging
from pathlib import Path
import sys
import time

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco import capture
from custom_components.miloco.const import SUBENTRY_CAMERA

from .camera_forms import table_form
from .helpers import remote_entry
from .model_server import FakeModelServer
from .perception_helpers import FAST, answer, wait_for, watch
from .scenes import SceneCamera, async_add_cameras, static_room
from .stream_helpers import LiveStream, make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-second H.264 clip of a moving square."""
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.ts")


@pytest.fixture
def live(socket_enabled: None, clip: Path) -> Iterator[LiveStream]:
    """ffmpeg serving the clip as a live HTTP stream on loopback."""
    stream = LiveStream(clip)
    stream.start()
    yield stream
    stream.stop()


async def _unload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Unload the entry, which stops (and joins) every decoding thread."""
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_stream_frames_drive_the_sensors_and_a_dead_stream_recovers(
    hass: HomeAssistant,
    model_server: FakeModelServer,
    live: LiveStream,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model_server.script(answer(activities=("reading",)))
    model_server.default_reply = answer()
    # The snapshot scene is static: only the stream's moving square can open the change gate.
    camera = SceneCamera("Living room", static_room(), stream_source=live.url)
    entry = await watch(hass, model_server, camera, capture_mode="stream")

    await wait_for(lambda: hass.states.get("binary_sensor.living_room_reading").state == STATE_ON)
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_reading").state == STATE_OFF)
    assert hass.states.get("binary_sensor.living_room_person").state == STATE_ON
    # The stream keeps moving, so checks keep coming (a static snapshot scene would stop them after one).
    await wait_for(lambda: len(model_server.chat_requests) >= 3)
    assert camera.images_served == 0
    # Each frame enters the window once: the images of one check all differ.
    content = model_server.chat_requests[-1]["messages"][1]["content"]
    images = [part["image_url"]["url"] for part in content if part["type"] == "image_url"]
    assert 2 <= len(images) <= 3
    assert len(set(images)) == len(images)

    # Dead after 0.6 s of silence (5 s outside tests), so that ffmpeg is back before the reader's first
    # retry a second after the loss. Set only now: a slow start is no failure.
    monkeypatch.setattr(capture, "STREAM_STALE_S", 0.6)
    live.stop()
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_UNAVAILABLE)
    assert hass.states.get("event.living_room_gesture").state == STATE_UNAVAILABLE
    live.start()
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_ON)
    lost = [record for record in caplog.records if "gives no images" in record.getMessage()]
    assert len(lost) == 1
    assert "video stream gives no frames" in lost[0].getMessage()
    await _unload(hass, entry)


@pytest.mark.parametrize(
    "case",
    [(None, "has no video stream"), ("rtsp://camera/live", "needs PyAV")],
    ids=["no_stream_source", "no_pyav"],
)
async def test_stream_mode_that_cannot_stream_warns_once(
    hass: HomeAssistant,
    model_server: FakeModelServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[str | None, str],
) -> None:
    stream_source, reason = case
    if stream_source is not None:
        # None in sys.modules makes `import av` fail, as on an install without PyAV.
        monkeypatch.setitem(sys.modules, "av", None)
    model_server.default_reply = answer()
    camera = SceneCamera("Living room", static_room(), stream_source=stream_source)
    entry = await watch(hass, model_server, camera, capture_mode="stream")
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_UNAVAILABLE)
    await asyncio.sleep(0.3)
    warnings = [
        record
        for record in caplog.records
        if record.levelno >= logging.WARNING and record.name.startswith("custom_components.miloco")
    ]
    assert len(warnings) == 1
    assert reason in warnings[0].getMessage()
    assert "camera.living_room" in warnings[0].getMessage()
    assert not model_server.chat_requests
    await _unload(hass, entry)


def _camera_form(capture_mode: str) -> dict[str, object]:
    # From the settings table: a camera setting added later needs no edit here.
    return table_form(
        gestures=["thumbs_up", "wave"], activities=["reading"], **{**FAST, "capture_mode": capture_mode}
    )


async def _add_camera(hass: HomeAssistant, entry: MockConfigEntry, capture_mode: str) -> dict[str, object]:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CAMERA), context={"source": "user"}
    )
    return await hass.config_entries.subentries.async_configure(result["flow_id"], _camera_form(capture_mode))


async def test_the_flow_adds_a_stream_camera_and_decoding_never_blocks_the_loop(
    hass: HomeAssistant, model_server: FakeModelServer, clip: Path
) -> None:
    model_server.default_reply = answer(("thumbs_up",), ("reading",))
    await async_add_cameras(hass, SceneCamera("Living room", static_room(), stream_source=str(clip)))
    entry = remote_entry(model_server)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    result = await _add_camera(hass, entry, "stream")
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    (subentry,) = entry.subentries.values()
    assert subentry.data["capture_mode"] == "stream"

    worst = 0.0
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        before = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - before - 0.01)
    assert len(model_server.chat_requests) >= 1
    assert hass.states.get("binary_sensor.living_room_reading").state == STATE_ON
    # Decoding runs on its own thread, JPEG work in the executor: the loop only schedules.
    assert worst < 0.15, f"event loop blocked for {worst * 1000:.0f} ms"
    await _unload(hass, entry)


async def test_the_flow_refuses_stream_mode_without_pyav(
    hass: HomeAssistant, model_server: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    await async_add_cameras(
        hass, SceneCamera("Living room", static_room(), stream_source="rtsp://camera/live")
    )
    entry = remote_entry(model_server)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    result = await _add_camera(hass, entry, "stream")
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"capture": "stream_unavailable"}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _camera_form("snapshot"))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
