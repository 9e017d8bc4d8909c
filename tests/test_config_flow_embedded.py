"""The embedded-model config flow and setup, with the tiny real GGUF pair and real llama-cpp-python."""

from __future__ import annotations

from pathlib import Path
import shutil
import sys
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
    CONF_THREADS,
    CONF_TIMEOUT,
    DOMAIN,
)
from custom_components.miloco.engine.parse import parse_reply
from custom_components.miloco.engine.probe import PROBE_SCHEMA, probe_request

FIXTURES = Path(__file__).parent / "fixtures" / "models"
MODEL = FIXTURES / "tiny-qwen25vl.gguf"
MMPROJ = FIXTURES / "tiny-qwen25vl-mmproj.gguf"


@pytest.fixture
def allowed(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Allow Home Assistant to read the fixtures and a scratch folder, as allowlist_external_dirs would."""
    hass.config.allowlist_external_dirs = {str(FIXTURES), str(tmp_path)}
    return tmp_path


def _form(model: Path | str = MODEL, mmproj: Path | str = MMPROJ, **extra: Any) -> dict[str, Any]:
    return {
        CONF_MODEL_PATH: str(model),
        CONF_MMPROJ_PATH: str(mmproj),
        CONF_CONTEXT_SIZE: 4096,
        CONF_TIMEOUT: 60,
        **extra,
    }


async def _submit(hass: HomeAssistant, form: dict[str, Any]) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "embedded"})
    assert result["step_id"] == "embedded"
    return await hass.config_entries.flow.async_configure(result["flow_id"], form)


def _interpreter(tmp_path: Path, body: str) -> str:
    """Write a stand-in Python interpreter for the child-process import probe."""
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


async def test_tiny_pair_is_accepted_loaded_and_answers(hass: HomeAssistant, allowed: Path) -> None:
    result = await _submit(hass, _form(**{CONF_THREADS: 2}))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # The random-weight test model is labelled as such wherever the entry's title shows.
    assert result["title"] == "tiny-qwen25vl (test model: random weights, meaningless answers)"
    assert result["data"] == {
        CONF_BACKEND: BACKEND_EMBEDDED,
        CONF_MODEL_PATH: str(MODEL),
        CONF_MMPROJ_PATH: str(MMPROJ),
        CONF_CONTEXT_SIZE: 4096,
        CONF_TIMEOUT: 60,
        CONF_THREADS: 2,
    }
    entry = result["result"]
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    # Real inference through the entry's backend: the grammar makes even random weights answer in schema.
    backend = entry.runtime_data.backend
    request = await hass.async_add_executor_job(probe_request)
    reply = await backend.async_complete(request)
    assert parse_reply(reply.text, PROBE_SCHEMA)["result"] in ("yes", "no")

    # Unloading frees the model (and its worker thread: the harness fails tests that leave threads).
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert not backend.loaded


@pytest.mark.parametrize(
    ("make_form", "errors"),
    [
        (lambda tmp: _form(model="relative/model.gguf"), {CONF_MODEL_PATH: "path_not_allowed"}),
        (lambda tmp: _form(mmproj="/etc/passwd"), {CONF_MMPROJ_PATH: "path_not_allowed"}),
        (lambda tmp: _form(model=tmp / "missing.gguf"), {CONF_MODEL_PATH: "file_not_found"}),
        (
            lambda tmp: _form(model=MMPROJ, mmproj=MODEL),
            {CONF_MODEL_PATH: "not_text_model", CONF_MMPROJ_PATH: "not_mmproj"},
        ),
        (lambda tmp: _form(mmproj=MODEL), {CONF_MMPROJ_PATH: "not_mmproj"}),
        (lambda tmp: _form(model=tmp), {CONF_MODEL_PATH: "not_regular_file"}),
    ],
)
async def test_bad_paths(hass: HomeAssistant, allowed: Path, make_form: Any, errors: dict[str, str]) -> None:
    result = await _submit(hass, make_form(allowed))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors


async def test_development_defaults_offer_the_tiny_pair(
    hass: HomeAssistant, allowed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MILOCO_DEFAULT_MODEL_PATH", str(MODEL))
    monkeypatch.setenv("MILOCO_DEFAULT_MMPROJ_PATH", str(MMPROJ))
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "embedded"})
    suggested = {
        str(key): (key.description or {}).get("suggested_value") for key in result["data_schema"].schema
    }
    assert suggested[CONF_MODEL_PATH] == str(MODEL)
    assert suggested[CONF_MMPROJ_PATH] == str(MMPROJ)


async def test_not_a_gguf_file(hass: HomeAssistant, allowed: Path) -> None:
    fake = allowed / "model.gguf"
    fake.write_bytes(b"<html>404 Not Found</html>")
    result = await _submit(hass, _form(model=fake))
    assert result["errors"] == {CONF_MODEL_PATH: "not_gguf"}


async def test_truncated_download(hass: HomeAssistant, allowed: Path) -> None:
    truncated = allowed / "model.gguf"
    truncated.write_bytes(MODEL.read_bytes()[: MODEL.stat().st_size // 2])
    result = await _submit(hass, _form(model=truncated))
    assert result["errors"] == {CONF_MODEL_PATH: "corrupt_model"}


async def test_runtime_missing_and_crashing(
    hass: HomeAssistant, allowed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # -S hides site-packages: the same interpreter, without llama-cpp-python.
    monkeypatch.setattr(sys, "executable", _interpreter(allowed, f'exec {sys.executable} -S "$@"'))
    result = await _submit(hass, _form())
    assert result["errors"] == {"base": "llama_cpp_missing"}
    assert "pip install llama-cpp-python" in result["description_placeholders"]["install"]

    # A wheel built for another CPU dies of SIGILL on import.
    monkeypatch.setattr(sys, "executable", _interpreter(allowed, "kill -ILL $$"))
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _form())
    assert result["errors"] == {"base": "llama_cpp_crashed"}


async def test_duplicate_model_is_aborted(hass: HomeAssistant, allowed: Path) -> None:
    MockConfigEntry(domain=DOMAIN, unique_id=str(MODEL.resolve()), data={}).add_to_hass(hass)
    result = await _submit(hass, _form())
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


def _embedded_entry(model: Path = MODEL, mmproj: Path = MMPROJ) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="tiny",
        unique_id=str(model),
        data={
            CONF_BACKEND: BACKEND_EMBEDDED,
            CONF_MODEL_PATH: str(model),
            CONF_MMPROJ_PATH: str(mmproj),
            CONF_CONTEXT_SIZE: 4096,
            CONF_TIMEOUT: 60,
        },
    )


async def test_model_that_disappears_raises_a_repair_issue_and_recovers(
    hass: HomeAssistant, allowed: Path
) -> None:
    model = allowed / "model.gguf"
    entry = _embedded_entry(model=model)
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"cannot_load_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_key == "load_failed"

    # The file comes back (a NAS mount returns): the retry loads it and the issue goes away.
    shutil.copy(MODEL, model)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"cannot_load_{entry.entry_id}") is None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_setup_refuses_a_path_outside_the_allowlist(hass: HomeAssistant) -> None:
    entry = _embedded_entry()
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"cannot_load_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_key == "path_not_allowed"


async def test_setup_without_runtime_raises_its_repair_issue(
    hass: HomeAssistant, allowed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", _interpreter(allowed, f'exec {sys.executable} -S "$@"'))
    entry = _embedded_entry()
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"cannot_load_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_key == "llama_cpp_missing"


async def test_reconfigure_embedded_paths(hass: HomeAssistant, allowed: Path) -> None:
    copy = allowed / "copy.gguf"
    shutil.copy(MODEL, copy)
    entry = _embedded_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "embedded"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _form(model=copy, **{CONF_THREADS: 1})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_MODEL_PATH] == str(copy)
    assert entry.data[CONF_THREADS] == 1
    assert entry.state is ConfigEntryState.LOADED
    assert await hass.config_entries.async_unload(entry.entry_id)
