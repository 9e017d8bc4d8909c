"""The typed settings of a camera subentry, with the defaults every missing key falls back to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .const import (
    CAPTURE_SNAPSHOT,
    CONF_ACTIVITIES,
    CONF_CAMERA,
    CONF_CAPTURE_MODE,
    CONF_CHANGE_THRESHOLD,
    CONF_CHECK_INTERVAL,
    CONF_DETAIL,
    CONF_FPS,
    CONF_GESTURES,
    CONF_HEARTBEAT,
    CONF_HOLD_TIME,
    CONF_MOTION_ENTITY,
    CONF_PRESENCE,
    CONF_PROMPT_MODE,
    CONF_SAVE_FRAMES,
    CONF_SAVED_FRAMES_MAX,
    CONF_WINDOW_FRAMES,
    DEFAULT_CHANGE_THRESHOLD,
    DEFAULT_CHECK_INTERVAL,
    DEFAULT_FPS,
    DEFAULT_HEARTBEAT,
    DEFAULT_HOLD_TIME,
    DEFAULT_SAVED_FRAMES_MAX,
    DEFAULT_WINDOW_FRAMES,
    PROMPT_COMBINED,
)
from .engine.frames import DEFAULT_DETAIL, DETAIL_BUDGETS
from .engine.labels import ACTIVITIES, GESTURES
from .engine.prompt import CheckSpec


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
    # ecosystem (issue 14): key frames on disk, off by default, bounded per camera.
    save_frames: bool = False
    saved_frames_max: int = DEFAULT_SAVED_FRAMES_MAX

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> CameraConfig:
        """Return the settings in a subentry's data (keys missing from older entries take defaults)."""
        return cls(
            camera_entity_id=data[CONF_CAMERA],
            # Catalogue order, whatever order the user ticked them in.
            gestures=tuple(label.key for label in GESTURES if label.key in data.get(CONF_GESTURES, ())),
            activities=tuple(label.key for label in ACTIVITIES if label.key in data.get(CONF_ACTIVITIES, ())),
            presence=bool(data.get(CONF_PRESENCE, True)),
            capture_mode=data.get(CONF_CAPTURE_MODE, CAPTURE_SNAPSHOT),
            fps=float(data.get(CONF_FPS, DEFAULT_FPS)),
            window_frames=int(data.get(CONF_WINDOW_FRAMES, DEFAULT_WINDOW_FRAMES)),
            check_interval_s=float(data.get(CONF_CHECK_INTERVAL, DEFAULT_CHECK_INTERVAL)),
            detail=data.get(CONF_DETAIL, DEFAULT_DETAIL),
            change_threshold=float(data.get(CONF_CHANGE_THRESHOLD, DEFAULT_CHANGE_THRESHOLD)) / 100,
            motion_entity_id=data.get(CONF_MOTION_ENTITY) or None,
            heartbeat_s=float(data.get(CONF_HEARTBEAT, DEFAULT_HEARTBEAT)),
            hold_s=float(data.get(CONF_HOLD_TIME, DEFAULT_HOLD_TIME)),
            prompt_mode=data.get(CONF_PROMPT_MODE, PROMPT_COMBINED),
            save_frames=bool(data.get(CONF_SAVE_FRAMES, False)),
            saved_frames_max=int(data.get(CONF_SAVED_FRAMES_MAX, DEFAULT_SAVED_FRAMES_MAX)),
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
