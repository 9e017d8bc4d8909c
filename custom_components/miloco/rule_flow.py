"""The rule subentry flow: a condition in words, the cameras it watches, and what happens when it holds."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import ConfigSubentry
from homeassistant.data_entry_flow import section
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.selector import (
    ActionSelector,
    BooleanSelector,
    ConditionSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
)
import voluptuous as vol

from .camera_flow import DEFAULTS as CAMERA_DEFAULTS
from .capture import camera_exists
from .const import (
    CONF_ACTION,
    CONF_CAMERA,
    CONF_CAMERAS,
    CONF_CONDITION,
    CONF_COOLDOWN,
    CONF_ENABLED,
    CONF_HA_CONDITION,
    CONF_MODE,
    CONF_OFF_DELAY,
    CONF_ON_CHECKS,
    CONF_PRESET,
    CONF_RULE_NAME,
    DEFAULT_COOLDOWN,
    DEFAULT_OFF_DELAY,
    DEFAULT_ON_CHECKS,
    MAX_ON_CHECKS,
    MODE_EVENT,
    MODE_STATE,
    PRESET_CUSTOM,
    SUBENTRY_CAMERA,
)
from .engine.condition_text import MAX_CONDITION_CHARS, condition_problem
from .engine.labels import ALL_LABELS, by_key
from .rule_runner import async_compile_condition, async_validate_action
from .subentry_form import FormSubentryFlow

SECTION_TIMING = "timing"
_TIMING_KEYS = (CONF_COOLDOWN, CONF_ON_CHECKS, CONF_OFF_DELAY)
MAX_COOLDOWN = 86400
MAX_OFF_DELAY = 3600


def _box(maximum: float, unit: str | None = None) -> NumberSelector:
    """Return a permissive whole-number box: the flow explains out-of-range values."""
    config = NumberSelectorConfig(min=0, max=maximum, step=1, mode=NumberSelectorMode.BOX)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


RULE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_RULE_NAME): TextSelector(),
        vol.Required(CONF_PRESET): SelectSelector(
            SelectSelectorConfig(
                options=[PRESET_CUSTOM, *(label.key for label in ALL_LABELS)],
                translation_key=CONF_PRESET,
                mode=SelectSelectorMode.DROPDOWN,
            )
        ),
        vol.Optional(CONF_CONDITION): TextSelector(TextSelectorConfig(multiline=True)),
        vol.Optional(CONF_CAMERAS): EntitySelector(EntitySelectorConfig(domain="camera", multiple=True)),
        vol.Required(CONF_MODE): SelectSelector(
            SelectSelectorConfig(options=[MODE_EVENT, MODE_STATE], translation_key=CONF_MODE)
        ),
        vol.Required(SECTION_TIMING): section(
            vol.Schema(
                {
                    vol.Required(CONF_COOLDOWN): _box(MAX_COOLDOWN * 10, "s"),
                    vol.Required(CONF_ON_CHECKS): _box(MAX_ON_CHECKS * 10),
                    vol.Required(CONF_OFF_DELAY): _box(MAX_OFF_DELAY * 10, "s"),
                }
            ),
            {"collapsed": True},
        ),
        vol.Optional(CONF_HA_CONDITION): ConditionSelector(),
        vol.Optional(CONF_ACTION): ActionSelector(),
        vol.Required(CONF_ENABLED): BooleanSelector(),
    }
)

DEFAULTS: Mapping[str, Any] = {
    CONF_PRESET: PRESET_CUSTOM,
    CONF_MODE: MODE_EVENT,
    CONF_COOLDOWN: DEFAULT_COOLDOWN,
    CONF_ON_CHECKS: DEFAULT_ON_CHECKS,
    CONF_OFF_DELAY: DEFAULT_OFF_DELAY,
    CONF_ENABLED: True,
}


class RuleSubentryFlow(FormSubentryFlow):
    """Add or change a natural-language rule."""

    schema = RULE_SCHEMA
    section = SECTION_TIMING
    section_keys = _TIMING_KEYS
    defaults = DEFAULTS

    def read_form(self, user_input: Mapping[str, Any]) -> dict[str, Any]:
        """Return the rule as stored: timing in whole seconds, the preset spelled out as its condition."""
        data = super().read_form(user_input)
        for key in _TIMING_KEYS:
            data[key] = int(data[key])
        data[CONF_RULE_NAME] = str(data.get(CONF_RULE_NAME, "")).strip()
        data[CONF_CAMERAS] = list(data.get(CONF_CAMERAS) or [])
        if data.get(CONF_PRESET, PRESET_CUSTOM) != PRESET_CUSTOM:
            # A catalogue item is asked in the wording the model was trained on.
            data[CONF_CONDITION] = by_key(data[CONF_PRESET]).condition
        data[CONF_CONDITION] = " ".join(str(data.get(CONF_CONDITION, "")).split())
        for key in (CONF_HA_CONDITION, CONF_ACTION):
            if not data.get(key):
                data.pop(key, None)
        return data

    async def async_errors(self, data: dict[str, Any]) -> dict[str, str]:
        """Return errors about the fields, then about the HA condition and the action."""
        return self._field_errors(data) or await self._async_script_errors(data)

    def title(self, data: Mapping[str, Any]) -> str:
        """Return the rule's name."""
        return str(data[CONF_RULE_NAME])

    def before_save(self, data: Mapping[str, Any]) -> None:
        """Watch the rule's cameras that are not watched yet."""
        self._watch_new_cameras(data[CONF_CAMERAS])

    def placeholders(self) -> dict[str, str]:
        """Return the condition's length limit for the form's texts."""
        return {"max_chars": str(MAX_CONDITION_CHARS)}

    def _field_errors(self, data: Mapping[str, Any]) -> dict[str, str]:
        """Return errors about the name, the condition, the cameras and the timing."""
        errors: dict[str, str] = {}
        if not data[CONF_RULE_NAME]:
            errors[CONF_RULE_NAME] = "name_empty"
        if (problem := condition_problem(data[CONF_CONDITION])) is not None:
            errors[CONF_CONDITION] = f"condition_{problem}"
        cameras = data[CONF_CAMERAS]
        if not cameras:
            errors[CONF_CAMERAS] = "no_camera"
        elif not all(camera_exists(self.hass, camera) for camera in cameras):
            errors[CONF_CAMERAS] = "camera_not_found"
        if not (
            0 <= data[CONF_COOLDOWN] <= MAX_COOLDOWN
            and 1 <= data[CONF_ON_CHECKS] <= MAX_ON_CHECKS
            and 0 <= data[CONF_OFF_DELAY] <= MAX_OFF_DELAY
        ):
            errors[SECTION_TIMING] = "timing_out_of_range"
        return errors

    async def _async_script_errors(self, data: Mapping[str, Any]) -> dict[str, str]:
        """Return errors about the HA condition and the action, validated as HA would run them."""
        try:
            if CONF_HA_CONDITION in data:
                await async_compile_condition(self.hass, data[CONF_HA_CONDITION])
        except (vol.Invalid, HomeAssistantError):
            return {CONF_HA_CONDITION: "invalid_condition"}
        try:
            if CONF_ACTION in data:
                await async_validate_action(self.hass, data[CONF_ACTION])
        except (vol.Invalid, HomeAssistantError):
            return {CONF_ACTION: "invalid_action"}
        return {}

    def _watch_new_cameras(self, cameras: list[str]) -> None:
        """Watch, with the default settings, every camera of the rule that is not watched yet."""
        entry = self._get_entry()
        watched = {
            sub.data.get(CONF_CAMERA)
            for sub in entry.subentries.values()
            if sub.subentry_type == SUBENTRY_CAMERA
        }
        for camera in cameras:
            if camera in watched:
                continue
            self.hass.config_entries.async_add_subentry(
                entry,
                ConfigSubentry(
                    data=MappingProxyType({**CAMERA_DEFAULTS, CONF_CAMERA: camera}),
                    subentry_type=SUBENTRY_CAMERA,
                    title=self.friendly_name(camera),
                    unique_id=None,
                ),
            )
