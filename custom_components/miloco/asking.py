"""A camera's question to the model, for a caller that holds a slot: the camera's settings and engine/check.ask.

Imports nothing that builds watchers (the watcher asks through here): the runtime-aware questions of
people (services, AI Task) live in questions.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from .camera_config import CameraConfig
from .const import PROMPT_PER_CONDITION
from .engine.backends.base import VisionBackend
from .engine.check import Answer, ask
from .engine.frames import FramePlan
from .engine.prompt import CheckSpec, QuestionSpec
from .engine.window import Frame


def frame_plan(config: CameraConfig) -> FramePlan:
    """Return what a camera's checks send: its window's length within its image-token budget."""
    return FramePlan(frames=config.window_frames, budget=config.token_budget)


async def async_ask_holding_slot(
    backend: VisionBackend,
    cpu_slots: asyncio.Semaphore,
    config: CameraConfig,
    spec: CheckSpec | QuestionSpec,
    frames: Sequence[Frame] | Sequence[bytes],
) -> Answer:
    """Ask about a camera's frames (oldest first) with its settings, for a caller that already holds a slot.

    The watcher takes its slot itself when it decides to start a check (skipping when busy), and then asks
    here, as questions.async_ask does once a person's slot came: one path from frames to answer. Backend,
    parse and frame errors propagate unchanged.
    """
    return await ask(
        backend,
        replace(spec, fps=config.fps),
        frames,
        plan=frame_plan(config),
        per_condition=config.prompt_mode == PROMPT_PER_CONDITION,
        cpu_slots=cpu_slots,
    )
