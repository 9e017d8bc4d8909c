"""Diagnostics: the entry and its backend, with the API key and URL credentials redacted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .const import (
    BACKEND_EMBEDDED,
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_FALLBACKS,
    CONF_URL,
    SUBENTRY_CAMERA,
    SUBENTRY_RULE,
)
from .engine.backends.openai_compat import redact_url
from .runtime import MilocoConfigEntry
from .settings import (
    CAMERA_SETTINGS,
    CONTEXT_SIZE,
    EMBEDDED_TIMEOUT,
    MAX_CONCURRENT,
    REMOTE_TIMEOUT,
    RULE_SETTINGS,
    THREADS,
    Setting,
    stored_value,
)

# The unique id embeds the server URL, which can carry credentials.
TO_REDACT = {CONF_API_KEY, "unique_id"}


_SUBENTRY_SETTINGS: dict[str, tuple[Setting, ...]] = {
    SUBENTRY_CAMERA: CAMERA_SETTINGS,
    SUBENTRY_RULE: RULE_SETTINGS,
}


def _settings_listing(settings: tuple[Setting, ...], data: Mapping[str, Any]) -> dict[str, Any]:
    """Return each table setting: the value in use, its default, and what is wrong with a bad stored value."""
    listing: dict[str, Any] = {}
    for setting in settings:
        value, problem = stored_value(setting, data)
        listing[setting.key] = {"value": value, "default": setting.default, "stored": setting.key in data}
        if problem is not None:
            listing[setting.key]["problem"] = problem
    return listing


def _all_settings(entry: MilocoConfigEntry) -> dict[str, Any]:
    """Return the settings in use by the backend and by every subentry (readable even when setup failed)."""
    embedded = entry.data.get(CONF_BACKEND) == BACKEND_EMBEDDED
    backend: tuple[Setting, ...] = (
        (THREADS, CONTEXT_SIZE, EMBEDDED_TIMEOUT) if embedded else (REMOTE_TIMEOUT, MAX_CONCURRENT)
    )
    return {
        "backend": _settings_listing(backend, entry.data),
        "subentries": {
            subentry_id: _settings_listing(_SUBENTRY_SETTINGS[subentry.subentry_type], subentry.data)
            for subentry_id, subentry in entry.subentries.items()
            if subentry.subentry_type in _SUBENTRY_SETTINGS
        },
    }


def logprobs_support(backend: object) -> str:
    """Return whether the model gives log-probabilities: 'untried', 'accepted', 'refused' (or 'unknown').

    Without them checks keep the model's plain yes/no and every threshold is ignored: a fact, never an error.
    With fallback servers it is the serving server's.
    """
    support = getattr(backend, "logprobs_support", None)
    return support if isinstance(support, str) else "unknown"


async def async_get_config_entry_diagnostics(hass: HomeAssistant, entry: MilocoConfigEntry) -> dict[str, Any]:
    """Return what support needs to see, and no secret."""
    entry_dict = entry.as_dict()
    data = dict(entry_dict["data"])
    if CONF_URL in data:
        data[CONF_URL] = redact_url(data[CONF_URL])
    # Each fallback server's URL can carry credentials too (its api_key is redacted below, at any depth).
    if isinstance(data.get(CONF_FALLBACKS), list):
        data[CONF_FALLBACKS] = [
            {**server, CONF_URL: redact_url(server[CONF_URL])}
            if isinstance(server, dict) and isinstance(server.get(CONF_URL), str)
            else server
            for server in data[CONF_FALLBACKS]
        ]
    entry_dict["data"] = data
    # An entry that failed to set up has no runtime data, and diagnostics matter most then.
    runtime = getattr(entry, "runtime_data", None)
    if runtime is None:
        return {
            "entry": async_redact_data(entry_dict, TO_REDACT),
            "settings": _all_settings(entry),
            "backend": None,
            "cameras": {},
        }
    cameras = {
        subentry_id: {
            "available": watcher.available,
            "running": watcher.running,
            "config": asdict(watcher.config),
            "stats": asdict(watcher.stats),
            "buffered_frames": watcher.buffered_frames,
            # The last analysis's P(yes) by label (empty when the server gave no log-probabilities).
            "last_probabilities": dict(watcher.state.probabilities),
        }
        for subentry_id, watcher in runtime.watchers.items()
    }
    rules = {
        subentry_id: {
            "enabled": rule.enabled,
            "holds": rule.is_on,
            "config": asdict(rule.config),
            "last_camera": rule.last_camera,
            "last_reason": rule.last_reason,
            "last_probability": rule.last_probability,
        }
        for subentry_id, rule in runtime.rules.items()
    }
    return {
        "entry": async_redact_data(entry_dict, TO_REDACT),
        "settings": _all_settings(entry),
        "backend": runtime.backend.diagnostics(),
        "logprobs": logprobs_support(runtime.backend),
        "limiter": {"limit": runtime.limiter.limit, "in_flight": runtime.limiter.in_flight},
        "cameras": cameras,
        "rules": rules,
    }
