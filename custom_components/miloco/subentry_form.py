"""The shape shared by the camera and rule subentry flows: one form, for adding and for changing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from homeassistant.config_entries import SOURCE_RECONFIGURE, ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import ATTR_FRIENDLY_NAME
import voluptuous as vol

from .settings import Setting, TextSetting, defaults, form_errors, placeholders, stored_value


class FormSubentryFlow(ConfigSubentryFlow):
    """Show one form (with one collapsible section), check it, then create or update the subentry."""

    schema: ClassVar[vol.Schema]
    # The form's collapsible section and the stored keys it shows; the subentry stores them flat.
    section: ClassVar[str]
    section_keys: ClassVar[tuple[str, ...]]
    # The table's settings and free texts of the form: their defaults, bounds and checks.
    settings: ClassVar[tuple[Setting, ...]]
    texts: ClassVar[tuple[TextSetting, ...]] = ()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Add a subentry."""
        return await self._async_step_form(user_input)

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Change a subentry."""
        return await self._async_step_form(user_input)

    def read_form(self, user_input: Mapping[str, Any]) -> dict[str, Any]:
        """Return the form's values flat: the section merged in."""
        data = {key: value for key, value in user_input.items() if key != self.section}
        section = user_input.get(self.section)
        if isinstance(section, Mapping):
            data.update(section)
        return data

    def normalize(self, data: dict[str, Any]) -> None:
        """Shape checked values as stored (nothing by default)."""

    async def async_errors(self, data: dict[str, Any]) -> dict[str, str]:
        """Return the translated error keys of the form, by field."""
        raise NotImplementedError

    def title(self, data: Mapping[str, Any]) -> str:
        """Return the subentry's title."""
        raise NotImplementedError

    def before_save(self, data: Mapping[str, Any]) -> None:
        """Do what saving implies beyond the subentry itself (nothing by default)."""

    def placeholders(self) -> dict[str, str]:
        """Return the placeholders of the form's texts beyond the settings' bounds."""
        return {}

    def friendly_name(self, entity_id: str) -> str:
        """Return an entity's friendly name, or its id."""
        state = self.hass.states.get(entity_id)
        name = state.attributes.get(ATTR_FRIENDLY_NAME) if state is not None else None
        return str(name or entity_id)

    @property
    def reconfiguring(self) -> bool:
        """Return True when the flow changes an existing subentry."""
        return self.source == SOURCE_RECONFIGURE

    async def _async_step_form(self, user_input: dict[str, Any] | None) -> SubentryFlowResult:
        """Show the form, check it, and save it."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = self.read_form(user_input)
            # Numbers and texts first: the checks after them may rely on their types.
            errors = form_errors((*self.settings, *self.texts), data)
            if not errors:
                self.normalize(data)
                errors = await self.async_errors(data)
            if not errors:
                self.before_save(data)
                if self.reconfiguring:
                    return self.async_update_and_abort(
                        self._get_entry(), self._get_reconfigure_subentry(), title=self.title(data), data=data
                    )
                return self.async_create_entry(title=self.title(data), data=data)
            suggested: Mapping[str, Any] = user_input
        else:
            suggested = self._as_form(self._stored() if self.reconfiguring else defaults(self.settings))
        return self.async_show_form(
            step_id="reconfigure" if self.reconfiguring else "user",
            data_schema=self.add_suggested_values_to_schema(self.schema, suggested),
            errors=errors,
            description_placeholders={**placeholders(self.settings), **self.placeholders()},
        )

    def _stored(self) -> dict[str, Any]:
        """Return the subentry's data with any bad stored setting shown as its default."""
        data = dict(self._get_reconfigure_subentry().data)
        for setting in self.settings:
            if setting.key in data:
                data[setting.key] = stored_value(setting, data)[0]
        return data

    def _as_form(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return stored data shaped like the form (the section's keys inside the section)."""
        values = {key: value for key, value in data.items() if key not in self.section_keys}
        values[self.section] = {key: data[key] for key in self.section_keys if key in data}
        return values
