"""One way to ask a camera: its own settings, the entry's limiter and CPU slots, and engine/check.ask."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
import time
from typing import TYPE_CHECKING, Final

from homeassistant.components import camera
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from .camera_config import CameraConfig
from .const import (
    BACKEND_EMBEDDED,
    CONF_BACKEND,
    CONF_CAMERA,
    DOMAIN,
    PROMPT_PER_CONDITION,
    SNAPSHOT_TIMEOUT,
)
from .engine.backends.base import VisionBackend
from .engine.check import Answer, ask
from .engine.prompt import CheckSpec, QuestionSpec
from .engine.window import Frame
from .settings import EMBEDDED_TIMEOUT, REMOTE_TIMEOUT, stored_value

if TYPE_CHECKING:
    # Only for types: the runtime builds the watchers, and a watcher asks through this module.
    from .runtime import MilocoRuntime

# The limiter key every service call waits under (live checks use their camera's subentry id).
SERVICE_KEY: Final = "service"


def camera_settings(runtime: MilocoRuntime, camera_entity_id: str) -> CameraConfig:
    """Return the settings of a camera: its watcher's, or the defaults for a camera the entry does not watch."""
    watcher = runtime.watcher_for(camera_entity_id)
    if watcher is not None:
        return watcher.config
    return CameraConfig.from_data({CONF_CAMERA: camera_entity_id})


def camera_spec(runtime: MilocoRuntime, config: CameraConfig, *, trying: str | None = None) -> CheckSpec:
    """Return what a live check of the camera asks: its labels and its enabled rules, in the entry's order.

    `trying` names a rule to include even while switched off (a dry run asks what the live rule would).
    """
    rules = tuple(
        rule.spec
        for rule_id, rule in runtime.rules.items()
        if config.camera_entity_id in rule.config.cameras and (rule.enabled or rule_id == trying)
    )
    return replace(config.check_spec(), rules=rules)


def dry_run_spec(runtime: MilocoRuntime, config: CameraConfig, rule_id: str) -> CheckSpec:
    """Return the spec whose answer holds exactly the verdict a live check would give the rule."""
    spec = camera_spec(runtime, config, trying=rule_id)
    if config.prompt_mode == PROMPT_PER_CONDITION:
        # Each condition is its own request, built from the frames, the frame rate and the condition only:
        # the rule's request alone is byte for byte the one a live check sends.
        return CheckSpec(rules=tuple(rule for rule in spec.rules if rule.rule_id == rule_id), fps=spec.fps)
    # One combined request: the verdict depends on everything asked with it, so ask all of it.
    return spec


def default_wait_s(runtime: MilocoRuntime) -> float:
    """Return how long a service waits for a free slot: one model timeout of the entry."""
    setting = EMBEDDED_TIMEOUT if runtime.data.get(CONF_BACKEND) == BACKEND_EMBEDDED else REMOTE_TIMEOUT
    # A stored value that is not a valid timeout comes back as the default.
    timeout, _problem = stored_value(setting, runtime.data)
    return float(timeout)


async def async_ask(
    hass: HomeAssistant,
    runtime: MilocoRuntime,
    camera_entity_id: str,
    spec: CheckSpec | QuestionSpec,
    *,
    wait: bool | float,
    frames: Sequence[Frame] | Sequence[bytes] | None = None,
) -> Answer | None:
    """Ask the model about a camera with the camera's own settings; the one check path of the integration.

    - `wait=False` is a live check: it takes a slot of the limiter under the camera's key or returns None at
      once when the backend is busy (skipped, never queued).
    - `wait=True` (the entry's timeout) or a number of seconds is a service call: it queues behind live
      checks for a slot and raises the translated "busy" HomeAssistantError when none came in time.
    - `frames` are the frames to ask about, oldest first (prepared at capture, or raw JPEGs); by default the
      watcher's current window, or one snapshot of a camera nobody watches (taken before a slot is held).

    The frame rate, window, image-token budget and prompt mode are the camera's. Backend, parse and frame
    errors propagate unchanged (the watcher counts them; services translate them).
    """
    config = camera_settings(runtime, camera_entity_id)
    if frames is None:
        frames = await _async_latest_frames(hass, runtime, config)
    watcher = runtime.watcher_for(camera_entity_id)
    key = SERVICE_KEY
    if wait is False:
        key = watcher.subentry_id if watcher is not None else camera_entity_id
        if not runtime.limiter.try_acquire(key, time.monotonic()):
            return None
    else:
        timeout_s = default_wait_s(runtime) if wait is True else float(wait)
        if not await runtime.limiter.async_acquire_patient(key, timeout_s):
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="busy",
                translation_placeholders={"seconds": f"{timeout_s:g}"},
            )
    try:
        return await async_ask_holding_slot(runtime.backend, runtime.cpu_slots, config, spec, frames)
    finally:
        runtime.limiter.release(key)


async def async_ask_holding_slot(
    backend: VisionBackend,
    cpu_slots: asyncio.Semaphore,
    config: CameraConfig,
    spec: CheckSpec | QuestionSpec,
    frames: Sequence[Frame] | Sequence[bytes],
) -> Answer:
    """Ask about a camera's frames with its settings, for a caller that already holds a limiter slot.

    The watcher takes its slot itself when it decides to start a check (skipping when busy), and then asks
    here, as `async_ask` does once a service's or a dry run's slot came: one path from frames to answer.
    """
    return await ask(
        backend,
        replace(spec, fps=config.fps),
        frames,
        budget=config.token_budget,
        per_condition=config.prompt_mode == PROMPT_PER_CONDITION,
        cpu_slots=cpu_slots,
    )


async def _async_latest_frames(
    hass: HomeAssistant, runtime: MilocoRuntime, config: CameraConfig
) -> list[Frame] | list[bytes]:
    """Return the window a live check would use now, or one snapshot when there is none yet."""
    watcher = runtime.watcher_for(config.camera_entity_id)
    if watcher is not None and (frames := watcher.recent_frames()):
        return frames
    try:
        image = await camera.async_get_image(hass, config.camera_entity_id, timeout=SNAPSHOT_TIMEOUT)
    except HomeAssistantError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="camera_unavailable",
            translation_placeholders={"camera": config.camera_entity_id},
        ) from err
    return [image.content]
