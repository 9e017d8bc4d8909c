"""Small builders shared by the HA-side tests."""

from __future__ import annotations

from typing import Any, Protocol

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.config_flow import remote_unique_id
from custom_components.miloco.const import (
    BACKEND_REMOTE,
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_MAX_CONCURRENT,
    CONF_MODEL,
    CONF_TIMEOUT,
    CONF_URL,
    CONF_VERIFY_SSL,
    DOMAIN,
)
from custom_components.miloco.devices import async_device_id


class Server(Protocol):
    """A model server on loopback (the scripted one, or llama.cpp's own)."""

    @property
    def url(self) -> str:
        """Return the server's root URL."""


def remote_entry(
    server: Server,
    *,
    model: str = "mimo-vl-miloco-7b",
    api_key: str | None = None,
    subentries: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> MockConfigEntry:
    """Return a remote-backend entry pointing at the loopback server, with optional subentries."""
    url = f"{server.url}/v1"
    data: dict[str, Any] = {
        CONF_BACKEND: BACKEND_REMOTE,
        CONF_URL: url,
        CONF_MODEL: model,
        CONF_VERIFY_SSL: True,
        CONF_TIMEOUT: 10,
        CONF_MAX_CONCURRENT: 2,
        **extra,
    }
    if api_key is not None:
        data[CONF_API_KEY] = api_key
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"{model} on 127.0.0.1",
        unique_id=remote_unique_id(url, model),
        data=data,
        subentries_data=subentries or [],  # type: ignore[arg-type]
    )


def find_device(hass: HomeAssistant, entry: MockConfigEntry, subentry_id: str) -> dr.DeviceEntry | None:
    """Return the device of a subentry (by listing the entry's devices: works on every HA line)."""
    device_id = async_device_id(hass, entry.entry_id, subentry_id)
    return dr.async_get(hass).async_get(device_id) if device_id else None
