"""Config dataclass fields that hold settings of the table: each field names its setting, once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

from .settings import Setting, stored_value

# A config dataclass field's metadata names the table setting it holds under this key.
_READS: Final = "miloco_setting"


@dataclass(frozen=True, slots=True)
class _Reading:
    """Which table setting a config field holds, and how its stored value becomes the field's value."""

    setting: Setting
    convert: Callable[[Any], Any] | None


def reads(setting: Setting, convert: Callable[[Any], Any] | None = None) -> Any:
    """Declare a config dataclass field that holds a table setting, converted to the type the code uses."""
    return field(metadata={_READS: _Reading(setting, convert)})


def settings_read_by(config_type: type[Any]) -> dict[str, Setting]:
    """Return the table setting each field of a config dataclass holds, by field name."""
    return {
        config_field.name: config_field.metadata[_READS].setting
        for config_field in fields(config_type)
        if _READS in config_field.metadata
    }


def read_settings(
    config_type: type[Any], data: Mapping[str, Any], warn: Callable[[str, Any], None]
) -> dict[str, Any]:
    """Return the value of each field of a config dataclass that holds a table setting, by field name.

    A missing value takes its default; a bad one too, and `warn` is told the problem and the value used.
    """
    values: dict[str, Any] = {}
    for config_field in fields(config_type):
        reading: _Reading | None = config_field.metadata.get(_READS)
        if reading is None:
            continue
        value, problem = stored_value(reading.setting, data)
        if problem is not None:
            warn(problem, value)
        values[config_field.name] = value if reading.convert is None else reading.convert(value)
    return values


def percent_as_fraction(percent: float) -> float:
    """Return a percentage as stored (and shown in the form) as the fraction the engine uses."""
    return percent / 100


def optional_percent_as_fraction(percent: float | None) -> float | None:
    """Return an optional percentage (a threshold left empty is None) as the fraction the engine uses."""
    return None if percent is None else percent / 100
