"""People's questions to the model (the services, AI Task, Assist): one slot policy, one path, translated errors.

A camera's live check skips when the model is busy; a person's question waits for the next free slot, ahead
of waiting cameras (engine/scheduling.py bounds how far), for at most the entry's model timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Final

from homeassistant.components import camera
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from .asking import async_ask_holding_slot
from .camera_config import CameraConfig
from .const import BACKEND_EMBEDDED, CONF_BACKEND, CONF_CAMERA, PROMPT_PER_CONDITION, SNAPSHOT_TIMEOUT
from .engine.check import Answer, NamedImage, SeparateImages, ask
from .engine.frames import FramePlan
from .engine.prompt import CheckSpec, QuestionSpec
from .engine.window import Frame
from .runtime import MilocoRuntime
from .settings import EMBEDDED_TIMEOUT, REMOTE_TIMEOUT, stored_value
from .translate import busy, camera_unavailable, translated_errors

# The limiter key every person's question waits under (live checks use their camera's subentry id).
PERSON_KEY: Final = "person"


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
        for rule in runtime.rules_for(config.camera_entity_id)
        if rule.enabled or rule.subentry_id == trying
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
    """Return how long a person's question waits for a free slot: one model timeout of the entry."""
    setting = EMBEDDED_TIMEOUT if runtime.data.get(CONF_BACKEND) == BACKEND_EMBEDDED else REMOTE_TIMEOUT
    # A stored value that is not a valid timeout comes back as the default.
    timeout, _problem = stored_value(setting, runtime.data)
    return float(timeout)


@asynccontextmanager
async def person_slot(runtime: MilocoRuntime, wait_s: float | None = None) -> AsyncIterator[None]:
    """Hold one of the model's slots for a person's question, waiting up to `wait_s` (the entry's timeout).

    Raises the translated "busy" error when no slot came in time.
    """
    timeout_s = default_wait_s(runtime) if wait_s is None else wait_s
    if not await runtime.limiter.async_acquire_patient(PERSON_KEY, timeout_s):
        raise busy(timeout_s)
    try:
        yield
    finally:
        runtime.limiter.release(PERSON_KEY)


async def async_ask(
    hass: HomeAssistant,
    runtime: MilocoRuntime,
    camera_entity_id: str,
    spec: CheckSpec | QuestionSpec,
    *,
    wait_s: float | None = None,
) -> Answer:
    """Ask the model about a camera's latest frames with the camera's own settings, for a person.

    The frames are the watcher's current window, or one snapshot of a camera nobody watches (taken before
    a slot is held). Errors come back translated.
    """
    answer, _newest = await async_ask_showing(hass, runtime, camera_entity_id, spec, wait_s=wait_s)
    return answer


async def async_ask_showing(
    hass: HomeAssistant,
    runtime: MilocoRuntime,
    camera_entity_id: str,
    spec: CheckSpec | QuestionSpec,
    *,
    wait_s: float | None = None,
) -> tuple[Answer, bytes]:
    """Ask as async_ask does; return the answer and the newest frame it looked at (the key frame to keep)."""
    config = camera_settings(runtime, camera_entity_id)
    frames = await _async_latest_frames(hass, runtime, config)
    newest = frames[-1]
    async with person_slot(runtime, wait_s):
        with translated_errors(hass, camera=camera_entity_id):
            answer = await async_ask_holding_slot(runtime.backend, runtime.cpu_slots, config, spec, frames)
    return answer, newest.jpeg if isinstance(newest, Frame) else newest


async def async_ask_images(
    hass: HomeAssistant,
    runtime: MilocoRuntime,
    spec: QuestionSpec,
    images: Sequence[NamedImage],
    budget: int,
) -> Answer:
    """Ask a person's question about separate named images (or none) within an image-token budget."""
    plan = FramePlan(frames=max(1, len(images)), budget=budget)
    async with person_slot(runtime):
        with translated_errors(hass):
            return await ask(
                runtime.backend,
                spec,
                SeparateImages(tuple(images)),
                plan=plan,
                per_condition=False,
                cpu_slots=runtime.cpu_slots,
            )


async def async_ask_clip(
    hass: HomeAssistant,
    runtime: MilocoRuntime,
    spec: QuestionSpec,
    clip: Sequence[Frame],
    budget: int,
) -> Answer:
    """Ask a person's question about a clip (a video's frames, oldest first) within an image-token budget."""
    plan = FramePlan(frames=max(1, len(clip)), budget=budget)
    async with person_slot(runtime):
        with translated_errors(hass):
            return await ask(
                runtime.backend, spec, clip, plan=plan, per_condition=False, cpu_slots=runtime.cpu_slots
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
        raise camera_unavailable(config.camera_entity_id) from err
    return [image.content]
