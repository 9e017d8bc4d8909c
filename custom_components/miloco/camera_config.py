"""The typed settings of a camera subentry, with the defaults every missing key falls back to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .const import CONF_CAMERA, CONF_MOTION_ENTITY, LOGGER
from .engine.frames import DEFAULT_DETAIL, DETAIL_BUDGETS
from .engine.prompt import CheckSpec
from .settings import (
    ACTIVITIES_SETTING,
    CAPTURE_MODE,
    CHANGE_THRESHOLD,
    CHECK_INTERVAL,
    DETAIL,
    FPS,
    GESTURES_SETTING,
    HEARTBEAT,
    HOLD_TIME,
    PRESENCE,
    PROMPT_MODE,
    SAVE_FRAMES,
    SAVED_FRAMES_MAX,
    WINDOW_FRAMES,
    InvalidSubentryData,
    Setting,
    stored_value,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraConfig:
    """What to watch on one camera, and how."""

    camera_entity_id: str
    gestures: tuple[str, ...]
    activities: tuple[str, ...]
    presence: bool
    capture_mode: str
    fps: float
    window_frames: int
    check_interval_s: float
    detail: str
    change_threshold: float
    motion_entity_id: str | None
    heartbeat_s: float
    hold_s: float
    prompt_mode: str
    # Key frames on disk, a bounded number per camera.
    save_frames: bool
    saved_frames_max: int

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> CameraConfig:
        """Return the settings in a subentry's data; a missing or bad value takes its default (logged).

        Raise InvalidSubentryData when the camera itself is missing: without it nothing can run.
        """
        camera = data.get(CONF_CAMERA)
        if not isinstance(camera, str) or not camera:
            raise InvalidSubentryData(CONF_CAMERA, "no camera entity")

        def value(setting: Setting) -> Any:
            parsed, problem = stored_value(setting, data)
            if problem is not None:
                LOGGER.warning("Miloco camera %s: %s; using %s", camera, problem, parsed)
            return parsed

        motion = data.get(CONF_MOTION_ENTITY)
        return cls(
            camera_entity_id=camera,
            gestures=tuple(value(GESTURES_SETTING)),
            activities=tuple(value(ACTIVITIES_SETTING)),
            presence=value(PRESENCE),
            capture_mode=value(CAPTURE_MODE),
            fps=value(FPS),
            window_frames=value(WINDOW_FRAMES),
            check_interval_s=value(CHECK_INTERVAL),
            detail=value(DETAIL),
            # Stored in percent (as the form shows it), used as a fraction.
            change_threshold=value(CHANGE_THRESHOLD) / 100,
            motion_entity_id=motion if isinstance(motion, str) and motion else None,
            heartbeat_s=float(value(HEARTBEAT)),
            hold_s=float(value(HOLD_TIME)),
            prompt_mode=value(PROMPT_MODE),
            save_frames=value(SAVE_FRAMES),
            saved_frames_max=value(SAVED_FRAMES_MAX),
        )

    @property
    def window_s(self) -> float:
        """Return the time the window of frames spans."""
        return self.window_frames / self.fps

    @property
    def token_budget(self) -> int:
        """Return the image-token budget of one check."""
        return DETAIL_BUDGETS.get(self.detail, DETAIL_BUDGETS[DEFAULT_DETAIL])

    def check_spec(self) -> CheckSpec:
        """Return what each check of this camera asks the model."""
        return CheckSpec(
            gestures=self.gestures, activities=self.activities, presence=self.presence, fps=self.fps
        )
