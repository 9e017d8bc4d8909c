"""Form fields built from the settings table: the selectors the flows' schemas show."""

from __future__ import annotations

from typing import Any

from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol

from .settings import ChoiceSetting, FlagSetting, LabelsSetting, NumberSetting, Setting, TextSetting


class CheckedNumberSelector(NumberSelector):
    """A number box whose value the flow checks itself, so that nan, text or 1e400 get a translated error."""

    def __call__(self, data: Any) -> Any:
        """Pass the value through: the settings table refuses it with an error on the field."""
        return data


class CheckedTextSelector(TextSelector):
    """A text box whose value the flow checks itself (type, length, control characters)."""

    def __call__(self, data: Any) -> Any:
        """Pass the value through: the settings table refuses it with an error on the field."""
        return data


def number_field(setting: NumberSetting) -> CheckedNumberSelector:
    """Return the box of a number setting, with its bounds, step and unit."""
    config = NumberSelectorConfig(
        min=setting.minimum, max=setting.maximum, step=setting.step, mode=NumberSelectorMode.BOX
    )
    if setting.unit is not None:
        config["unit_of_measurement"] = setting.unit
    return CheckedNumberSelector(config)


def text_field(setting: TextSetting, kind: TextSelectorType | None = None) -> CheckedTextSelector:
    """Return the box of a text setting."""
    config = TextSelectorConfig(multiline=setting.multiline)
    if kind is not None:
        config["type"] = kind
    return CheckedTextSelector(config)


def select_field(setting: ChoiceSetting | LabelsSetting) -> SelectSelector:
    """Return a translated select (a checklist for labels)."""
    multiple = isinstance(setting, LabelsSetting)
    return SelectSelector(
        SelectSelectorConfig(
            options=list(setting.options),
            multiple=multiple,
            translation_key=setting.key,
            mode=SelectSelectorMode.LIST if multiple else SelectSelectorMode.DROPDOWN,
        )
    )


def field(setting: Setting) -> Any:
    """Return the selector of any table setting."""
    if isinstance(setting, NumberSetting):
        return number_field(setting)
    if isinstance(setting, FlagSetting):
        return BooleanSelector()
    return select_field(setting)


def marker(setting: Setting) -> vol.Marker:
    """Return the schema key: checklists, settings without a default and optional ones may be left out."""
    if isinstance(setting, LabelsSetting) or setting.default is None or setting.optional:
        return vol.Optional(setting.key)
    return vol.Required(setting.key)


def schema_fields(settings: tuple[Setting, ...], section: str | None) -> dict[vol.Marker, Any]:
    """Return the schema entries of the settings shown in one section (None: outside any section)."""
    return {marker(setting): field(setting) for setting in settings if setting.section == section}
