"""Build the engine backend an entry describes, with Home Assistant's shared HTTP session."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import (
    BACKEND_EMBEDDED,
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_MMPROJ_PATH,
    CONF_MODEL,
    CONF_MODEL_PATH,
    CONF_URL,
    CONF_VERIFY_SSL,
)
from .engine.backends.base import VisionBackend
from .engine.backends.llama_cpp import LlamaCppBackend
from .engine.backends.openai_compat import OpenAICompatBackend
from .settings import CONTEXT_SIZE, EMBEDDED_TIMEOUT, MAX_CONCURRENT, REMOTE_TIMEOUT, THREADS, stored_value


def create_remote_backend(hass: HomeAssistant, data: Mapping[str, Any]) -> OpenAICompatBackend:
    """Return a client for the OpenAI-compatible server in the entry data."""
    return OpenAICompatBackend(
        async_get_clientsession(hass, verify_ssl=data.get(CONF_VERIFY_SSL, True)),
        base_url=data[CONF_URL],
        model=data.get(CONF_MODEL, ""),
        api_key=data.get(CONF_API_KEY),
        timeout_s=float(stored_value(REMOTE_TIMEOUT, data)[0]),
        max_concurrency=int(stored_value(MAX_CONCURRENT, data)[0]),
    )


def create_backend(hass: HomeAssistant, data: Mapping[str, Any]) -> VisionBackend:
    """Return the (not yet started) backend for an entry's data."""
    if data[CONF_BACKEND] == BACKEND_EMBEDDED:
        return LlamaCppBackend(
            Path(data[CONF_MODEL_PATH]),
            Path(data[CONF_MMPROJ_PATH]),
            n_threads=stored_value(THREADS, data)[0],
            n_ctx=int(stored_value(CONTEXT_SIZE, data)[0]),
            timeout_s=float(stored_value(EMBEDDED_TIMEOUT, data)[0]),
        )
    return create_remote_backend(hass, data)
