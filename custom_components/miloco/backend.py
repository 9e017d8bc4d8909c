"""Build the engine backend an entry describes, with Home Assistant's shared HTTP session."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import (
    BACKEND_EMBEDDED,
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_FALLBACKS,
    CONF_MAX_CONCURRENT,
    CONF_MMPROJ_PATH,
    CONF_MODEL,
    CONF_MODEL_PATH,
    CONF_TIMEOUT,
    CONF_URL,
    CONF_VERIFY_SSL,
)
from .engine.backends.base import VisionBackend
from .engine.backends.failover import FailoverBackend
from .engine.backends.llama_cpp import LlamaCppBackend
from .engine.backends.openai_compat import OpenAICompatBackend
from .engine.scheduling import FairLimiter
from .runtime import MilocoConfigEntry
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


def fallback_server_data(data: Mapping[str, Any], fallback: Mapping[str, Any]) -> dict[str, Any]:
    """Return the settings of one fallback server: its own URL, key, model and SSL check; the entry's timeout."""
    return {
        CONF_URL: fallback[CONF_URL],
        CONF_MODEL: fallback.get(CONF_MODEL, data.get(CONF_MODEL, "")),
        CONF_API_KEY: fallback.get(CONF_API_KEY),
        CONF_VERIFY_SSL: fallback.get(CONF_VERIFY_SSL, True),
        CONF_TIMEOUT: stored_value(REMOTE_TIMEOUT, data)[0],
        # A server may take fewer (a CPU box) or more (a router) requests at once than the first one.
        CONF_MAX_CONCURRENT: stored_value(MAX_CONCURRENT, fallback)[0]
        if CONF_MAX_CONCURRENT in fallback
        else stored_value(MAX_CONCURRENT, data)[0],
    }


def create_backend(hass: HomeAssistant, entry: MilocoConfigEntry) -> VisionBackend:
    """Return the (not yet started) backend for an entry: one server, or the first with its fallbacks."""
    data = entry.data
    if data[CONF_BACKEND] == BACKEND_EMBEDDED:
        return LlamaCppBackend(
            Path(data[CONF_MODEL_PATH]),
            Path(data[CONF_MMPROJ_PATH]),
            n_threads=stored_value(THREADS, data)[0],
            n_ctx=int(stored_value(CONTEXT_SIZE, data)[0]),
            timeout_s=float(stored_value(EMBEDDED_TIMEOUT, data)[0]),
        )
    fallbacks = data.get(CONF_FALLBACKS) or []
    if not fallbacks:
        return create_remote_backend(hass, data)
    servers = [create_remote_backend(hass, data)] + [
        create_remote_backend(hass, fallback_server_data(data, fallback)) for fallback in fallbacks
    ]
    return FailoverBackend(
        servers,
        # The prober belongs to the entry: Home Assistant cancels it on unload even if close is never reached.
        start_task=lambda coro, name: entry.async_create_background_task(hass, coro, name),
    )


def follow_active_server_limit(backend: VisionBackend, limiter: FairLimiter) -> Callable[[], None]:
    """Keep the entry's check limiter at the active server's limit; return a function that stops it.

    The limiter is built from the backend's max_concurrency, the highest limit of any server. A fallback
    that takes fewer requests at once would queue the surplus in its own slots, where a check grows stale
    while it waits (the wait is not counted against the server). At the active server's limit the limiter
    skips those checks instead, as it does for one server.
    """
    if not isinstance(backend, FailoverBackend):
        return lambda: None

    def follow() -> None:
        limiter.limit = backend.active_max_concurrency

    follow()
    return backend.add_listener(follow)
