"""One check of a clip, done as the camera watcher does it: window selection, resizing, prompts, parsing."""

from __future__ import annotations

from collections.abc import Sequence

from ..backends.base import VisionBackend
from ..check import Answer, ask as ask_frames
from ..frames import FramePlan
from ..prompt import CheckSpec
from ..window import Frame, FrameWindow
from .settings import MODE_PER_CONDITION, Setting


def select_window(frames: Sequence[Frame], setting: Setting, fps: float) -> list[Frame]:
    """Return the frames a check at the newest frame would use: the watcher's buffer and selection."""
    window = FrameWindow.for_checks_of(setting.frames)
    for frame in frames:
        window.add(frame)
    newest = window.newest
    if newest is None:
        return []
    return window.select(setting.frames, setting.frames / fps, newest.timestamp)


async def ask(backend: VisionBackend, spec: CheckSpec, frames: Sequence[Frame], setting: Setting) -> Answer:
    """Ask the model about the frames in the setting's prompt mode, exactly as the watcher does.

    The frames are sized for the setting's window as a camera's captured frames are: the same pixels.
    """
    return await ask_frames(
        backend,
        spec,
        frames,
        plan=FramePlan(frames=setting.frames, budget=setting.budget),
        per_condition=setting.mode == MODE_PER_CONDITION,
    )
