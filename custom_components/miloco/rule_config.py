"""The typed settings of a rule subentry, with the defaults every missing or bad value falls back to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .const import CONF_ACTION, CONF_CAMERAS, CONF_CONDITION, CONF_HA_CONDITION, LOGGER
from .settings import COOLDOWN, MODE, OFF_DELAY, ON_CHECKS, InvalidSubentryData, Setting, stored_value


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleConfig:
    """A rule's settings (its enabled flag lives on the runner: a switch flips it without a reload)."""

    condition: str
    cameras: tuple[str, ...]
    mode: str
    cooldown_s: float
    on_checks: int
    off_delay_s: float
    ha_condition: list[dict[str, Any]] | None
    action: list[dict[str, Any]] | None

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> RuleConfig:
        """Return the settings in a rule subentry's data; a missing or bad value takes its default (logged).

        Raise InvalidSubentryData when the condition is missing: without it there is nothing to ask.
        """
        condition = data.get(CONF_CONDITION)
        if not isinstance(condition, str) or not condition.strip():
            raise InvalidSubentryData(CONF_CONDITION, "no condition")

        def value(setting: Setting) -> Any:
            parsed, problem = stored_value(setting, data)
            if problem is not None:
                LOGGER.warning("Miloco rule %r: %s; using %s", condition[:60], problem, parsed)
            return parsed

        cameras = data.get(CONF_CAMERAS)
        return cls(
            condition=condition,
            cameras=tuple(
                camera
                for camera in (cameras if isinstance(cameras, list | tuple) else ())
                if isinstance(camera, str)
            ),
            mode=value(MODE),
            cooldown_s=float(value(COOLDOWN)),
            on_checks=value(ON_CHECKS),
            off_delay_s=float(value(OFF_DELAY)),
            ha_condition=_script(data.get(CONF_HA_CONDITION)),
            action=_script(data.get(CONF_ACTION)),
        )


def _script(value: Any) -> list[dict[str, Any]] | None:
    """Return a stored condition or action list, or None when there is none (or it is not a list)."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and value:
        return value
    return None
