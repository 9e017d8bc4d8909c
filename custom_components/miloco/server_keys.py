"""The API key of each server of a remote entry: a repair naming a server that refuses its key, and reauth.

Server 1 is the entry's own server; servers 2 and on are its fallback servers, in order. Nothing here shows
or logs a key: servers are named by their position and their URL without credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.selector import TextSelectorType
import voluptuous as vol

from .backend import fallback_server_data
from .const import CONF_API_KEY, CONF_FALLBACKS, CONF_URL, DOMAIN, LOGGER
from .engine.backends.base import VisionBackend
from .engine.backends.errors import BackendError, InvalidAuth
from .engine.backends.failover import FailoverBackend
from .engine.backends.openai_compat import redact_url
from .flow_checks import async_list_remote_models
from .form_fields import text_field
from .runtime import MilocoConfigEntry
from .settings import API_KEY_TEXT, TextSetting, form_errors


def key_field(index: int) -> str:
    """Return the reauth form's field for the key of the server at this index ("api_key" for the first)."""
    return CONF_API_KEY if index == 0 else f"{CONF_API_KEY}_{index + 1}"


def key_issue_id(entry_id: str, index: int) -> str:
    """Return the id of the repair issue that says the server at this index refuses its key."""
    return f"server_key_refused_{entry_id}_{index + 1}"


def server_settings(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Return the settings of every server of a remote entry, in order (the first is the entry's own)."""
    return [data, *(fallback_server_data(data, fallback) for fallback in data.get(CONF_FALLBACKS) or [])]


def server_name(data: Mapping[str, Any], index: int) -> str:
    """Return how a server is named to the user: its position and its URL without credentials."""
    return f"{index + 1} ({redact_url(server_settings(data)[index][CONF_URL])})"


def _delete_key_issues(hass: HomeAssistant, entry: MilocoConfigEntry) -> None:
    """Delete the entry's 'refuses its key' repair issues (the running backend raises them anew)."""
    for index in range(len(server_settings(entry.data))):
        ir.async_delete_issue(hass, DOMAIN, key_issue_id(entry.entry_id, index))


@callback
def follow_refused_keys(
    hass: HomeAssistant, entry: MilocoConfigEntry, backend: VisionBackend
) -> Callable[[], None]:
    """Raise a repair issue naming each server that refuses its key and start the reauth flow (once).

    Return a function that stops following and deletes the issues: the entry's unload calls it, and the
    next setup's backend says again which servers refuse. A single server's refusal fails the setup (or a
    check) with InvalidAuth instead, which starts the reauth flow in the same way.
    """
    if not isinstance(backend, FailoverBackend):
        return lambda: None
    _delete_key_issues(hass, entry)

    @callback
    def key_refused(index: int, refused: bool) -> None:
        issue_id = key_issue_id(entry.entry_id, index)
        if not refused:
            LOGGER.info(
                "Model server %s of %s takes its API key again", server_name(entry.data, index), entry.title
            )
            ir.async_delete_issue(hass, DOMAIN, issue_id)
            return
        LOGGER.warning(
            "Model server %s of %s refuses its API key; re-authenticate it",
            server_name(entry.data, index),
            entry.title,
        )
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="server_key_refused",
            translation_placeholders={
                "title": entry.title,
                "position": str(index + 1),
                "url": redact_url(server_settings(entry.data)[index][CONF_URL]),
            },
        )
        # Home Assistant starts no second reauth flow for an entry that has one in progress.
        entry.async_start_reauth(hass)

    remove = backend.add_auth_listener(key_refused)

    def stop() -> None:
        remove()
        _delete_key_issues(hass, entry)

    return stop


@callback
def refused_servers(hass: HomeAssistant, entry: MilocoConfigEntry) -> list[int]:
    """Return the servers that refuse their key, as the repair issues say; all of them when none is raised.

    No issue is raised when setup failed because every server refused its key (or the entry has one server).
    """
    issues = ir.async_get(hass)
    count = len(server_settings(entry.data))
    refused = [
        index for index in range(count) if issues.async_get_issue(DOMAIN, key_issue_id(entry.entry_id, index))
    ]
    return refused or list(range(count))


def reauth_schema(data: Mapping[str, Any]) -> vol.Schema:
    """Return the reauth form: one key field per server of the entry (a stored key is never shown)."""
    return vol.Schema(
        {
            vol.Optional(key_field(index)): text_field(API_KEY_TEXT, TextSelectorType.PASSWORD)
            for index in range(len(server_settings(data)))
        }
    )


def _key_settings(count: int) -> list[TextSetting]:
    """Return the checks of each key field (the same as the API key field of the server forms)."""
    return [TextSetting(key=key_field(index), max_length=API_KEY_TEXT.max_length) for index in range(count)]


def _with_key(data: Mapping[str, Any], index: int, api_key: str | None) -> dict[str, Any]:
    """Return a copy of the entry data with the key of one server replaced (removed when None)."""
    changed = dict(data)
    fallbacks = [dict(fallback) for fallback in data.get(CONF_FALLBACKS) or []]
    if fallbacks:
        changed[CONF_FALLBACKS] = fallbacks
    server = changed if index == 0 else fallbacks[index - 1]
    server.pop(CONF_API_KEY, None)
    if api_key:
        server[CONF_API_KEY] = api_key
    return changed


async def async_check_new_keys(
    hass: HomeAssistant, data: Mapping[str, Any], values: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """Return the entry data with the new keys, each accepted by its server; or the form's errors.

    With fallback servers a field left empty keeps that server's stored key (and one key at least is
    needed); a single server's empty field removes its key, for a server that no longer asks for one.
    Each server whose key changes is asked for its model list with the new key before anything is saved.
    """
    count = len(server_settings(data))
    errors = form_errors(_key_settings(count), values)
    if errors:
        return None, errors
    entered = {index: values.get(key_field(index)) or None for index in range(count)}
    if count > 1:
        entered = {index: api_key for index, api_key in entered.items() if api_key}
    if not entered:
        return None, {"base": "key_required"}
    changed = dict(data)
    for index, api_key in entered.items():
        changed = _with_key(changed, index, api_key)
    settings = server_settings(changed)
    results = await asyncio.gather(
        *(async_list_remote_models(hass, settings[index]) for index in entered), return_exceptions=True
    )
    for index, result in zip(entered, results, strict=True):
        if isinstance(result, InvalidAuth):
            errors[key_field(index)] = "invalid_auth"
        elif isinstance(result, BackendError):
            errors.setdefault("base", result.reason)
        elif isinstance(result, BaseException):
            raise result
    return (None, errors) if errors else (changed, {})
