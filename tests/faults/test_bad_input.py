"""Bad input in every flow field: nan, inf, negatives, huge numbers, NUL bytes, 5,000 characters, wrong types.

Each must come back as a translated error on the form, never as an exception (an HTTP 500 in the UI), and bad
data already stored must not break the setup of the entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
import json
import math
import os
from pathlib import Path
import threading
import time
from typing import Any

from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
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

from ..camera_forms import table_form
from ..helpers import remote_entry
from ..model_server import FakeModelServer
from ..scenes import SceneCamera, async_add_cameras, static_room

PACKAGE = Path(__file__).parents[2] / "custom_components" / "miloco"
STRINGS: dict[str, Any] = json.loads((PACKAGE / "strings.json").read_text(encoding="utf-8"))
FIXTURES = Path(__file__).parents[1] / "fixtures" / "models"
MODEL = FIXTURES / "tiny-qwen25vl.gguf"
MMPROJ = FIXTURES / "tiny-qwen25vl-mmproj.gguf"

# Numbers no setting accepts: not finite, negative, absurdly large, or not numbers at all.
BAD_NUMBERS: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    "nan",
    -1,
    1e308,
    10**400,
    "12 seconds",
    [5],
    None,
    True,
]
BAD_NUMBER_IDS = [
    "nan",
    "inf",
    "-inf",
    "nan-text",
    "negative",
    "1e308",
    "10**400",
    "text",
    "list",
    "none",
    "bool",
]
# Text no field accepts: a NUL byte, 5,000 characters, not text at all.
BAD_TEXTS: list[tuple[Any, str]] = [
    ("camera\x00name", "invalid_text"),
    ("x" * 5000, "text_too_long"),
    (42, "invalid_text"),
    (["a"], "invalid_text"),
]
BAD_TEXT_IDS = ["nul", "5000-chars", "int", "list"]


def _translated(errors: dict[str, str], texts: dict[str, str]) -> None:
    """Assert each error key has an English text (a raw key would show in the UI otherwise)."""
    for key in errors.values():
        assert key in texts, key


# --- The remote backend entry: its form, the model step, reconfigure and reauth. ---


def _server_form(url: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "verify_ssl": True, "timeout": 10, "max_concurrent": 2, **extra}


async def _remote_step(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "remote"})
    assert result["step_id"] == "remote"
    return str(result["flow_id"])


@pytest.mark.parametrize("field", ["timeout", "max_concurrent"])
@pytest.mark.parametrize("value", BAD_NUMBERS, ids=BAD_NUMBER_IDS)
async def test_remote_numbers(hass: HomeAssistant, field: str, value: Any) -> None:
    flow_id = await _remote_step(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, _server_form("http://127.0.0.1:9/v1", **{field: value})
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: f"{field}_out_of_range"}
    _translated(result["errors"], STRINGS["config"]["error"])
    # The bounds the error text names are filled in.
    assert result["description_placeholders"][f"{field}_max"] in ("300", "16")


@pytest.mark.parametrize("field", ["url", "api_key"])
@pytest.mark.parametrize(("value", "error"), BAD_TEXTS, ids=BAD_TEXT_IDS)
async def test_remote_texts(hass: HomeAssistant, field: str, value: Any, error: str) -> None:
    flow_id = await _remote_step(hass)
    form = _server_form("http://127.0.0.1:9/v1")
    form[field] = value if field == "api_key" or not isinstance(value, str) else f"http://127.0.0.1/{value}"
    result = await hass.config_entries.flow.async_configure(flow_id, form)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}
    _translated(result["errors"], STRINGS["config"]["error"])


@pytest.mark.parametrize(("value", "error"), BAD_TEXTS[:2], ids=BAD_TEXT_IDS[:2])
async def test_remote_model_name(
    hass: HomeAssistant, model_server: FakeModelServer, value: str, error: str
) -> None:
    flow_id = await _remote_step(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _server_form(model_server.url))
    assert result["step_id"] == "remote_model"
    result = await hass.config_entries.flow.async_configure(flow_id, {"model": value})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"model": error}
    _translated(result["errors"], STRINGS["config"]["error"])
    # Nothing was sent to the server with such a name.
    assert model_server.chat_requests == []


@pytest.mark.parametrize(
    ("field", "value"), [("timeout", math.nan), ("max_concurrent", -math.inf), ("url", "\x00")]
)
async def test_remote_reconfigure(
    hass: HomeAssistant, model_server: FakeModelServer, field: str, value: Any
) -> None:
    entry = remote_entry(model_server)
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "remote"
    form = _server_form(model_server.url)
    form[field] = value
    result = await hass.config_entries.flow.async_configure(result["flow_id"], form)
    assert result["type"] is FlowResultType.FORM
    assert set(result["errors"]) == {field}
    _translated(result["errors"], STRINGS["config"]["error"])
    assert entry.data["timeout"] == 10


@pytest.mark.parametrize(("value", "error"), BAD_TEXTS, ids=BAD_TEXT_IDS)
async def test_reauth_key(hass: HomeAssistant, model_server: FakeModelServer, value: Any, error: str) -> None:
    entry = remote_entry(model_server, api_key="old")
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"api_key": value})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"api_key": error}
    assert entry.data["api_key"] == "old"


# --- The embedded backend entry: numbers, paths, and a FIFO where a model file should be. ---


@pytest.fixture
def allowed(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Allow Home Assistant to read the fixtures and a scratch folder."""
    hass.config.allowlist_external_dirs = {str(FIXTURES), str(tmp_path)}
    return tmp_path


def _embedded_form(**extra: Any) -> dict[str, Any]:
    return {
        "model_path": str(MODEL),
        "mmproj_path": str(MMPROJ),
        "context_size": 4096,
        "timeout": 60,
        **extra,
    }


async def _embedded_step(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "embedded"})
    assert result["step_id"] == "embedded"
    return str(result["flow_id"])


@pytest.mark.parametrize("field", ["timeout", "context_size", "threads"])
@pytest.mark.parametrize(
    "value", [v for v in BAD_NUMBERS if v is not None], ids=[*BAD_NUMBER_IDS[:-2], "bool"]
)
async def test_embedded_numbers(hass: HomeAssistant, allowed: Path, field: str, value: Any) -> None:
    flow_id = await _embedded_step(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _embedded_form(**{field: value}))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: f"{field}_out_of_range"}
    _translated(result["errors"], STRINGS["config"]["error"])


@pytest.mark.parametrize("field", ["model_path", "mmproj_path"])
@pytest.mark.parametrize(("value", "error"), BAD_TEXTS, ids=BAD_TEXT_IDS)
async def test_embedded_paths(hass: HomeAssistant, allowed: Path, field: str, value: Any, error: str) -> None:
    flow_id = await _embedded_step(hass)
    if isinstance(value, str):
        value = f"{allowed}/{value}"
    result = await hass.config_entries.flow.async_configure(flow_id, _embedded_form(**{field: value}))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}
    _translated(result["errors"], STRINGS["config"]["error"])


async def test_embedded_reconfigure_nan_timeout(hass: HomeAssistant, allowed: Path) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="tiny",
        unique_id=str(MODEL),
        data={
            CONF_BACKEND: BACKEND_EMBEDDED,
            CONF_MODEL_PATH: str(MODEL),
            CONF_MMPROJ_PATH: str(MMPROJ),
            CONF_CONTEXT_SIZE: 4096,
            CONF_TIMEOUT: 60,
        },
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _embedded_form(timeout=math.nan)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"timeout": "timeout_out_of_range"}
    assert entry.data[CONF_TIMEOUT] == 60


@pytest.fixture
def fifo(allowed: Path) -> Iterator[Path]:
    """Make a named pipe inside an allowed folder; release any reader left blocked on it afterwards."""
    path = allowed / "model.gguf"
    os.mkfifo(path)
    yield path
    # A reader blocked in open() (the old code) wakes up when a writer comes and goes.
    # With no reader waiting, the open fails and there is nothing to release.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("field", ["model_path", "mmproj_path"])
async def test_fifo_model_path_is_refused_quickly(hass: HomeAssistant, fifo: Path, field: str) -> None:
    flow_id = await _embedded_step(hass)
    started = time.monotonic()
    async with asyncio.timeout(10):
        result = await hass.config_entries.flow.async_configure(flow_id, _embedded_form(**{field: str(fifo)}))
    assert time.monotonic() - started < 5
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: "not_regular_file"}
    _translated(result["errors"], STRINGS["config"]["error"])


async def test_allowed_path_check_runs_off_the_event_loop(
    hass: HomeAssistant, allowed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """is_allowed_path resolves symbolic links on disk: it must not run on the event loop."""
    calls: list[bool] = []
    check = hass.config.is_allowed_path

    def spy(path: str) -> bool:
        calls.append(threading.current_thread() is threading.main_thread())
        return check(path)

    monkeypatch.setattr(hass.config, "is_allowed_path", spy)
    flow_id = await _embedded_step(hass)
    await hass.config_entries.flow.async_configure(
        flow_id, _embedded_form(model_path=str(allowed / "none.gguf"))
    )
    assert calls
    assert not any(calls)


async def test_directory_as_model_path(hass: HomeAssistant, allowed: Path) -> None:
    flow_id = await _embedded_step(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _embedded_form(model_path=str(allowed)))
    assert result["errors"] == {"model_path": "not_regular_file"}


# --- Camera and rule subentries: add and reconfigure. ---


@pytest.fixture
async def entry(hass: HomeAssistant, model_server: FakeModelServer) -> MockConfigEntry:
    """Return a loaded backend entry with a living-room camera entity to watch."""
    await async_add_cameras(hass, SceneCamera("Living room", static_room()))
    entry = remote_entry(model_server)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def camera_form(**capture: Any) -> dict[str, Any]:
    # From the settings table: a camera setting added later needs no edit here.
    return table_form(gestures=["wave"], activities=[], **capture)


CAMERA_NUMBERS = {
    "fps": "fps_out_of_range",
    "window_frames": "window_out_of_range",
    "check_interval": "interval_out_of_range",
    "change_threshold": "change_threshold_out_of_range",
    "heartbeat": "duration_out_of_range",
    "hold_time": "duration_out_of_range",
}


async def _camera_flow(hass: HomeAssistant, entry: MockConfigEntry, subentry_id: str | None = None) -> str:
    context: dict[str, Any] = {"source": "user"}
    if subentry_id is not None:
        context = {"source": "reconfigure", "subentry_id": subentry_id}
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CAMERA), context=context
    )
    assert result["type"] is FlowResultType.FORM
    return str(result["flow_id"])


@pytest.mark.parametrize("field", sorted(CAMERA_NUMBERS))
@pytest.mark.parametrize("value", BAD_NUMBERS, ids=BAD_NUMBER_IDS)
async def test_camera_numbers(hass: HomeAssistant, entry: MockConfigEntry, field: str, value: Any) -> None:
    flow_id = await _camera_flow(hass, entry)
    result = await hass.config_entries.subentries.async_configure(flow_id, camera_form(**{field: value}))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"capture": CAMERA_NUMBERS[field]}
    camera_errors = STRINGS["config_subentries"]["camera"]["error"]
    _translated(result["errors"], camera_errors)
    assert entry.subentries == {}


async def test_camera_nan_threshold_is_not_stored(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Defect: nan passed every check, was stored as null, and broke the next setup of the whole entry."""
    flow_id = await _camera_flow(hass, entry)
    result = await hass.config_entries.subentries.async_configure(
        flow_id, camera_form(change_threshold=math.nan)
    )
    assert result["errors"] == {"capture": "change_threshold_out_of_range"}
    # The user corrects it in the same form.
    result = await hass.config_entries.subentries.async_configure(flow_id, camera_form(change_threshold=1))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    (subentry,) = entry.subentries.values()
    assert subentry.data["change_threshold"] == 1


@pytest.mark.parametrize("field", sorted(CAMERA_NUMBERS))
async def test_camera_reconfigure_numbers(hass: HomeAssistant, entry: MockConfigEntry, field: str) -> None:
    flow_id = await _camera_flow(hass, entry)
    await hass.config_entries.subentries.async_configure(flow_id, camera_form())
    await hass.async_block_till_done()
    (subentry_id,) = entry.subentries
    for value in (math.nan, -math.inf, -5, 10**400, "x"):
        flow_id = await _camera_flow(hass, entry, subentry_id)
        result = await hass.config_entries.subentries.async_configure(flow_id, camera_form(**{field: value}))
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {"capture": CAMERA_NUMBERS[field]}
    assert entry.subentries[subentry_id].data == {**camera_form()["capture"], **_top(camera_form())}


def _top(form: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in form.items() if key != "capture"}


def rule_form(**overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "name": "Wave",
        "preset": "custom",
        "condition": "someone is waving at the camera",
        "cameras": ["camera.living_room"],
        "mode": "event",
        "timing": {"cooldown": 10, "on_checks": 2, "off_delay": 10},
        "enabled": True,
    }
    form.update(overrides)
    return form


async def _rule_flow(hass: HomeAssistant, entry: MockConfigEntry, subentry_id: str | None = None) -> str:
    context: dict[str, Any] = {"source": "user"}
    if subentry_id is not None:
        context = {"source": "reconfigure", "subentry_id": subentry_id}
    result = await hass.config_entries.subentries.async_init((entry.entry_id, SUBENTRY_RULE), context=context)
    assert result["type"] is FlowResultType.FORM
    return str(result["flow_id"])


@pytest.mark.parametrize("field", ["cooldown", "on_checks", "off_delay"])
@pytest.mark.parametrize("value", BAD_NUMBERS, ids=BAD_NUMBER_IDS)
async def test_rule_numbers(hass: HomeAssistant, entry: MockConfigEntry, field: str, value: Any) -> None:
    flow_id = await _rule_flow(hass, entry)
    timing = {"cooldown": 10, "on_checks": 2, "off_delay": 10, field: value}
    result = await hass.config_entries.subentries.async_configure(flow_id, rule_form(timing=timing))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"timing": "timing_out_of_range"}
    _translated(result["errors"], STRINGS["config_subentries"]["rule"]["error"])
    assert entry.subentries == {}


@pytest.mark.parametrize("field", ["name", "condition"])
@pytest.mark.parametrize(("value", "error"), BAD_TEXTS, ids=BAD_TEXT_IDS)
async def test_rule_texts(
    hass: HomeAssistant, entry: MockConfigEntry, field: str, value: Any, error: str
) -> None:
    flow_id = await _rule_flow(hass, entry)
    result = await hass.config_entries.subentries.async_configure(flow_id, rule_form(**{field: value}))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}
    _translated(result["errors"], STRINGS["config_subentries"]["rule"]["error"])


async def test_rule_reconfigure_nan_cooldown(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Defect: nan in the cooldown made the form answer with an HTTP 500."""
    flow_id = await _rule_flow(hass, entry)
    result = await hass.config_entries.subentries.async_configure(flow_id, rule_form())
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    rule_id = next(sid for sid, sub in entry.subentries.items() if sub.subentry_type == SUBENTRY_RULE)
    for timing in (
        {"cooldown": math.nan, "on_checks": 2, "off_delay": 10},
        {"cooldown": 10, "on_checks": math.inf, "off_delay": 10},
        {"cooldown": 10, "on_checks": 2, "off_delay": -1},
    ):
        flow_id = await _rule_flow(hass, entry, rule_id)
        result = await hass.config_entries.subentries.async_configure(flow_id, rule_form(timing=timing))
        assert result["errors"] == {"timing": "timing_out_of_range"}
    assert entry.subentries[rule_id].data["cooldown"] == 10


# --- Bad data already stored (an older version, a hand edit): setup goes on. ---


def _camera_subentry(**data: Any) -> dict[str, Any]:
    return {
        "subentry_type": SUBENTRY_CAMERA,
        "title": "Living room",
        "unique_id": None,
        "data": {**_top(camera_form()), **camera_form()["capture"], **data},
    }


@pytest.mark.parametrize(
    "stored", [None, math.nan, "fast", -3, [1]], ids=["null", "nan", "text", "negative", "list"]
)
async def test_bad_stored_camera_setting_does_not_break_setup(
    hass: HomeAssistant, model_server: FakeModelServer, caplog: pytest.LogCaptureFixture, stored: Any
) -> None:
    """Defect: a change threshold stored as null made setup of the whole entry fail."""
    await async_add_cameras(hass, SceneCamera("Living room", static_room()))
    entry = remote_entry(model_server, subentries=[_camera_subentry(change_threshold=stored, fps=stored)])
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    (watcher,) = entry.runtime_data.watchers.values()
    # The table's defaults stand in, and the log says which value was bad.
    assert watcher.config.change_threshold == pytest.approx(0.005)
    assert watcher.config.fps == 2.0
    assert "change_threshold" in caplog.text
    # The reconfigure form offers the default in place of the bad value.
    (subentry_id,) = entry.subentries
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CAMERA), context={"source": "reconfigure", "subentry_id": subentry_id}
    )
    suggested = {
        str(key): (key.description or {}).get("suggested_value")
        for key in result["data_schema"].schema["capture"].schema.schema
    }
    assert suggested["change_threshold"] == 0.5
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_bad_stored_rule_timing_does_not_break_setup(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    await async_add_cameras(hass, SceneCamera("Living room", static_room()))
    rule = {
        "subentry_type": SUBENTRY_RULE,
        "title": "Wave",
        "unique_id": None,
        "data": {**rule_form(), "cooldown": None, "on_checks": math.inf, "off_delay": "soon", "mode": 3},
    }
    rule["data"].pop("timing")
    entry = remote_entry(model_server, subentries=[_camera_subentry(), rule])
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    (runner,) = entry.runtime_data.rules.values()
    assert (runner.config.cooldown_s, runner.config.on_checks, runner.config.off_delay_s) == (10.0, 2, 10.0)
    assert runner.config.mode == "event"
    assert await hass.config_entries.async_unload(entry.entry_id)


def test_a_subentry_without_its_camera_raises_one_typed_error() -> None:
    """What setup cannot run without is reported as InvalidSubentryData, for setup to skip that subentry."""
    # Imported here: the rest of this module runs against older code too, to show what it got wrong.
    from custom_components.miloco.camera_config import CameraConfig
    from custom_components.miloco.rule_config import RuleConfig
    from custom_components.miloco.settings import InvalidSubentryData

    with pytest.raises(InvalidSubentryData) as err:
        CameraConfig.from_data({"fps": 2})
    assert err.value.key == "camera_entity_id"
    with pytest.raises(InvalidSubentryData):
        RuleConfig.from_data({"condition": None, "cameras": ["camera.x"]})
    assert isinstance(err.value, ValueError)


async def test_bad_stored_backend_numbers_do_not_break_setup(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    entry = remote_entry(model_server, timeout=None, max_concurrent=math.nan)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.limiter.limit == 2
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    "stored", ["/models/a\x00b.gguf", None, "x" * 5000], ids=["nul", "none", "5000-chars"]
)
async def test_bad_stored_model_path_raises_its_repair_issue(
    hass: HomeAssistant, allowed: Path, stored: Any
) -> None:
    """A hand-edited model path stops only this entry, with the 'may not read' repair issue."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="tiny",
        unique_id=str(MODEL),
        data={
            CONF_BACKEND: BACKEND_EMBEDDED,
            CONF_MODEL_PATH: stored,
            CONF_MMPROJ_PATH: str(MMPROJ),
            CONF_CONTEXT_SIZE: 4096,
            CONF_TIMEOUT: 60,
        },
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"cannot_load_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_key == "path_not_allowed"
