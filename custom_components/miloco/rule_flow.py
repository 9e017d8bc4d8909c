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
    ConditionSelector,
    EntitySelector,
    EntitySelectorConfig,
)
import voluptuous as vol

from .camera_flow import DEFAULTS as CAMERA_DEFAULTS
from .capture import camera_exists
from .const import (
    CONF_ACTION,
    CONF_CAMERA,
    CONF_CAMERAS,
    CONF_CONDITION,
    CONF_HA_CONDITION,
    CONF_PRESET,
    CONF_RULE_NAME,
    PRESET_CUSTOM,
    SUBENTRY_CAMERA,
)
from .engine.condition_text import MAX_CONDITION_CHARS, condition_problem
from .engine.labels import by_key
from .form_fields import field, marker, schema_fields, text_field
from .rule_runner import async_compile_condition, async_validate_action
from .settings import (
    CONDITION_TEXT,
    ENABLED,
    MODE,
    PRESET,
    RULE_NAME_TEXT,
    RULE_SETTINGS,
    SECTION_TIMING,
    section_keys,
)
from .subentry_form import FormSubentryFlow

_TIMING_KEYS = section_keys(RULE_SETTINGS, SECTION_TIMING)

RULE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_RULE_NAME): text_field(RULE_NAME_TEXT),
        marker(PRESET): field(PRESET),
        vol.Optional(CONF_CONDITION): text_field(CONDITION_TEXT),
        vol.Optional(CONF_CAMERAS): EntitySelector(EntitySelectorConfig(domain="camera", multiple=True)),
        marker(MODE): field(MODE),
        vol.Required(SECTION_TIMING): section(
            vol.Schema(schema_fields(RULE_SETTINGS, SECTION_TIMING)), {"collapsed": True}
        ),
        vol.Optional(CONF_HA_CONDITION): ConditionSelector(),
        vol.Optional(CONF_ACTION): ActionSelector(),
        marker(ENABLED): field(ENABLED),
    }
)


class RuleSubentryFlow(FormSubentryFlow):
    """Add or change a natural-language rule."""

    schema = RULE_SCHEMA
    section = SECTION_TIMING
    section_keys = _TIMING_KEYS
    settings = RULE_SETTINGS
    texts = (RULE_NAME_TEXT, CONDITION_TEXT)

    def normalize(self, data: dict[str, Any]) -> None:
        """Shape the rule as stored: the name trimmed, the preset spelled out as its condition."""
        data[CONF_RULE_NAME] = str(data.get(CONF_RULE_NAME, "")).strip()
        data[CONF_CAMERAS] = list(data.get(CONF_CAMERAS) or [])
        if data.get(CONF_PRESET, PRESET_CUSTOM) != PRESET_CUSTOM:
            # A catalogue item is asked in the wording the model was trained on.
            data[CONF_CONDITION] = by_key(data[CONF_PRESET]).condition
        data[CONF_CONDITION] = " ".join(str(data.get(CONF_CONDITION, "")).split())
        for key in (CONF_HA_CONDITION, CONF_ACTION):
            if not data.get(key):
                data.pop(key, None)

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
        """Return errors about the name, the condition and the cameras (the table checked the timing)."""
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
