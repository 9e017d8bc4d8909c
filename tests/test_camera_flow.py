"""The camera subentry flow: adding, validating and reconfiguring a watched camera."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntryState, ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.const import SUBENTRY_CAMERA
from custom_components.miloco.settings import CAMERA_SETTINGS, SECTION_CAPTURE, NumberSetting

from .helpers import find_device, remote_entry
from .model_server import FakeModelServer
from .scenes import SceneCamera, async_add_cameras, static_room


def camera_form(camera: str = "camera.living_room", **capture: Any) -> dict[str, Any]:
    """Return a filled-in camera form (capture settings in their section)."""
    return {
        "camera_entity_id": camera,
        "gestures": ["thumbs_up", "wave"],
        "activities": ["reading"],
        "presence": True,
        "capture": {
            "capture_mode": "snapshot",
            "fps": 2,
            "window_frames": 6,
            "check_interval": 2,
            "detail": "medium",
            "change_threshold": 0.5,
            "heartbeat": 60,
            "hold_time": 15,
            "prompt_mode": "combined",
            **capture,
        },
    }


@pytest.fixture
async def entry(hass: HomeAssistant, model_server: FakeModelServer) -> MockConfigEntry:
    """Return a loaded backend entry and a living-room camera."""
    await async_add_cameras(
        hass, SceneCamera("Living room", static_room()), SceneCamera("Hall", static_room())
    )
    entry = remote_entry(model_server)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def _add(hass: HomeAssistant, entry: MockConfigEntry, form: dict[str, Any]) -> dict[str, Any]:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CAMERA), context={"source": "user"}
    )
    assert result["type"] is FlowResultType.FORM
    # The form starts from the reference pipeline's defaults.
    defaults = {str(key): key.description for key in result["data_schema"].schema}
    assert defaults["gestures"]["suggested_value"] == [
        "thumbs_up",
        "v_sign",
        "open_palm",
        "ok",
        "shaka",
        "wave",
    ]
    return await hass.config_entries.subentries.async_configure(result["flow_id"], form)


async def test_add_camera_creates_its_device_and_entities(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    result = await _add(hass, entry, camera_form())
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Living room"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    (subentry,) = (sub for sub in entry.subentries.values() if sub.subentry_type == SUBENTRY_CAMERA)
    assert subentry.data["fps"] == 2
    assert subentry.data["camera_entity_id"] == "camera.living_room"
    device = find_device(hass, entry, subentry.subentry_id)
    assert device is not None
    assert device.name == "Living room"
    entities = er.async_entries_for_device(er.async_get(hass), device.id, include_disabled_entities=True)
    assert {entity.unique_id.removeprefix(f"{subentry.subentry_id}_") for entity in entities} == {
        "gesture",
        "reading",
        "person",
        "last_analysis",
        "model_latency",
        "skipped_by_gate",
        "skipped_busy",
        "image_tokens",
        "last_detection",  # ecosystem (issue 14): the camera's key frame image
    }
    assert all(entity.config_subentry_id == subentry.subentry_id for entity in entities)
    gesture = hass.states.get("event.living_room_gesture")
    assert gesture is not None
    assert gesture.attributes["event_types"] == ["thumbs_up", "wave"]
    assert hass.states.get("binary_sensor.living_room_reading") is not None
    assert hass.states.get("binary_sensor.living_room_person").attributes["device_class"] == "occupancy"
    # Noisy counters are disabled by default.
    assert er.async_get(hass).async_get("sensor.living_room_checks_skipped_no_change").disabled_by is not None


@pytest.mark.parametrize(
    ("form", "errors"),
    [
        (camera_form("camera.nowhere"), {"camera_entity_id": "camera_not_found"}),
        (
            {**camera_form(), "gestures": [], "activities": [], "presence": False},
            {"base": "nothing_to_detect"},
        ),
        (camera_form(fps=0), {"capture": "fps_out_of_range"}),
        (camera_form(fps=60), {"capture": "fps_out_of_range"}),
        (camera_form(window_frames=0), {"capture": "window_out_of_range"}),
        (camera_form(fps=0.1, window_frames=16), {"capture": "window_too_long"}),
        (camera_form(check_interval=0.1), {"capture": "interval_out_of_range"}),
        (camera_form(hold_time=99999), {"capture": "duration_out_of_range"}),
        (camera_form(capture_mode="stream"), {"capture": "no_stream"}),
        (camera_form(motion_entity_id="binary_sensor.nowhere"), {"capture": "motion_entity_not_found"}),
    ],
)
async def test_bad_input_gets_a_translated_error(
    hass: HomeAssistant, entry: MockConfigEntry, form: dict[str, Any], errors: dict[str, str]
) -> None:
    result = await _add(hass, entry, form)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors


async def test_a_camera_is_watched_once_per_backend(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await _add(hass, entry, camera_form())
    await hass.async_block_till_done()
    result = await _add(hass, entry, camera_form())
    assert result["errors"] == {"camera_entity_id": "camera_already_watched"}


async def test_reconfigure_camera(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await _add(hass, entry, camera_form())
    await hass.async_block_till_done()
    subentry: ConfigSubentry = next(iter(entry.subentries.values()))
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CAMERA),
        context={"source": "reconfigure", "subentry_id": subentry.subentry_id},
    )
    assert result["step_id"] == "reconfigure"
    form = camera_form(fps=4)
    form["gestures"] = ["ok"]
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.subentries[subentry.subentry_id].data["fps"] == 4
    # The entry reloaded with the new settings: the gesture entity offers only OK now.
    assert entry.runtime_data.watchers[subentry.subentry_id].config.fps == 4
    assert hass.states.get("event.living_room_gesture").attributes["event_types"] == ["ok"]


async def test_removing_a_camera_removes_its_device(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await _add(hass, entry, camera_form())
    await hass.async_block_till_done()
    subentry_id = next(iter(entry.subentries))
    assert hass.config_entries.async_remove_subentry(entry, subentry_id)
    await hass.async_block_till_done()
    assert find_device(hass, entry, subentry_id) is None
    assert hass.states.get("event.living_room_gesture") is None
    assert entry.runtime_data.watchers == {}


async def test_form_takes_defaults_and_bounds_from_the_settings_table(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CAMERA), context={"source": "user"}
    )
    capture = result["data_schema"].schema["capture"].schema.schema
    for setting in CAMERA_SETTINGS:
        if setting.section != SECTION_CAPTURE:
            continue
        (key,) = (key for key in capture if str(key) == setting.key)
        assert key.description["suggested_value"] == setting.default
        if isinstance(setting, NumberSetting):
            config = capture[key].config
            assert (config["min"], config["max"], config["step"]) == (
                setting.minimum,
                setting.maximum,
                setting.step,
            )
    # The error texts name the table's bounds through the form's placeholders.
    assert result["description_placeholders"]["fps_max"] == "10"
    assert result["description_placeholders"]["window_frames_max"] == "16"
