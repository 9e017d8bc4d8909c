"""The backends' reason keys ("cannot_connect") as text for people, for repairs and error messages."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.translation import async_get_cached_translations

from .const import DOMAIN
from .engine.backends.errors import BackendError

# Each reason's text is the exception `reason_<key>` in strings.json: custom integrations may add any key
# under `exceptions`, and Home Assistant loads that category with the integration.
REASON_PREFIX = "reason_"


@callback
def reason_text(hass: HomeAssistant, err: BackendError | str) -> str:
    """Return a backend error's reason in the user's language (English, else the bare key, when missing)."""
    key = err if isinstance(err, str) else err.reason
    translation_key = f"component.{DOMAIN}.exceptions.{REASON_PREFIX}{key}.message"
    for language in dict.fromkeys((hass.config.language, "en")):
        translations = async_get_cached_translations(hass, language, "exceptions", DOMAIN)
        if text := translations.get(translation_key):
            return str(text).rstrip(".")
    return key
