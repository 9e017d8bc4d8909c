"""Diagnostics: the entry and its backend, with the API key and URL credentials redacted."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .const import CONF_API_KEY, CONF_FALLBACKS, CONF_URL
from .engine.backends.openai_compat import redact_url
from .runtime import MilocoConfigEntry

# The unique id embeds the server URL, which can carry credentials.
TO_REDACT = {CONF_API_KEY, "unique_id"}


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
        return {"entry": async_redact_data(entry_dict, TO_REDACT), "backend": None, "cameras": {}}
    cameras = {
        subentry_id: {
            "available": watcher.available,
            "running": watcher.running,
            "config": asdict(watcher.config),
            "stats": asdict(watcher.stats),
            "buffered_frames": watcher.buffered_frames,
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
        }
        for subentry_id, rule in runtime.rules.items()
    }
    return {
        "entry": async_redact_data(entry_dict, TO_REDACT),
        "backend": runtime.backend.diagnostics(),
        "limiter": {"limit": runtime.limiter.limit, "in_flight": runtime.limiter.in_flight},
        "cameras": cameras,
        "rules": rules,
    }
