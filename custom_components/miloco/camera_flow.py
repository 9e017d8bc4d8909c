"""The camera subentry flow: which camera to watch, what to detect on it, and how to capture it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.camera import CameraEntityFeature
from homeassistant.const import ATTR_SUPPORTED_FEATURES
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
import voluptuous as vol

from .capture import camera_exists
from .const import (
    CAPTURE_SNAPSHOT,
    CAPTURE_STREAM,
    CONF_ACTIVITIES,
    CONF_CAMERA,
    CONF_CAPTURE_MODE,
    CONF_CHANGE_THRESHOLD,
    CONF_CHECK_INTERVAL,
    CONF_DETAIL,
    CONF_FPS,
    CONF_GESTURES,
    CONF_HEARTBEAT,
    CONF_HOLD_TIME,
    CONF_MOTION_ENTITY,
    CONF_PRESENCE,
    CONF_PROMPT_MODE,
    CONF_SAVE_FRAMES,
    CONF_SAVED_FRAMES_MAX,
    CONF_WINDOW_FRAMES,
    DEFAULT_CHANGE_THRESHOLD,
    DEFAULT_CHECK_INTERVAL,
    DEFAULT_FPS,
    DEFAULT_HEARTBEAT,
    DEFAULT_HOLD_TIME,
    DEFAULT_SAVED_FRAMES_MAX,
    DEFAULT_WINDOW_FRAMES,
    MAX_CHECK_INTERVAL,
    MAX_FPS,
    MAX_HEARTBEAT,
    MAX_HOLD_TIME,
    MAX_SAVED_FRAMES,
    MAX_WINDOW_FRAMES,
    MAX_WINDOW_SECONDS,
    MIN_CHECK_INTERVAL,
    MIN_FPS,
    PROMPT_COMBINED,
    PROMPT_PER_CONDITION,
    SUBENTRY_CAMERA,
)
from .engine.frames import DEFAULT_DETAIL, DETAIL_BUDGETS
from .engine.labels import ACTIVITIES, GESTURES
from .engine.stream import pyav_available
from .subentry_form import FormSubentryFlow

SECTION_CAPTURE = "capture"
_CAPTURE_KEYS = (
    CONF_CAPTURE_MODE,
    CONF_FPS,
    CONF_WINDOW_FRAMES,
    CONF_CHECK_INTERVAL,
    CONF_DETAIL,
    CONF_CHANGE_THRESHOLD,
    CONF_MOTION_ENTITY,
    CONF_HEARTBEAT,
    CONF_HOLD_TIME,
    CONF_PROMPT_MODE,
    CONF_SAVE_FRAMES,  # ecosystem (issue 14)
    CONF_SAVED_FRAMES_MAX,  # ecosystem (issue 14)
)

DEFAULTS: Mapping[str, Any] = {
    CONF_GESTURES: [label.key for label in GESTURES],
    CONF_ACTIVITIES: [label.key for label in ACTIVITIES],
    CONF_PRESENCE: True,
    CONF_CAPTURE_MODE: CAPTURE_SNAPSHOT,
    CONF_FPS: DEFAULT_FPS,
    CONF_WINDOW_FRAMES: DEFAULT_WINDOW_FRAMES,
    CONF_CHECK_INTERVAL: DEFAULT_CHECK_INTERVAL,
    CONF_DETAIL: DEFAULT_DETAIL,
    CONF_CHANGE_THRESHOLD: DEFAULT_CHANGE_THRESHOLD,
    CONF_HEARTBEAT: DEFAULT_HEARTBEAT,
    CONF_HOLD_TIME: DEFAULT_HOLD_TIME,
    CONF_PROMPT_MODE: PROMPT_COMBINED,
    CONF_SAVE_FRAMES: False,  # ecosystem (issue 14): key frames stay in memory unless the user asks
    CONF_SAVED_FRAMES_MAX: DEFAULT_SAVED_FRAMES_MAX,
}


def _select(options: list[str], key: str, *, multiple: bool = False) -> SelectSelector:
    """Return a translated select (a checklist when multiple)."""
    return SelectSelector(
        SelectSelectorConfig(
            options=options,
            multiple=multiple,
            translation_key=key,
            mode=SelectSelectorMode.LIST if multiple else SelectSelectorMode.DROPDOWN,
        )
    )


def _box(maximum: float, step: float, unit: str | None = None) -> NumberSelector:
    """Return a permissive number box: the flow, not the widget, explains out-of-range values."""
    config = NumberSelectorConfig(min=0, max=maximum, step=step, mode=NumberSelectorMode.BOX)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


CAPTURE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_CAPTURE_MODE): _select([CAPTURE_SNAPSHOT, CAPTURE_STREAM], CONF_CAPTURE_MODE),
        vol.Required(CONF_FPS): _box(1000, 0.1, "fps"),
        vol.Required(CONF_WINDOW_FRAMES): _box(1000, 1),
        vol.Required(CONF_CHECK_INTERVAL): _box(100000, 0.1, "s"),
        vol.Required(CONF_DETAIL): _select(list(DETAIL_BUDGETS), CONF_DETAIL),
        vol.Required(CONF_CHANGE_THRESHOLD): _box(100, 0.1, "%"),
        vol.Optional(CONF_MOTION_ENTITY): EntitySelector(EntitySelectorConfig(domain="binary_sensor")),
        vol.Required(CONF_HEARTBEAT): _box(100000, 1, "s"),
        vol.Required(CONF_HOLD_TIME): _box(100000, 1, "s"),
        vol.Required(CONF_PROMPT_MODE): _select([PROMPT_COMBINED, PROMPT_PER_CONDITION], CONF_PROMPT_MODE),
        # ecosystem (issue 14): saving key frames to the media folder, bounded per camera.
        vol.Optional(CONF_SAVE_FRAMES): BooleanSelector(),
        vol.Optional(CONF_SAVED_FRAMES_MAX): _box(100000, 1),
    }
)

CAMERA_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_CAMERA): EntitySelector(EntitySelectorConfig(domain="camera")),
        vol.Optional(CONF_GESTURES): _select([label.key for label in GESTURES], CONF_GESTURES, multiple=True),
        vol.Optional(CONF_ACTIVITIES): _select(
            [label.key for label in ACTIVITIES], CONF_ACTIVITIES, multiple=True
        ),
        vol.Required(CONF_PRESENCE): BooleanSelector(),
        vol.Required(SECTION_CAPTURE): section(CAPTURE_SCHEMA, {"collapsed": True}),
    }
)


def _range_errors(data: Mapping[str, Any]) -> dict[str, str]:
    """Return the translated error for each capture setting outside what makes sense."""
    errors: dict[str, str] = {}
    fps = float(data[CONF_FPS])
    if not MIN_FPS <= fps <= MAX_FPS:
        errors[SECTION_CAPTURE] = "fps_out_of_range"
    elif not 1 <= data[CONF_WINDOW_FRAMES] <= MAX_WINDOW_FRAMES:
        errors[SECTION_CAPTURE] = "window_out_of_range"
    elif data[CONF_WINDOW_FRAMES] / fps > MAX_WINDOW_SECONDS:
        errors[SECTION_CAPTURE] = "window_too_long"
    elif not MIN_CHECK_INTERVAL <= float(data[CONF_CHECK_INTERVAL]) <= MAX_CHECK_INTERVAL:
        errors[SECTION_CAPTURE] = "interval_out_of_range"
    elif not 0 <= data[CONF_HEARTBEAT] <= MAX_HEARTBEAT or not 0 <= data[CONF_HOLD_TIME] <= MAX_HOLD_TIME:
        errors[SECTION_CAPTURE] = "duration_out_of_range"
    elif not 1 <= data.get(CONF_SAVED_FRAMES_MAX, DEFAULT_SAVED_FRAMES_MAX) <= MAX_SAVED_FRAMES:
        errors[SECTION_CAPTURE] = "saved_frames_out_of_range"  # ecosystem (issue 14)
    return errors


class CameraSubentryFlow(FormSubentryFlow):
    """Add or change a watched camera."""

    schema = CAMERA_SCHEMA
    section = SECTION_CAPTURE
    section_keys = _CAPTURE_KEYS
    defaults = DEFAULTS

    def read_form(self, user_input: Mapping[str, Any]) -> dict[str, Any]:
        """Return the camera settings as stored."""
        data = super().read_form(user_input)
        data.setdefault(CONF_GESTURES, [])
        data.setdefault(CONF_ACTIVITIES, [])
        for key in (CONF_WINDOW_FRAMES, CONF_HEARTBEAT, CONF_HOLD_TIME):
            data[key] = int(data[key])
        # ecosystem (issue 14); older forms lack the key frame settings.
        data[CONF_SAVE_FRAMES] = bool(data.get(CONF_SAVE_FRAMES, False))
        data[CONF_SAVED_FRAMES_MAX] = int(data.get(CONF_SAVED_FRAMES_MAX, DEFAULT_SAVED_FRAMES_MAX))
        if not data.get(CONF_MOTION_ENTITY):
            data.pop(CONF_MOTION_ENTITY, None)
        return data

    async def async_errors(self, data: dict[str, Any]) -> dict[str, str]:
        """Return errors about the camera, what to detect, and the capture settings."""
        errors = self._camera_errors(data) or _range_errors(data)
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
