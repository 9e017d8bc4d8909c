"""Miloco for Home Assistant: see with a home-tuned vision-language model."""

from __future__ import annotations

import asyncio

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryError, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, issue_registry as ir
from homeassistant.helpers.typing import ConfigType

from .ai_task_flow import AI_TASK_AVAILABLE
from .backend import create_backend, follow_active_server_limit
from .const import (
    BACKEND_EMBEDDED,
    CONF_BACKEND,
    CONF_MMPROJ_PATH,
    CONF_MODEL_PATH,
    DOMAIN,
    LLAMA_CPP_INSTALL_HINT,
    LOGGER,
)
from .detections import async_track_detections
from .engine.backends.errors import BackendError, InvalidAuth, ModelLoadError
from .flow_checks import async_check_model_files
from .health import backend_issue_id
from .llm_api import async_register_llm_api
from .reasons import reason_text
from .runtime import MilocoConfigEntry, async_apply_subentry_changes, async_create_runtime
from .server_keys import follow_refused_keys
from .services import async_register_services

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.EVENT,
    Platform.IMAGE,  # ecosystem hook (issue 14): the Last detection image
    Platform.SENSOR,
    Platform.SWITCH,
]
# ecosystem hook: the AI Task platform only where HA has it (2025.8+); 2025.4 has no Platform.AI_TASK.
if AI_TASK_AVAILABLE:
    PLATFORMS.append(Platform("ai_task"))

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the service actions and the LLM API (once, whatever the number of entries)."""
    async_register_services(hass)
    # One API for every entry, kept across reloads, so a conversation agent's choice of it stays valid.
    async_register_llm_api(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: MilocoConfigEntry) -> bool:
    """Connect to (or load) the entry's model and set up its platforms."""
    if entry.data[CONF_BACKEND] == BACKEND_EMBEDDED:
        await _async_check_embedded(hass, entry)
    backend = create_backend(hass, entry)
    try:
        # A fallback server refusing its key is named in Repairs and asks for reauth, while the others serve.
        entry.async_on_unload(follow_refused_keys(hass, entry, backend))
        await backend.async_start()
    except InvalidAuth as err:
        await backend.async_close()
        raise ConfigEntryAuthFailed(translation_domain=DOMAIN, translation_key="invalid_auth") from err
    except ModelLoadError as err:
        await backend.async_close()
        _raise_load_issue(hass, entry, "load_failed", reason=str(err))
    except BackendError as err:
        await backend.async_close()
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="backend_unavailable",
            translation_placeholders={"reason": reason_text(hass, err)},
        ) from err
    except BaseException:
        # Any other error of the loader (or a cancelled setup) must not leave a model loaded on every retry.
        await backend.async_close()
        raise
    ir.async_delete_issue(hass, DOMAIN, _issue_id(entry))
    try:
        runtime = await async_create_runtime(hass, entry, backend)
        entry.async_on_unload(follow_active_server_limit(backend, runtime.limiter))
        entry.runtime_data = runtime
        await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    except BaseException:
        # Whatever failed after the start (a cancelled setup included), an embedded model must not stay
        # loaded with nothing left to free it.
        await backend.async_close()
        raise
    # Assist's recent detections: a bounded record of the entry's bus events, from before the first frame.
    entry.async_on_unload(
        async_track_detections(
            hass, runtime.detections, entry.entry_id, lambda camera: runtime.watcher_for(camera) is not None
        )
    )
    # Entities exist before the first frame, so no early detection is lost.
    for watcher in runtime.watchers.values():
        watcher.async_start()
    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: MilocoConfigEntry) -> bool:
    """Unload the platforms, then stop every request and free the model."""
    runtime = entry.runtime_data
    # Never beside a subentry change: one half-applied would start a camera or add entities after the stop.
    async with runtime.update_lock:
        unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
        if unloaded:
            # A change that waited for the lock finds the entry closed and changes nothing.
            runtime.closed = True
            # Each stop is bounded; together they take no longer than one, however many cameras hang. A rule's
            # running action (a delay, a wait) stops with it.
            await asyncio.gather(
                *(watcher.async_stop() for watcher in runtime.watchers.values()),
                *(rule.async_close() for rule in runtime.rules.values()),
            )
            await runtime.backend.async_close()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Delete the entry's repair issues with it: they describe a backend that no longer exists."""
    ir.async_delete_issue(hass, DOMAIN, _issue_id(entry))
    ir.async_delete_issue(hass, DOMAIN, backend_issue_id(entry.entry_id))


async def _async_entry_updated(hass: HomeAssistant, entry: MilocoConfigEntry) -> None:
    """Reload for new backend settings; apply camera and rule changes live, touching only what they concern."""
    if dict(entry.data) != entry.runtime_data.data:
        hass.config_entries.async_schedule_reload(entry.entry_id)
        return
    await async_apply_subentry_changes(hass, entry)


async def _async_check_embedded(hass: HomeAssistant, entry: MilocoConfigEntry) -> None:
    """Refuse model files outside the allowed paths or unfit to load, and a runtime that cannot import safely."""
    model_path, mmproj_path = entry.data[CONF_MODEL_PATH], entry.data[CONF_MMPROJ_PATH]
    check = await async_check_model_files(hass, model_path, mmproj_path)
    reason = check.reason or ""
    if "path_not_allowed" in check.errors.values():
        _raise_load_issue(hass, entry, "path_not_allowed", reason=reason, fatal=True)
    if "base" in check.errors:
        _raise_load_issue(hass, entry, check.errors["base"], reason=reason)
    if check.errors:
        _raise_load_issue(hass, entry, "load_failed", reason=reason)


def _issue_id(entry: ConfigEntry) -> str:
    """Return the id of the entry's single 'cannot load' repair issue."""
    return f"cannot_load_{entry.entry_id}"


def _raise_load_issue(
    hass: HomeAssistant, entry: MilocoConfigEntry, key: str, *, reason: str, fatal: bool = False
) -> None:
    """Tell the user (in Repairs) why the embedded model cannot load, and stop this setup attempt."""
    placeholders = {"title": entry.title, "reason": reason, "install": LLAMA_CPP_INSTALL_HINT}
    LOGGER.warning("Miloco entry %s cannot load its model: %s", entry.title, reason)
    ir.async_create_issue(
        hass,
        DOMAIN,
        _issue_id(entry),
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=key,
        translation_placeholders=placeholders,
    )
    if fatal:
        raise ConfigEntryError(
            translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
        )
    # Not fatal: the user can install the runtime or restore the file, and the retry recovers.
    raise ConfigEntryNotReady(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )
