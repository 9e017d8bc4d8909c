"""The settings table is the one place a setting is named: the config dataclasses and the engine follow it.

Every test iterates over the table, so a setting added to it is covered without changing this file.
"""

from __future__ import annotations

from dataclasses import asdict
import logging
import math
from typing import Any

import pytest

from custom_components.miloco import settings
from custom_components.miloco.ai_task_flow import ai_task_budget, default_ai_task_subentry
from custom_components.miloco.camera_config import CameraConfig
from custom_components.miloco.config_fields import settings_read_by
from custom_components.miloco.engine.backend_defaults import (
    DEFAULT_CONTEXT_SIZE,
    EMBEDDED_TIMEOUT_S,
    REMOTE_TIMEOUT_S,
)
from custom_components.miloco.engine.frames import DEFAULT_DETAIL, DETAIL_BUDGETS
from custom_components.miloco.engine.gate import DEFAULT_THRESHOLD
from custom_components.miloco.engine.rules import DEFAULT_COOLDOWN_S, DEFAULT_OFF_DELAY_S, DEFAULT_ON_CHECKS
from custom_components.miloco.engine.window import DEFAULT_FPS, DEFAULT_FRAMES_PER_CHECK
from custom_components.miloco.rule_config import RuleConfig

CAMERA = {"camera_entity_id": "camera.hall"}
RULE = {"condition": "someone is waving", "cameras": ["camera.hall"]}
# The rule form's preset is spelled out as the stored condition; nothing runs on it.
FORM_ONLY = {settings.PRESET}
CONFIGS: list[tuple[type[Any], tuple[settings.Setting, ...], dict[str, Any]]] = [
    (CameraConfig, settings.CAMERA_SETTINGS, CAMERA),
    (RuleConfig, tuple(setting for setting in settings.RULE_SETTINGS if setting not in FORM_ONLY), RULE),
]
CASES = [
    pytest.param(config_type, setting, required, id=f"{config_type.__name__}-{setting.key}")
    for config_type, table, required in CONFIGS
    for setting in table
]


def other_value(setting: settings.Setting) -> Any:
    """Return a valid stored value other than the setting's default."""
    if isinstance(setting, settings.NumberSetting):
        return setting.maximum if setting.default != setting.maximum else setting.minimum
    if isinstance(setting, settings.ChoiceSetting):
        return next(option for option in setting.options if option != setting.default)
    if isinstance(setting, settings.LabelsSetting):
        return list(setting.options[:1])
    return not setting.default


def bad_value(setting: settings.Setting) -> Any:
    """Return a stored value the setting refuses (a hand edit, or data of an older version)."""
    if isinstance(setting, settings.NumberSetting):
        return math.nan
    if isinstance(setting, settings.LabelsSetting):
        return "wave"
    return 3


@pytest.mark.parametrize(("config_type", "table", "required"), CONFIGS)
def test_each_setting_is_read_by_one_field(
    config_type: type[Any], table: tuple[settings.Setting, ...], required: dict[str, Any]
) -> None:
    """A setting no field reads would be a knob that does nothing; one read twice, two names for one thing."""
    read = list(settings_read_by(config_type).values())
    assert sorted(setting.key for setting in read) == sorted(setting.key for setting in table)


@pytest.mark.parametrize(("config_type", "setting", "required"), CASES)
def test_a_stored_value_reaches_its_field_alone(
    config_type: type[Any], setting: settings.Setting, required: dict[str, Any]
) -> None:
    defaults = asdict(config_type.from_data(required))
    changed = asdict(config_type.from_data({**required, setting.key: other_value(setting)}))
    field_name = {name for name, read in settings_read_by(config_type).items() if read is setting}
    assert {name for name in changed if changed[name] != defaults[name]} == field_name


@pytest.mark.parametrize(("config_type", "setting", "required"), CASES)
def test_a_bad_stored_value_takes_the_default_and_is_logged(
    config_type: type[Any],
    setting: settings.Setting,
    required: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        config = config_type.from_data({**required, setting.key: bad_value(setting)})
    assert config == config_type.from_data(required)
    assert any(setting.key in record.getMessage() for record in caplog.records)


def test_a_camera_without_settings_runs_on_the_engines_defaults() -> None:
    """The engine states the defaults of the window, the detail and the gate; the table takes them from it."""
    config = CameraConfig.from_data(CAMERA)
    assert (config.fps, config.window_frames, config.detail) == (
        DEFAULT_FPS,
        DEFAULT_FRAMES_PER_CHECK,
        DEFAULT_DETAIL,
    )
    assert config.change_threshold == pytest.approx(DEFAULT_THRESHOLD)
    assert config.token_budget == DETAIL_BUDGETS[DEFAULT_DETAIL]
    assert config.check_spec().fps == DEFAULT_FPS
    assert (settings.FPS.default, settings.WINDOW_FRAMES.default) == (DEFAULT_FPS, DEFAULT_FRAMES_PER_CHECK)
    assert settings.CHANGE_THRESHOLD.default == pytest.approx(DEFAULT_THRESHOLD * 100)
    assert settings.DETAIL.default == DEFAULT_DETAIL
    assert settings.DETAIL.options == tuple(DETAIL_BUDGETS)


def test_backends_and_rules_run_on_the_engines_defaults() -> None:
    """The evaluation toolkit runs a backend, and the rule state machines time a rule, as the integration does."""
    assert settings.REMOTE_TIMEOUT.default == REMOTE_TIMEOUT_S
    assert settings.EMBEDDED_TIMEOUT.default == EMBEDDED_TIMEOUT_S
    assert settings.CONTEXT_SIZE.default == DEFAULT_CONTEXT_SIZE
    rule = RuleConfig.from_data(RULE)
    assert (rule.cooldown_s, rule.on_checks, rule.off_delay_s) == (
        DEFAULT_COOLDOWN_S,
        DEFAULT_ON_CHECKS,
        DEFAULT_OFF_DELAY_S,
    )


def test_the_window_default_is_the_stated_one() -> None:
    # The window the model was tuned on: three seconds of motion.
    assert CameraConfig.from_data(CAMERA).window_s == 3.0


def test_ai_task_detail_comes_from_the_table(caplog: pytest.LogCaptureFixture) -> None:
    assert default_ai_task_subentry()["data"] == settings.defaults(settings.AI_TASK_SETTINGS)
    for detail, budget in DETAIL_BUDGETS.items():
        assert ai_task_budget({"detail": detail}) == budget
    assert ai_task_budget({}) == DETAIL_BUDGETS[settings.DETAIL.default]
    with caplog.at_level(logging.WARNING):
        assert ai_task_budget({"detail": "ultra"}) == DETAIL_BUDGETS[settings.DETAIL.default]
    assert "detail" in caplog.text
