"""The camera subentry flow: which camera to watch, what to detect on it, and how to capture it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.camera import CameraEntityFeature
from homeassistant.const import ATTR_SUPPORTED_FEATURES
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import EntitySelector, EntitySelectorConfig
import voluptuous as vol

from .capture import camera_exists
from .const import (
    CAPTURE_STREAM,
    CONF_ACTIVITIES,
    CONF_CAMERA,
    CONF_CAPTURE_MODE,
    CONF_FPS,
    CONF_GESTURES,
    CONF_MOTION_ENTITY,
    CONF_PRESENCE,
    CONF_WINDOW_FRAMES,
    SUBENTRY_CAMERA,
)
from .engine.stream import pyav_available
from .form_fields import field, marker, schema_fields
from .settings import (
    CAMERA_SETTINGS,
    CHANGE_THRESHOLD,
    MAX_WINDOW_SECONDS,
    SECTION_CAPTURE,
    defaults,
    section_keys,
)
from .subentry_form import FormSubentryFlow

# The settings of a camera a rule adds on its own.
DEFAULTS: Mapping[str, Any] = defaults(CAMERA_SETTINGS)

_CAPTURE_KEYS = (*section_keys(CAMERA_SETTINGS, SECTION_CAPTURE), CONF_MOTION_ENTITY)


def _capture_fields() -> dict[vol.Marker, Any]:
    """Return the capture section's fields: the table's settings, and the motion sensor."""
    fields: dict[vol.Marker, Any] = {}
    for setting in CAMERA_SETTINGS:
        if setting.section != SECTION_CAPTURE:
            continue
        fields[marker(setting)] = field(setting)
        if setting is CHANGE_THRESHOLD:
            # The motion sensor overrides the change threshold, so it is shown right after it.
            fields[vol.Optional(CONF_MOTION_ENTITY)] = EntitySelector(
                EntitySelectorConfig(domain="binary_sensor")
            )
    return fields


CAMERA_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_CAMERA): EntitySelector(EntitySelectorConfig(domain="camera")),
        **schema_fields(CAMERA_SETTINGS, None),
        vol.Required(SECTION_CAPTURE): section(vol.Schema(_capture_fields()), {"collapsed": True}),
    }
)


def _window_errors(data: Mapping[str, Any]) -> dict[str, str]:
    """Return an error when the window of frames spans too long (the only check across two settings)."""
    if data[CONF_WINDOW_FRAMES] / data[CONF_FPS] > MAX_WINDOW_SECONDS:
        return {SECTION_CAPTURE: "window_too_long"}
    return {}


class CameraSubentryFlow(FormSubentryFlow):
    """Add or change a watched camera."""

    schema = CAMERA_SCHEMA
    section = SECTION_CAPTURE
    section_keys = _CAPTURE_KEYS
    settings = CAMERA_SETTINGS

    def placeholders(self) -> dict[str, str]:
        """Return the longest window a check may span, for its error text."""
        return {"max_window_s": f"{MAX_WINDOW_SECONDS:g}"}

    def normalize(self, data: dict[str, Any]) -> None:
        """Store an unticked checklist as empty, and no motion sensor as no key."""
        data.setdefault(CONF_GESTURES, [])
        data.setdefault(CONF_ACTIVITIES, [])
        if not data.get(CONF_MOTION_ENTITY):
            data.pop(CONF_MOTION_ENTITY, None)

    async def async_errors(self, data: dict[str, Any]) -> dict[str, str]:
        """Return errors about the camera, what to detect, and the capture settings."""
        errors = self._camera_errors(data) or _window_errors(data)
        # The first import of PyAV takes a moment: in the executor, not on the event loop.
        if (
            not errors
            and data[CONF_CAPTURE_MODE] == CAPTURE_STREAM
            and not await self.hass.async_add_executor_job(pyav_available)
        ):
            errors = {SECTION_CAPTURE: "stream_unavailable"}
        return errors

    def title(self, data: Mapping[str, Any]) -> str:
        """Return the camera's friendly name, the natural title of its device."""
        return self.friendly_name(data[CONF_CAMERA])

    def _camera_errors(self, data: Mapping[str, Any]) -> dict[str, str]:
        """Return errors about the chosen entities and what to detect."""
        camera_id = data[CONF_CAMERA]
        state = self.hass.states.get(camera_id)
        if state is None or not camera_exists(self.hass, camera_id):
            return {CONF_CAMERA: "camera_not_found"}
        this = self._get_reconfigure_subentry().subentry_id if self.reconfiguring else None
        for subentry in self._get_entry().subentries.values():
            if (
                subentry.subentry_type == SUBENTRY_CAMERA
                and subentry.subentry_id != this
                and subentry.data.get(CONF_CAMERA) == camera_id
            ):
                return {CONF_CAMERA: "camera_already_watched"}
        if not (data[CONF_GESTURES] or data[CONF_ACTIVITIES] or data[CONF_PRESENCE]):
            return {"base": "nothing_to_detect"}
        supports_stream = int(state.attributes.get(ATTR_SUPPORTED_FEATURES, 0)) & CameraEntityFeature.STREAM
        if data[CONF_CAPTURE_MODE] == CAPTURE_STREAM and not supports_stream:
            return {SECTION_CAPTURE: "no_stream"}
        motion = data.get(CONF_MOTION_ENTITY)
        if motion and self.hass.states.get(motion) is None:
            return {SECTION_CAPTURE: "motion_entity_not_found"}
        return {}
