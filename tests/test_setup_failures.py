"""Setup and backend failures told in words and cleaned up: translated reasons, a loader error frees the model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest

from custom_components import miloco
from custom_components.miloco import health
from custom_components.miloco.const import DOMAIN
from custom_components.miloco.engine.backends import errors as backend_errors
from custom_components.miloco.engine.backends.base import VisionBackend
from custom_components.miloco.engine.backends.errors import BackendClosed
from custom_components.miloco.engine.probe import probe_request
from custom_components.miloco.reasons import reason_text

from .helpers import remote_entry
from .model_server import FakeModelServer
from .test_config_flow_embedded import FIXTURES, _embedded_entry


def _all_reasons() -> set[str]:
    """Return the reason key of every backend error."""
    reasons: set[str] = set()
    pending: list[type[backend_errors.BackendError]] = [backend_errors.BackendError]
    while pending:
        cls = pending.pop()
        reasons.add(cls.reason)
        pending.extend(cls.__subclasses__())
    return reasons


def _keeping(create: Callable[..., VisionBackend], made: list[VisionBackend]) -> Callable[..., VisionBackend]:
    """Return the backend factory, keeping each backend it makes for the test to inspect."""

    def create_and_keep(*args: Any) -> VisionBackend:
        made.append(create(*args))
        return made[-1]

    return create_and_keep


async def test_every_reason_has_a_text(hass: HomeAssistant) -> None:
    assert await async_setup_component(hass, DOMAIN, {})
    for reason in _all_reasons():
        text = reason_text(hass, reason)
        assert text != reason, reason
        assert "_" not in text, text
    assert reason_text(hass, backend_errors.CannotConnect("refused")) == "the model server cannot be reached"
    # A key no text exists for is shown as it is rather than as nothing.
    assert reason_text(hass, "brand_new_reason") == "brand_new_reason"


async def test_a_backend_not_ready_says_why_in_words(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    entry = remote_entry(model_server)
    await model_server.stop()
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason == "The model backend is not available (the model server cannot be reached)"


async def test_the_backend_failing_repair_says_why_in_words(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await async_setup_component(hass, DOMAIN, {})
    monkeypatch.setattr(health, "BACKEND_ISSUE_AFTER_S", 0.0)
    backend_health = health.BackendHealth(hass, "entry-id", "Desk GPU")
    backend_health.record_failure(backend_errors.ServerError("CUDA out of memory"))
    issue = ir.async_get(hass).async_get_issue(DOMAIN, backend_health.issue_id)
    assert issue is not None
    assert issue.translation_placeholders == {"title": "Desk GPU", "reason": "the server failed to answer"}


async def test_any_loader_error_frees_the_model(hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch) -> None:
    llama_cpp = pytest.importorskip("llama_cpp", reason="the embedded runtime is built by scripts/setup")
    hass.config.allowlist_external_dirs = {str(FIXTURES)}
    made: list[VisionBackend] = []

    def out_of_memory(*args: Any, **kwargs: Any) -> Any:
        # Not one of the errors the loader turns into ModelLoadError: it reaches setup as it is.
        raise MemoryError("cannot allocate the model's buffers")

    monkeypatch.setattr(miloco, "create_backend", _keeping(miloco.create_backend, made))
    monkeypatch.setattr(llama_cpp, "Llama", out_of_memory)
    entry = _embedded_entry()
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    (backend,) = made
    request = await hass.async_add_executor_job(probe_request)
    with pytest.raises(BackendClosed):
        await backend.async_complete(request)
