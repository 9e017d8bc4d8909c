"""Logbook lines for Miloco's bus events, e.g. "Wave for light triggered on Living room: someone waving"."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_ENTITY_ID,
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN, EVENT_MILOCO
from .engine.labels import ALL_LABELS

type Describe = Callable[[Event], dict[str, str]]

_LABEL_NAMES = {label.key: label.prompt_name for label in ALL_LABELS}


@callback
def async_describe_events(
    hass: HomeAssistant, async_describe_event: Callable[[str, str, Describe], None]
) -> None:
    """Tell the logbook how to word every miloco_event."""

    @callback
    def describe(event: Event) -> dict[str, str]:
        """Return the logbook entry of one miloco_event."""
        return describe_miloco_event(hass, event.data)

    async_describe_event(DOMAIN, EVENT_MILOCO, describe)


@callback
def describe_miloco_event(hass: HomeAssistant, data: Mapping[str, Any]) -> dict[str, str]:
    """Return the name and message of a miloco_event's logbook line (the name comes first in the line)."""
    camera_id = data.get("camera_entity_id")
    kind = str(data.get("type", ""))
    # A rule's event names the rule's device, a camera's event the camera's.
    camera = _camera_name(hass, camera_id, None if kind == "rule_triggered" else data.get("device_id"))
    if kind == "rule_triggered":
        name = str(data.get("rule") or "Miloco rule")
        message = f"triggered on {camera}"
        if reason := data.get("reason"):
            message += f": {reason}"
    else:
        name, message = camera, _camera_message(kind, data)
    entry = {LOGBOOK_ENTRY_NAME: name, LOGBOOK_ENTRY_MESSAGE: message}
    if isinstance(camera_id, str) and camera_id:
        # The line links to the camera that saw it.
        entry[LOGBOOK_ENTRY_ENTITY_ID] = camera_id
    return entry


def _camera_message(kind: str, data: Mapping[str, Any]) -> str:
    """Return what a camera saw, worded for the logbook."""
    if kind == "gesture":
        return f"saw a {_label(data.get('gesture'))} gesture"
    if kind == "activity_started":
        return f"sees {_label(data.get('activity'))}"
    if kind == "activity_ended":
        return f"no longer sees {_label(data.get('activity'))}"
    if kind == "presence_started":
        return "sees someone"
    if kind == "presence_ended":
        return "no longer sees anyone"
    # An event type this version does not word yet still gets a readable line.
    return f"reported {kind.replace('_', ' ') or 'an event'}"


def _label(key: object) -> str:
    """Return a gesture's or activity's English name (its key when unknown)."""
    return _LABEL_NAMES.get(str(key), str(key).replace("_", " "))


def _camera_name(hass: HomeAssistant, camera_id: object, device_id: object) -> str:
    """Return the camera's name as the user knows it: its entity's name, else its Miloco device's."""
    if isinstance(camera_id, str) and (state := hass.states.get(camera_id)) is not None:
        return state.name
    if isinstance(device_id, str) and (device := dr.async_get(hass).async_get(device_id)) is not None:
        return device.name_by_user or device.name or _camera_id_or(camera_id)
    return _camera_id_or(camera_id)


def _camera_id_or(camera_id: object, fallback: str = "a camera") -> str:
    """Return the camera entity id, or a neutral word when the event names none."""
    return camera_id if isinstance(camera_id, str) and camera_id else fallback
