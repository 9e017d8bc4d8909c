"""The camera subentry flow: adding, validating and reconfiguring a watched camera."""

from __future__ import annotations

import math
from typing import Any

from homeassistant.config_entries import ConfigEntryState, ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData, section as FormSection
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.const import SUBENTRY_CAMERA
from custom_components.miloco.settings import (
    CAMERA_SETTINGS,
    SECTION_CAPTURE,
    ChoiceSetting,
    LabelsSetting,
    NumberSetting,
)

from .camera_forms import table_form
from .helpers import find_device, remote_entry
from .model_server import FakeModelServer
from .scenes import SceneCamera, async_add_cameras, static_room


def camera_form(camera: str = "camera.living_room", **capture: Any) -> dict[str, Any]:
    """Return a filled-in camera form: the table's defaults, with a few gestures and one activity."""
    return table_form(camera, gestures=["thumbs_up", "wave"], activities=["reading"], **capture)


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


# The form is derived from the settings table: these tests iterate over it, so a new setting is covered as is.
NUMBERS = [setting for setting in CAMERA_SETTINGS if isinstance(setting, NumberSetting)]
CHOICES = [setting for setting in CAMERA_SETTINGS if isinstance(setting, ChoiceSetting | LabelsSetting)]
# The fields of the form that are not table settings: the camera, and the motion sensor in the capture section.
ENTITY_FIELDS = {None: {"camera_entity_id"}, SECTION_CAPTURE: {"motion_entity_id"}}


def out_of_range(setting: NumberSetting) -> list[Any]:
    """Return values the setting must refuse: past each bound, not finite, negative, a fraction of a whole."""
    values: list[Any] = [
        setting.minimum - setting.step,
        setting.maximum + setting.step,
        math.nan,
        math.inf,
        -math.inf,
        "nan",
        "soon",
    ]
    if setting.minimum >= 0:
        values.append(-1)
    if setting.integer:
        values.append(setting.minimum + 0.5)
    return values


async def _form(
    hass: HomeAssistant, entry: MockConfigEntry, subentry_id: str | None = None
) -> dict[str, Any]:
    context: dict[str, Any] = {"source": "user"}
    if subentry_id is not None:
        context = {"source": "reconfigure", "subentry_id": subentry_id}
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CAMERA), context=context
    )
    assert result["type"] is FlowResultType.FORM
    return dict(result)


def _fields(schema: Any) -> dict[str | None, dict[str, Any]]:
    """Return the form's schema keys by section (None: outside any section)."""
    top = {str(key): key for key in schema.schema}
    fields: dict[str | None, dict[str, Any]] = {None: top}
    for name, key in list(top.items()):
        if isinstance(schema.schema[key], FormSection):
            fields[name] = {str(inner): inner for inner in schema.schema[key].schema.schema}
            del top[name]
    return fields


def _selector(schema: Any, section: str | None, key: str) -> Any:
    container = schema.schema if section is None else schema.schema[section].schema.schema
    return next(value for marker, value in container.items() if str(marker) == key)


async def test_the_forms_are_the_settings_table(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Both camera forms show each table setting in its section, with its default, bounds and step."""
    result = await _form(hass, entry)
    await hass.config_entries.subentries.async_configure(result["flow_id"], table_form())
    await hass.async_block_till_done()
    (subentry_id,) = entry.subentries
    sections = {setting.section for setting in CAMERA_SETTINGS} | set(ENTITY_FIELDS)
    for result in (await _form(hass, entry), await _form(hass, entry, subentry_id)):
        schema = result["data_schema"]
        fields = _fields(schema)
        assert fields.keys() == sections
        for section in sections:
            table_keys = {setting.key for setting in CAMERA_SETTINGS if setting.section == section}
            assert fields[section].keys() == table_keys | ENTITY_FIELDS.get(section, set())
        for setting in CAMERA_SETTINGS:
            marker = fields[setting.section][setting.key]
            # The add form starts from the defaults; the change form from the stored values, here the defaults.
            # A setting without a default (a threshold left empty) suggests nothing.
            assert (marker.description or {}).get("suggested_value") == setting.default, setting.key
            if isinstance(setting, NumberSetting):
                config = _selector(schema, setting.section, setting.key).config
                assert (config["min"], config["max"], config["step"]) == (
                    setting.minimum,
                    setting.maximum,
                    setting.step,
                )
                # The help and error texts name the table's bounds through the form's placeholders.
                placeholders = result["description_placeholders"]
                assert placeholders[f"{setting.key}_min"] == f"{setting.minimum:g}"
                assert placeholders[f"{setting.key}_max"] == f"{setting.maximum:g}"


@pytest.mark.parametrize("setting", NUMBERS, ids=[setting.key for setting in NUMBERS])
async def test_a_number_out_of_its_range_is_refused(
    hass: HomeAssistant, entry: MockConfigEntry, setting: NumberSetting
) -> None:
    flow_id = (await _form(hass, entry))["flow_id"]
    for value in out_of_range(setting):
        result = await hass.config_entries.subentries.async_configure(
            flow_id, table_form(**{setting.key: value})
        )
        assert result["type"] is FlowResultType.FORM, value
        assert result["errors"] == {setting.section or setting.key: setting.error}, value
    assert entry.subentries == {}


async def test_every_bound_is_accepted_and_stored(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """All minimums in one form, then all maximums in the change form: each is stored as entered."""
    lowest = {setting.key: setting.minimum for setting in NUMBERS}
    highest = {setting.key: setting.maximum for setting in NUMBERS}
    result = await hass.config_entries.subentries.async_configure(
        (await _form(hass, entry))["flow_id"], table_form(**lowest)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    (subentry_id,) = entry.subentries
    assert {key: entry.subentries[subentry_id].data[key] for key in lowest} == lowest
    result = await hass.config_entries.subentries.async_configure(
        (await _form(hass, entry, subentry_id))["flow_id"], table_form(**highest)
    )
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert {key: entry.subentries[subentry_id].data[key] for key in highest} == highest
    assert entry.state is ConfigEntryState.LOADED


@pytest.mark.parametrize("setting", CHOICES, ids=[setting.key for setting in CHOICES])
async def test_an_unknown_option_is_refused(
    hass: HomeAssistant, entry: MockConfigEntry, setting: ChoiceSetting | LabelsSetting
) -> None:
    flow_id = (await _form(hass, entry))["flow_id"]
    unknown: Any = ["not_a_label"] if isinstance(setting, LabelsSetting) else "not_an_option"
    with pytest.raises(InvalidData):
        await hass.config_entries.subentries.async_configure(flow_id, table_form(**{setting.key: unknown}))
    assert entry.subentries == {}
