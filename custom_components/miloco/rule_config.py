"""The typed settings of a rule subentry, each field read from the settings table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import settings as table
from .config_fields import optional_percent_as_fraction, read_settings, reads
from .const import CONF_ACTION, CONF_CAMERAS, CONF_CONDITION, CONF_HA_CONDITION, LOGGER
from .settings import InvalidSubentryData


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleConfig:
    """A rule's settings; the preset is not among them: the form spells it out as the condition."""

    condition: str
    cameras: tuple[str, ...]
    ha_condition: list[dict[str, Any]] | None
    action: list[dict[str, Any]] | None
    mode: str = reads(table.MODE)
    cooldown_s: float = reads(table.COOLDOWN, float)
    on_checks: int = reads(table.ON_CHECKS)
    off_delay_s: float = reads(table.OFF_DELAY, float)
    # Stored in percent (as the form shows it), used as P(yes) in (0, 1); None: the model's own yes/no.
    threshold: float | None = reads(table.THRESHOLD, optional_percent_as_fraction)
    # As stored when the rule was set up: the runner keeps the live flag, which a switch flips without a reload.
    enabled: bool = reads(table.ENABLED)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> RuleConfig:
        """Return the settings in a rule subentry's data; a missing or bad value takes its default (logged).

        Raise InvalidSubentryData when the condition is missing: without it there is nothing to ask.
        """
        condition = data.get(CONF_CONDITION)
        if not isinstance(condition, str) or not condition.strip():
            raise InvalidSubentryData(CONF_CONDITION, "no condition")

        def warn(problem: str, value: Any) -> None:
            LOGGER.warning("Miloco rule %r: %s; using %s", condition[:60], problem, value)

        cameras = data.get(CONF_CAMERAS)
        return cls(
            condition=condition,
            cameras=tuple(
                camera
                for camera in (cameras if isinstance(cameras, list | tuple) else ())
                if isinstance(camera, str)
            ),
            ha_condition=_script(data.get(CONF_HA_CONDITION)),
            action=_script(data.get(CONF_ACTION)),
            **read_settings(cls, data, warn),
        )


def _script(value: Any) -> list[dict[str, Any]] | None:
    """Return a stored condition or action list, or None when there is none (or it is not a list)."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and value:
        return value
    return None
