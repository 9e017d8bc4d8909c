"""The per-camera loop: capture → gate → check → state model → events. It schedules; the engine decides."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
import time
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant, callback
from homeassistant.util import dt as dt_util

from .asking import async_ask_holding_slot
from .camera_config import CameraConfig
from .camera_events import CameraEvents
from .camera_failures import CameraFailures
from .capture import Captured, CaptureError, create_source
from .const import LOGGER
from .engine.backends.base import VisionBackend
from .engine.backends.errors import BackendError, BadReply
from .engine.camera_state import PRESENCE_KEY, CameraState, CameraStateSettings
from .engine.frames import FrameDecodeError, FramePlan, FrameVersions
from .engine.gate import ChangeGate, GateDecision, thumbnail
from .engine.parse import ReplyParseError
from .engine.prompt import CheckSpec, RuleSpec
from .engine.scheduling import FairLimiter
from .engine.window import Frame, FrameWindow, prepare_capture
from .health import BackendHealth
from .keyframes import KeyFrames

type RuleProvider = Callable[[], tuple[RuleSpec, ...]]
__all__ = ["PRESENCE_KEY", "CameraWatcher", "WatcherStats"]

# How long async_stop() waits for the loop and the check to end: a camera that swallows cancellation is
# abandoned after this, never waited for.
STOP_TIMEOUT_S: Final = 1.0
# A still scene's skip is counted, and its states refreshed, at most this often: a short check interval
# must not turn a still room into a stream of state writes.
STILL_REPORT_S: Final = 2.0


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
    """Watches one camera: schedules captures and checks, and hands their results to the state model."""

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
        """Prepare the state model; nothing runs until async_start(). Raise ValueError for bad settings.

        `phase` (0 to 1) offsets this camera's frame and check clocks, so that an entry's cameras spread their
        image work over the period instead of all landing on the executor at the same instant.
        """
        self.hass = hass
        self.entry = entry
        self.subentry_id = subentry_id
        self.title = title
        self.config = config
        self.stats = WatcherStats()
        # The newest frame of each check, kept when the check fires something (the Last detection image).
        self.key_frames = KeyFrames(
            hass, entry, config.camera_entity_id, save=config.save_frames, keep=config.saved_frames_max
        )
        self.events = CameraEvents(
            hass, entry.entry_id, subentry_id, config.camera_entity_id, self.key_frames
        )
        self.state = CameraState(
            CameraStateSettings(
                gestures=config.gestures,
                activities=config.activities,
                presence=config.presence,
                hold_s=config.hold_s,
                window_s=config.window_s,
                check_interval_s=config.check_interval_s,
            )
        )
        self._backend = backend
        self._limiter = limiter
        self._health = health
        self._cpu_slots = cpu_slots
        self._phase = phase
        self._base_spec = config.check_spec()
        self._rule_provider: RuleProvider = tuple
        # Enough room for the window plus a little slack; the buffer never grows past it.
        self._window = FrameWindow.for_checks_of(config.window_frames)
        self._plan = FramePlan(frames=config.window_frames, budget=config.token_budget)
        self._gate = ChangeGate(config.change_threshold)
        self._source = create_source(hass, config)
        self._decision: GateDecision | None = None
        # Frames in a row the gate found unchanged since the last check.
        self._still_frames = 0
        self._loop_task: asyncio.Task[None] | None = None
        self._check_task: asyncio.Task[None] | None = None
        self._capture_task: asyncio.Task[Captured | None] | None = None
        self._stopping = False
        self._next_check = 0.0
        self._next_skip_count = 0.0
        self._last_check_at: float | None = None
        self._busy_counted = False
        self._remove_waker: Callable[[], None] | None = None
        self.failures = CameraFailures(config.camera_entity_id, config.check_interval_s, self.events, health)

    @property
    def available(self) -> bool:
        """Return False while the camera or the model keeps failing."""
        return self.failures.available

    @property
    def running(self) -> bool:
        """Return True while the capture loop runs."""
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def checking(self) -> bool:
        """Return True while a check is in flight."""
        # A task started eagerly can finish before it is even stored: a done task is no check in flight.
        return self._check_task is not None and not self._check_task.done()

    @property
    def next_check_in(self) -> float:
        """Return how many seconds remain before a check may run (0 when one is due now)."""
        return max(0.0, self._next_check - time.monotonic())

    @property
    def _still_report_s(self) -> float:
        """Return how often a still scene's skip is counted and its states refreshed."""
        return max(self.config.check_interval_s, STILL_REPORT_S)

    @property
    def buffered_frames(self) -> tuple[int, int]:
        """Return how many frames the window holds, and how many it can hold at most."""
        return len(self._window), self._window.capacity

    @callback
    def ask_soon(self) -> None:
        """Check at the next frame even if the scene did not change (a rule about it was added or changed)."""
        self._gate.force()

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
        self._remove_waker = self._limiter.set_waker(self.subentry_id, self._offered_slot)
        self._loop_task = self.entry.async_create_background_task(
            self.hass, self._async_run(), f"miloco watcher {self.config.camera_entity_id}"
        )

    async def async_stop(self) -> None:
        """Stop capturing and abandon any check in flight, within STOP_TIMEOUT_S whatever the camera does."""
        self._stopping = self.failures.stopping = True
        if self._remove_waker is not None:
            self._remove_waker()
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
        self.events.availability(False)

    async def _async_run(self) -> None:
        """Start the frame source, run the capture loop, and release the source however the loop ends."""
        try:
            await self._source.async_start()
            await self._async_loop()
        finally:
            # Also when Home Assistant stops and cancels this task without unloading the entry.
            await self._source.async_stop()

    async def _async_loop(self) -> None:
        """Capture at the configured rate; after each frame, let the gate and the clock decide."""
        period = 1.0 / self.config.fps
        next_frame = time.monotonic() + self._phase * period
        self._next_check = time.monotonic() + self._phase * self.config.check_interval_s
        await asyncio.sleep(self._phase * period)
        while not self._stopping:
            await self._async_capture()
            try:
                self._after_frame(time.monotonic())
            except Exception:
                # A bug here must not end the camera's loop silently.
                self.failures.log_unexpected("handling a frame")
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
            prepared: FrameVersions | None = None
            async with self._cpu_slots:
                if self._still_frames >= self.config.window_frames:
                    # Still for a whole window: the model would not see this frame unless something moves,
                    # so the gate's thumbnail is all it needs (the check that follows a change, or the
                    # heartbeat's, sizes its window itself). A still room costs no more than before.
                    thumb = await self.hass.async_add_executor_job(thumbnail, jpeg)
                else:
                    # One decode per frame: the gate's thumbnail and every size a check's window takes.
                    thumb, prepared = await self.hass.async_add_executor_job(
                        prepare_capture, jpeg, self._plan
                    )
        except (CaptureError, FrameDecodeError, OSError) as err:
            self.failures.capture_failed(str(err))
            return
        except Exception as err:
            # Any other camera or decoder fault is a failed capture too.
            self.failures.log_unexpected("capturing a frame")
            self.failures.capture_failed(type(err).__name__)
            return
        self._window.add(Frame(taken_at, jpeg, thumb, prepared))
        if self.config.motion_entity_id and self.hass.states.is_state(self.config.motion_entity_id, STATE_ON):
            self._gate.force()
        self._decision = self._gate.observe(thumb, time.monotonic())
        self._still_frames = 0 if self._decision.changed else self._still_frames + 1
        self.failures.capture_ok()

    @callback
    def _after_frame(self, now: float) -> None:
        """Re-arm events in a still scene, start a check when one is due and worth it, let holds run out."""
        newest = self._window.newest
        still = self._decision is not None and not self._decision.changed
        if still and newest is not None and not self.checking:
            self.events.publish(self.state.still(newest.timestamp), reason=None, now=now)
        self._maybe_start_check(now)
        self.events.publish(self.state.tick(now), reason=None, now=now)

    @callback
    def _maybe_start_check(self, now: float) -> None:
        """Run a check when one is due, the scene changed (or the heartbeat is due) and a slot is free."""
        if self._stopping or now < self._next_check or self._decision is None:
            return
        if self.checking:
            # Not a busy backend: the check in flight starts the next one when it answers, if still needed.
            return
        heartbeat_due = self.config.heartbeat_s > 0 and (
            self._last_check_at is None or now - self._last_check_at >= self.config.heartbeat_s
        )
        if not (self._decision.changed or heartbeat_due):
            # No change, no news. The check stays due: a change in the very next frame is checked at once
            # instead of an interval later. The skip is counted (and the states refreshed) now and then.
            if now >= self._next_skip_count:
                self._next_skip_count = now + self._still_report_s
                self.stats.skipped_by_gate += 1
                self.events.publish(self.state.unchanged(now), reason=None, now=now)
                self.events.state()
            return
        self._start_check(now, moving=self._decision.changed)

    @callback
    def _offered_slot(self) -> bool:
        """Take a slot another camera freed, if a refused check of a changed scene is still due (the limiter asks)."""
        if not self._wants_check(time.monotonic()):
            return False
        # Not from inside the limiter's release: the check starts once the releasing code has run.
        self.hass.loop.call_soon(self._start_wanted_check)
        return True

    @callback
    def _start_wanted_check(self) -> None:
        """Start a check now if one is wanted: after a check answered (work-conserving) or for a freed slot.

        Only when the scene moved since the last answered window (or a check was forced), the interval (a
        minimum the user can raise) has passed and the limiter gives a slot: a still scene, or a backend
        shared with waiting cameras, gets no extra request. Otherwise the next frame decides, as usual.
        """
        now = time.monotonic()
        if self._wants_check(now):
            self._start_check(now, moving=True)

    def _wants_check(self, now: float) -> bool:
        """Return True when a check could start now for a scene that changed since the last one answered.

        A change latched since then was seen in a frame newer than that check's window (`ChangeGate`).
        """
        return (
            not self._stopping
            and not self.checking
            and now >= self._next_check
            and self._window.newest is not None
            and self._gate.changed_since_check
        )

    @callback
    def _start_check(self, now: float, *, moving: bool) -> None:
        """Start a check of the newest window if the limiter gives a slot; a refused check stays due."""
        spec = replace(self._base_spec, rules=self._rule_provider())
        if spec.is_empty:
            # Only rules asked for this camera, and all of them are switched off.
            self._next_check = now + self.config.check_interval_s
            return
        if not self._limiter.try_acquire(self.subentry_id, now):
            # Skipped, not queued: the next frame, or a slot freed for this camera's turn, tries again with
            # newer frames.
            self._count_busy()
            return
        self._busy_counted = False
        self._next_check = now + self.config.check_interval_s
        self._next_skip_count = now + self._still_report_s
        self._last_check_at = now
        frames = self.recent_frames()
        if frames[-1].thumb is not None:
            self._gate.check_started(frames[-1].thumb)
        self._check_task = self.entry.async_create_background_task(
            self.hass,
            self._async_check(spec, frames, moving),
            f"miloco check {self.config.camera_entity_id}",
        )

    def _count_busy(self) -> None:
        """Count a due check that found the backend busy, once per due check."""
        if not self._busy_counted:
            self._busy_counted = True
            self.stats.skipped_busy += 1
            self.events.state()

    async def _async_check(self, spec: CheckSpec, frames: list[Frame], moving: bool) -> None:
        """Ask the model about the frames and hand the answer to the state model; every failure counts.

        Positional arguments only: the benchmark wraps this method to time each check.
        """
        try:
            answer = await async_ask_holding_slot(self._backend, self._cpu_slots, self.config, spec, frames)
        except BackendError as err:
            self._check_failed(err)
            return
        except (ReplyParseError, FrameDecodeError) as err:
            self._check_failed(BadReply(str(err)))
            return
        except Exception as err:
            # An odd frame or reply must cost one check, never the loop (nor an unretrieved task error).
            self.failures.log_unexpected("checking the frames")
            self._check_failed(BadReply(type(err).__name__))
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
        self.failures.check_ok()
        self.key_frames.set_check_frame(frames[-1].jpeg)
        now = time.monotonic()
        changes = self.state.answered(
            answer.observation, now, window_end=frames[-1].timestamp, moving=moving, asked=spec.rules
        )
        self.events.publish(changes, reason=answer.observation.reason, now=now)
        # Once this check's task has ended: the next check is a task of its own, not a part of this one.
        self.hass.loop.call_soon(self._start_wanted_check)

    @callback
    def _check_failed(self, err: BackendError) -> None:
        """Count a failed check, and put the next one off by the back-off (or the server's Retry-After)."""
        if self._stopping:
            # The backend closes under a check abandoned by a stop: not the model's fault.
            return
        self.stats.failures += 1
        wait = self.failures.check_failed(err)
        self._next_check = max(self._next_check, time.monotonic() + wait)
        self.events.state()


def _consume_outcome(task: asyncio.Task[Any]) -> None:
    """Retrieve a finished task's exception, so that asyncio never reports it as unretrieved."""
    if not task.cancelled():
        task.exception()
