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
    CONF_CONTEXT_SIZE,
    CONF_MAX_CONCURRENT,
    CONF_MMPROJ_PATH,
    CONF_MODEL,
    CONF_MODEL_PATH,
    CONF_THREADS,
    CONF_TIMEOUT,
    CONF_URL,
    CONF_VERIFY_SSL,
    DEFAULT_CONTEXT_SIZE,
    DEFAULT_EMBEDDED_TIMEOUT,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_TIMEOUT,
)
from .engine.backends.base import VisionBackend
from .engine.backends.llama_cpp import LlamaCppBackend
from .engine.backends.openai_compat import OpenAICompatBackend


def create_remote_backend(hass: HomeAssistant, data: Mapping[str, Any]) -> OpenAICompatBackend:
    """Return a client for the OpenAI-compatible server in the entry data."""
    return OpenAICompatBackend(
        async_get_clientsession(hass, verify_ssl=data.get(CONF_VERIFY_SSL, True)),
        base_url=data[CONF_URL],
        model=data.get(CONF_MODEL, ""),
        api_key=data.get(CONF_API_KEY),
        timeout_s=float(data.get(CONF_TIMEOUT, DEFAULT_TIMEOUT)),
        max_concurrency=int(data.get(CONF_MAX_CONCURRENT, DEFAULT_MAX_CONCURRENT)),
    )


def create_backend(hass: HomeAssistant, data: Mapping[str, Any]) -> VisionBackend:
    """Return the (not yet started) backend for an entry's data."""
    if data[CONF_BACKEND] == BACKEND_EMBEDDED:
        return LlamaCppBackend(
            Path(data[CONF_MODEL_PATH]),
            Path(data[CONF_MMPROJ_PATH]),
            n_threads=data.get(CONF_THREADS),
            n_ctx=int(data.get(CONF_CONTEXT_SIZE, DEFAULT_CONTEXT_SIZE)),
            timeout_s=float(data.get(CONF_TIMEOUT, DEFAULT_EMBEDDED_TIMEOUT)),
        )
    return create_remote_backend(hass, data)
