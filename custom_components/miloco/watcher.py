"""The per-camera loop that drives the engine from Home Assistant: capture, gate, check, dispatch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
import math
import time
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import STATE_ON
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.util import dt as dt_util

from .camera_config import CameraConfig
from .capture import Captured, CaptureError, create_source
from .const import EVENT_MILOCO, FAILURES_BEFORE_UNAVAILABLE, LOGGER, PROMPT_PER_CONDITION
from .devices import async_device_id
from .engine.backends.base import VisionBackend
from .engine.backends.errors import BackendError, BadReply, InvalidAuth
from .engine.check import ask
from .engine.frames import FrameDecodeError
from .engine.gate import ChangeGate, GateDecision, Thumb, thumbnail
from .engine.labels import PRESENCE
from .engine.parse import ReplyParseError
from .engine.prompt import (
    CheckSpec,
    Observation,
    RuleSpec,
)
from .engine.rules import EpisodeTracker, HoldState, Transition
from .engine.scheduling import FairLimiter
from .engine.window import Frame, FrameWindow
from .health import BackendHealth
from .listeners import Listeners

type GestureListener = Callable[[str], None]
# (observation, now, moving): `moving` is False for a heartbeat check of a scene the gate saw as still.
type CheckListener = Callable[[Observation, float, bool], None]
# (now): the scene has been still for a whole window since the last check; events re-arm.
type StillListener = Callable[[float], None]
# (available): the camera's verdicts are news again (True) or no longer count (False).
type AvailabilityListener = Callable[[bool], None]
type RuleProvider = Callable[[], tuple[RuleSpec, ...]]
PRESENCE_KEY = PRESENCE.key

# How long async_stop() waits for the loop and the check to end: a camera that swallows cancellation is
# abandoned after this, never waited for.
STOP_TIMEOUT_S: Final = 1.0
# Failed checks back off exponentially from the check interval up to this, or longer when the server asks.
BACKOFF_MAX_S: Final = 60.0
# A Retry-After beyond this is not believed (a misconfigured server must not silence a camera for days).
RETRY_AFTER_MAX_S: Final = 3600.0
# A refused key is retried this rarely while the reauth flow waits for the user.
AUTH_RETRY_S: Final = 300.0


@dataclass(slots=True)
class WatcherStats:
    """Counters shown by the camera's diagnostic sensors."""

    checks: int = 0
    skipped_by_gate: int = 0
    skipped_busy: int = 0
    failures: int = 0
    last_analysis: datetime | None = None
    last_latency_s: float | None = None
    last_image_tokens: int | None = None
    last_reason: str | None = None


class CameraWatcher:
    """Watches one camera: frames in, gestures, activities and presence out."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        subentry_id: str,
        title: str,
        config: CameraConfig,
        *,
        backend: VisionBackend,
        limiter: FairLimiter,
        health: BackendHealth,
        cpu_slots: asyncio.Semaphore,
        phase: float = 0.0,
    ) -> None:
        """Prepare the state machines; nothing runs until async_start().

        `phase` (0 to 1) offsets this camera's frame and check clocks, so that an entry's cameras spread their
        image work over the period instead of all landing on the executor at the same instant.
        """
        self.hass = hass
        self.entry = entry
        self.subentry_id = subentry_id
        self.title = title
        self.config = config
        self.stats = WatcherStats()
        self._backend = backend
        self._limiter = limiter
        self._health = health
        self._cpu_slots = cpu_slots
        self._phase = phase
        self._base_spec = config.check_spec()
        self._rule_provider: RuleProvider = tuple
        # Enough room for the window plus a little slack; the buffer never grows past it.
        self._window = FrameWindow.for_checks_of(config.window_frames)
        self._gate = ChangeGate(config.change_threshold)
        self._source = create_source(hass, config)
        self._decision: GateDecision | None = None
        self._episodes = {
            key: EpisodeTracker(max_gap_s=max(config.window_s, config.check_interval_s * 2))
            for key in config.gestures
        }
        self._holds = {key: HoldState(config.hold_s) for key in config.activities}
        if config.presence:
            self._holds[PRESENCE_KEY] = HoldState(config.hold_s)
        self._listeners: Listeners[()] = Listeners()
        self._gesture_listeners: Listeners[str] = Listeners()
        self._check_listeners: Listeners[Observation, float, bool] = Listeners()
        self._still_listeners: Listeners[float] = Listeners()
        self._availability_listeners: Listeners[bool] = Listeners()
        self._loop_task: asyncio.Task[None] | None = None
        self._check_task: asyncio.Task[None] | None = None
        self._capture_task: asyncio.Task[Captured | None] | None = None
        self._stopping = False
        self._next_check = 0.0
        self._next_skip_count = 0.0
        self._last_check_at: float | None = None
        # When the newest frame of the last check that ran was taken, while its events await re-arming.
        self._rearm_after: float | None = None
        self._busy_counted = False
        self._camera_failures = 0
        self._model_failures = 0
        self._unexpected_logged = False

    @property
    def available(self) -> bool:
        """Return False while the camera or the model keeps failing."""
        return (
            self._camera_failures < FAILURES_BEFORE_UNAVAILABLE
            and self._model_failures < FAILURES_BEFORE_UNAVAILABLE
        )

    @property
    def running(self) -> bool:
        """Return True while the capture loop runs."""
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def next_check_in(self) -> float:
        """Return how many seconds remain before a check may run (0 when one is due now)."""
        return max(0.0, self._next_check - time.monotonic())

    @property
    def buffered_frames(self) -> tuple[int, int]:
        """Return how many frames the window holds, and how many it can hold at most."""
        return len(self._window), self._window.capacity

    def is_on(self, key: str) -> bool:
        """Return whether an activity (or presence, key 'person') is going on."""
        return self._holds[key].is_on

    @callback
    def async_add_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener` whenever states, availability or counters change; return the remover."""
        return self._listeners.add(listener)

    @callback
    def async_add_gesture_listener(self, listener: GestureListener) -> CALLBACK_TYPE:
        """Call `listener(gesture)` once per gesture episode; return the remover."""
        return self._gesture_listeners.add(listener)

    @callback
    def async_add_check_listener(self, listener: CheckListener) -> CALLBACK_TYPE:
        """Call `listener(observation, now, moving)` after every check that ran (rules judge there)."""
        return self._check_listeners.add(listener)

    @callback
    def async_add_still_listener(self, listener: StillListener) -> CALLBACK_TYPE:
        """Call `listener(now)` when the scene has been still for a whole window after a check."""
        return self._still_listeners.add(listener)

    @callback
    def async_add_availability_listener(self, listener: AvailabilityListener) -> CALLBACK_TYPE:
        """Call `listener(available)` when the camera's answers stop or start counting; return the remover."""
        return self._availability_listeners.add(listener)

    @callback
    def set_rule_provider(self, provider: RuleProvider) -> None:
        """Ask, at every check, which enabled rules this camera judges (a switch changes them at once)."""
        self._rule_provider = provider

    def recent_frames(self) -> list[Frame]:
        """Return the frames the next check would use, oldest first (empty before the first frame)."""
        newest = self._window.newest
        if newest is None:
            return []
        # The window ends at the newest frame, which a stream decoded a little before now.
        return self._window.select(self.config.window_frames, self.config.window_s, newest.timestamp)

    @callback
    def async_start(self) -> None:
        """Start the capture loop as a task the entry owns (it ends when the entry unloads)."""
        self._loop_task = self.entry.async_create_background_task(
            self.hass, self._async_run(), f"miloco watcher {self.config.camera_entity_id}"
        )

    async def async_stop(self) -> None:
        """Stop capturing and abandon any check in flight, within STOP_TIMEOUT_S whatever the camera does."""
        self._stopping = True
        tasks = [
            task
            for task in (self._loop_task, self._check_task, self._capture_task)
            if task is not None and not task.done()
        ]
        for task in tasks:
            task.cancel()
        if tasks:
            # Never an unbounded await: a camera may swallow the cancellation and answer seconds later.
            _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
            if pending:
                LOGGER.debug("Left %d task(s) of %s to end on their own", len(pending), self.title)
        self._limiter.forget(self.subentry_id)
        self._availability_listeners(False)

    async def _async_run(self) -> None:
        """Start the frame source, run the capture loop, and release the source however the loop ends."""
        try:
            await self._source.async_start()
            await self._async_loop()
        finally:
            # Also when Home Assistant stops and cancels this task without unloading the entry.
            await self._source.async_stop()

    async def _async_loop(self) -> None:
        """Capture at the configured rate; start a check whenever one is due and worth it."""
        period = 1.0 / self.config.fps
        next_frame = time.monotonic() + self._phase * period
        self._next_check = time.monotonic() + self._phase * self.config.check_interval_s
        await asyncio.sleep(self._phase * period)
        while not self._stopping:
            await self._async_capture()
            now = time.monotonic()
            try:
                self._maybe_rearm()
                self._maybe_start_check(now)
                self._tick(now)
            except Exception:
                self._log_unexpected("handling a frame")
            next_frame += period
            delay = next_frame - time.monotonic()
            if delay < 0:
                # Capture fell behind (a slow camera): carry on from now rather than burst to catch up.
                next_frame, delay = time.monotonic(), 0.0
            await asyncio.sleep(delay)

    async def _async_take(self) -> Captured | None:
        """Return the source's next frame, from a task of its own that a stop abandons instead of awaiting.

        Home Assistant's camera code turns a cancellation into HomeAssistantError, so cancelling a capture
        awaited directly would not end this loop; waiting on the task lets the cancellation land here.
        """
        task = self.hass.async_create_background_task(
            self._source.async_next(), f"miloco capture {self.config.camera_entity_id}"
        )
        # Retrieve the outcome of an abandoned capture, so that none is reported as never retrieved.
        task.add_done_callback(_consume_outcome)
        self._capture_task = task
        try:
            await asyncio.wait((task,))
        finally:
            self._capture_task = None
            if not task.done():
                task.cancel()
        return task.result()

    async def _async_capture(self) -> None:
        """Take the source's next frame into the window and let the gate look at it."""
        # A gate decision belongs to its frame: with no new frame (a failure, or a stream between two
        # frames) no check starts on frames that were already judged.
        self._decision = None
        try:
            captured = await self._async_take()
            if captured is None:
                # A stream with no new frame since the last one: nothing to add, and nothing failed.
                return
            taken_at, jpeg = captured
            async with self._cpu_slots:
                thumb: Thumb = await self.hass.async_add_executor_job(thumbnail, jpeg)
        except (CaptureError, FrameDecodeError, OSError) as err:
            self._camera_failed(str(err))
            return
        except Exception as err:
            if self._stopping:
                return
            self._log_unexpected("capturing a frame")
            self._camera_failed(type(err).__name__)
            return
        now = time.monotonic()
        self._window.add(Frame(taken_at, jpeg, thumb))
        if self.config.motion_entity_id and self.hass.states.is_state(self.config.motion_entity_id, STATE_ON):
            self._gate.force()
        self._decision = self._gate.observe(thumb, now)
        self._camera_ok()

    @callback
    def _maybe_rearm(self) -> None:
        """End gesture episodes and re-arm event rules once the scene has been still for a whole window.

        A "yes" from a window that still held the end of a wave must not outlive it: a still window holds no
        wave, so no model call is needed to know that the next wave is a new one. States are untouched.
        """
        newest = self._window.newest
        if (
            self._rearm_after is None
            or self._check_task is not None
            or self._decision is None
            or self._decision.changed
            or newest is None
            or newest.timestamp - self._rearm_after < self.config.window_s
        ):
            return
        self._rearm_after = None
        for tracker in self._episodes.values():
            tracker.end()
        self._still_listeners(newest.timestamp)

    @callback
    def _maybe_start_check(self, now: float) -> None:
        """Run a check when one is due, the scene changed (or the heartbeat is due) and a slot is free."""
        newest = self._window.newest
        if self._stopping or now < self._next_check or self._decision is None or newest is None:
            return
        if self._check_task is not None:
            self._count_busy()
            return
        heartbeat_due = self.config.heartbeat_s > 0 and (
            self._last_check_at is None or now - self._last_check_at >= self.config.heartbeat_s
        )
        if not (self._decision.changed or heartbeat_due):
            # No change, no news. The check stays due: a change in the very next frame is checked at once
            # instead of an interval later. The skip is counted (and the states refreshed) once per interval.
            if now >= self._next_skip_count:
                self._next_skip_count = now + self.config.check_interval_s
                self.stats.skipped_by_gate += 1
                self._scene_unchanged(now)
            return
        spec = replace(self._base_spec, rules=self._rule_provider())
        if spec.is_empty:
            # Only rules asked for this camera, and all of them are switched off.
            self._next_check = now + self.config.check_interval_s
            return
        if not self._limiter.try_acquire(self.subentry_id, now):
            # Skipped, not queued: the next frame tries again with newer frames.
            self._count_busy()
            return
        self._busy_counted = False
        self._next_check = self._next_skip_count = now + self.config.check_interval_s
        self._last_check_at = now
        frames = self.recent_frames()
        self._check_task = self.entry.async_create_background_task(
            self.hass,
            self._async_check(spec, frames, moving=self._decision.changed),
            f"miloco check {self.config.camera_entity_id}",
        )

    def _count_busy(self) -> None:
        """Count a due check that found the backend busy, once per due check."""
        if not self._busy_counted:
            self._busy_counted = True
            self.stats.skipped_busy += 1
            self._notify()

    async def _async_check(self, spec: CheckSpec, frames: list[Frame], *, moving: bool) -> None:
        """Ask the model about the frames and apply its answer; every failure is counted, none escapes."""
        try:
            answer = await ask(
                self._backend,
                spec,
                [frame.jpeg for frame in frames],
                budget=self.config.token_budget,
                per_condition=self.config.prompt_mode == PROMPT_PER_CONDITION,
                cpu_slots=self._cpu_slots,
            )
        except BackendError as err:
            self._model_failed(err)
            return
        except (ReplyParseError, FrameDecodeError) as err:
            self._model_failed(BadReply(str(err)))
            return
        except Exception as err:
            self._log_unexpected("checking the frames")
            self._model_failed(BadReply(type(err).__name__))
            return
        finally:
            self._limiter.release(self.subentry_id)
            self._check_task = None
        if self._stopping:
            return
        if frames[-1].thumb is not None:
            self._gate.mark_checked(frames[-1].thumb)
        self.stats.checks += 1
        self.stats.last_analysis = dt_util.utcnow()
        self.stats.last_latency_s = answer.latency_s
        self.stats.last_image_tokens = answer.image_tokens
        self.stats.last_reason = answer.observation.reason
        self._model_ok()
        self._rearm_after = frames[-1].timestamp
        self._apply(answer.observation, time.monotonic(), moving=moving)

    @callback
    def _apply(self, observation: Observation, now: float, *, moving: bool) -> None:
        """Feed a check's answer to the state machines and publish what changed.

        A check of a still scene (a heartbeat) re-validates states but starts no gesture: events need motion.
        """
        for key, tracker in self._episodes.items():
            if tracker.update(moving and key in observation.gestures, now):
                self._fire_gesture(key)
        for key, hold in self._holds.items():
            if key == PRESENCE_KEY:
                if observation.person_present is None:
                    continue
                transition = hold.update(observation.person_present, now)
            else:
                transition = hold.update(key in observation.activities, now)
            self._publish_transition(key, transition)
        self._check_listeners(observation, now, moving)
        self._notify()

    @callback
    def _scene_unchanged(self, now: float) -> None:
        """No change, no news: episodes and states stay as the last check left them."""
        for tracker in self._episodes.values():
            tracker.update(False, now, checked=False)
        for key, hold in self._holds.items():
            self._publish_transition(key, hold.refresh(now))
        self._notify()

    @callback
    def _tick(self, now: float) -> None:
        """Let hold times run out."""
        for key, hold in self._holds.items():
            if (transition := hold.tick(now)) is not None:
                self._publish_transition(key, transition)
                self._notify()

    @callback
    def _fire_gesture(self, gesture: str) -> None:
        """Tell the gesture entity and the bus about a new gesture episode."""
        self._gesture_listeners(gesture)
        self._fire_bus_event("gesture", gesture=gesture)

    @callback
    def _publish_transition(self, key: str, transition: Transition | None) -> None:
        """Put an activity or presence change on the bus."""
        if transition is None:
            return
        if key == PRESENCE_KEY:
            self._fire_bus_event(f"presence_{transition}")
        else:
            self._fire_bus_event(f"activity_{transition}", activity=key)

    @callback
    def _fire_bus_event(self, event_type: str, **data: str) -> None:
        """Fire a miloco_event for YAML automations, naming the device and the camera."""
        self.hass.bus.async_fire(
            EVENT_MILOCO,
            {
                "device_id": async_device_id(self.hass, self.entry.entry_id, self.subentry_id),
                "type": event_type,
                "camera_entity_id": self.config.camera_entity_id,
                **data,
            },
        )

    @callback
    def _log_unexpected(self, doing: str) -> None:
        """Log an unexpected error with its traceback, once per watcher (a persistent fault must not spam)."""
        if self._unexpected_logged:
            LOGGER.debug(
                "Unexpected error while %s on %s", doing, self.config.camera_entity_id, exc_info=True
            )
            return
        self._unexpected_logged = True
        LOGGER.warning(
            "Unexpected error while %s on %s; counted as a failure",
            doing,
            self.config.camera_entity_id,
            exc_info=True,
        )

    @callback
    def _camera_failed(self, reason: str) -> None:
        """Count a failed capture; the camera's entities go unavailable after a few in a row."""
        if self._stopping:
            return
        self._camera_failures += 1
        if self._camera_failures == FAILURES_BEFORE_UNAVAILABLE:
            LOGGER.warning("Camera %s gives no images: %s", self.config.camera_entity_id, reason)
            self._availability_listeners(False)
            self._notify()

    @callback
    def _camera_ok(self) -> None:
        """Reset the capture failure streak."""
        recovered = self._camera_failures >= FAILURES_BEFORE_UNAVAILABLE
        self._camera_failures = 0
        if recovered:
            LOGGER.info("Camera %s gives images again", self.config.camera_entity_id)
            self._notify()

    @callback
    def _model_failed(self, err: BackendError) -> None:
        """Count a failed check, back off before the next one; the entities go unavailable after a few."""
        if self._stopping:
            # The backend closes under a check abandoned by async_stop(): not the model's fault.
            return
        was_available = self.available
        self.stats.failures += 1
        self._model_failures += 1
        if isinstance(err, InvalidAuth):
            # The key will not start working by itself: ask the user now, and stop hammering the server.
            self._model_failures = max(self._model_failures, FAILURES_BEFORE_UNAVAILABLE)
        self._health.record_failure(err)
        self._next_check = max(self._next_check, time.monotonic() + self._backoff_s(err))
        if self._model_failures == FAILURES_BEFORE_UNAVAILABLE or (was_available and not self.available):
            LOGGER.warning(
                "Miloco cannot analyse %s: the model backend fails (%s)",
                self.config.camera_entity_id,
                err.reason,
            )
        if was_available and not self.available:
            self._availability_listeners(False)
        self._notify()

    def _backoff_s(self, err: BackendError) -> float:
        """Return the wait before the next check: exponential back-off, or longer when the server asks."""
        if isinstance(err, InvalidAuth):
            return AUTH_RETRY_S
        doublings = min(self._model_failures - 1, 16)
        backoff = min(BACKOFF_MAX_S, self.config.check_interval_s * 2.0**doublings)
        retry_after = getattr(err, "retry_after", None)
        if isinstance(retry_after, int | float) and math.isfinite(retry_after) and retry_after > 0:
            return max(backoff, min(float(retry_after), RETRY_AFTER_MAX_S))
        return backoff

    @callback
    def _model_ok(self) -> None:
        """Reset the check failure streak."""
        if self._model_failures >= FAILURES_BEFORE_UNAVAILABLE:
            LOGGER.info("Miloco analyses %s again", self.config.camera_entity_id)
        self._model_failures = 0
        self._health.record_success()

    @callback
    def _notify(self) -> None:
        """Tell the entities to write their state."""
        self._listeners()


def _consume_outcome(task: asyncio.Task[Any]) -> None:
    """Retrieve a finished task's exception, so that asyncio never reports it as unretrieved."""
    if not task.cancelled():
        task.exception()
