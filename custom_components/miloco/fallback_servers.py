"""Fallback servers of a remote backend entry: the form that adds one, and its checks (the same probe)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import BooleanSelector, TextSelectorType
import voluptuous as vol

from .const import CONF_API_KEY, CONF_MODEL, CONF_TIMEOUT, CONF_URL, CONF_VERIFY_SSL
from .engine.backends.openai_compat import normalize_base_url
from .flow_checks import async_probe_remote
from .form_fields import text_field
from .settings import API_KEY_TEXT, MODEL_TEXT, URL_TEXT, form_errors

# The form field that asks for one more server after this one; it is not stored.
CONF_ADD_FALLBACK: Final = "add_fallback"
# More servers than this only lengthen the wait before a check gives up.
MAX_FALLBACKS: Final = 4
FALLBACK_TEXTS: Final = (URL_TEXT, API_KEY_TEXT, MODEL_TEXT)


def fallback_schema(more: bool) -> vol.Schema:
    """Return the form of one fallback server; `more` ticks 'add another' (stored ones follow)."""
    return vol.Schema(
        {
            vol.Optional(CONF_URL): text_field(URL_TEXT, TextSelectorType.URL),
            vol.Optional(CONF_API_KEY): text_field(API_KEY_TEXT, TextSelectorType.PASSWORD),
            vol.Optional(CONF_MODEL): text_field(MODEL_TEXT),
            vol.Required(CONF_VERIFY_SSL, default=True): BooleanSelector(),
            vol.Required(CONF_ADD_FALLBACK, default=more): BooleanSelector(),
        }
    )


def wants_no_server(values: Mapping[str, Any]) -> bool:
    """Return True when the form's address was left empty: no (more) fallback server."""
    url = values.get(CONF_URL)
    return url is None or (isinstance(url, str) and not url.strip())


async def async_check_fallback(
    hass: HomeAssistant,
    values: Mapping[str, Any],
    *,
    primary: Mapping[str, Any],
    taken: Sequence[Mapping[str, Any]],
    stored: Mapping[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """Return the fallback server as stored, or the form errors; it must answer the probe as the first did.

    An empty model takes the first server's; an empty key keeps the key stored for the same address.
    """
    checked = dict(values)
    if errors := form_errors(FALLBACK_TEXTS, checked):
        return None, errors
    try:
        url = normalize_base_url(checked[CONF_URL])
    except ValueError:
        return None, {CONF_URL: "invalid_url"}
    model = str(checked.get(CONF_MODEL) or "").strip() or str(primary[CONF_MODEL])
    fallback: dict[str, Any] = {
        CONF_URL: url,
        CONF_MODEL: model,
        CONF_VERIFY_SSL: bool(checked.get(CONF_VERIFY_SSL, True)),
    }
    api_key = checked.get(CONF_API_KEY)
    if not api_key and stored is not None and stored.get(CONF_URL) == url:
        api_key = stored.get(CONF_API_KEY)
    if api_key:
        fallback[CONF_API_KEY] = api_key
    if any(server[CONF_URL] == url and server[CONF_MODEL] == model for server in (primary, *taken)):
        return None, {CONF_URL: "fallback_duplicate"}
    error = await async_probe_remote(hass, {**fallback, CONF_TIMEOUT: primary[CONF_TIMEOUT]})
    if error is not None:
        return None, {CONF_MODEL if error == "model_not_found" else "base": error}
    return fallback, {}
