"""The typed settings of a camera subentry, each field read from the settings table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import settings as table
from .config_fields import optional_percent_as_fraction, percent_as_fraction, read_settings, reads
from .const import CONF_CAMERA, CONF_MOTION_ENTITY, LOGGER
from .engine.camera_state import CameraStateSettings
from .engine.frames import DETAIL_BUDGETS
from .engine.prompt import CheckSpec
from .settings import InvalidSubentryData


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraConfig:
    """What to watch on one camera, and how: each table setting once, as the code uses it."""

    camera_entity_id: str
    motion_entity_id: str | None
    gestures: tuple[str, ...] = reads(table.GESTURES_SETTING, tuple)
    activities: tuple[str, ...] = reads(table.ACTIVITIES_SETTING, tuple)
    presence: bool = reads(table.PRESENCE)
    capture_mode: str = reads(table.CAPTURE_MODE)
    fps: float = reads(table.FPS)
    window_frames: int = reads(table.WINDOW_FRAMES)
    check_interval_s: float = reads(table.CHECK_INTERVAL)
    # A second check on a spare slot while the scene moves during the first.
    spare_slots: bool = reads(table.SPARE_SLOTS)
    detail: str = reads(table.DETAIL)
    # Stored in percent (as the form shows it), used as a fraction.
    change_threshold: float = reads(table.CHANGE_THRESHOLD, percent_as_fraction)
    heartbeat_s: float = reads(table.HEARTBEAT, float)
    hold_s: float = reads(table.HOLD_TIME, float)
    prompt_mode: str = reads(table.PROMPT_MODE)
    # Key frames on disk, a bounded number per camera.
    save_frames: bool = reads(table.SAVE_FRAMES)
    saved_frames_max: int = reads(table.SAVED_FRAMES_MAX)
    # The P(yes) at which a label counts as seen, stored in percent; None: the model's own yes/no.
    label_threshold: float | None = reads(table.LABEL_THRESHOLD, optional_percent_as_fraction)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> CameraConfig:
        """Return the settings in a subentry's data; a missing or bad value takes its default (logged).

        Raise InvalidSubentryData when the camera itself is missing: without it nothing can run.
        """
        camera = data.get(CONF_CAMERA)
        if not isinstance(camera, str) or not camera:
            raise InvalidSubentryData(CONF_CAMERA, "no camera entity")

        def warn(problem: str, value: Any) -> None:
            LOGGER.warning("Miloco camera %s: %s; using %s", camera, problem, value)

        motion = data.get(CONF_MOTION_ENTITY)
        return cls(
            camera_entity_id=camera,
            motion_entity_id=motion if isinstance(motion, str) and motion else None,
            **read_settings(cls, data, warn),
        )

    @property
    def window_s(self) -> float:
        """Return the time the window of frames spans."""
        return self.window_frames / self.fps

    @property
    def token_budget(self) -> int:
        """Return the image-token budget of one check (the detail is one of the table's options)."""
        return DETAIL_BUDGETS[self.detail]

    def check_spec(self) -> CheckSpec:
        """Return what each check of this camera asks the model."""
        return CheckSpec(
            gestures=self.gestures,
            activities=self.activities,
            presence=self.presence,
            fps=self.fps,
            label_threshold=self.label_threshold,
        )

    def state_settings(self) -> CameraStateSettings:
        """Return what this camera's state machines need: what is watched, and the camera's timing."""
        return CameraStateSettings(
            gestures=self.gestures,
            activities=self.activities,
            presence=self.presence,
            hold_s=self.hold_s,
            window_s=self.window_s,
            check_interval_s=self.check_interval_s,
        )
