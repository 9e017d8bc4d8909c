"""The per-camera loop: capture → gate → check → state model → events. The schedule decides when; this is glue."""

from __future__ import annotations

import asyncio
import time
from typing import Final

from homeassistant.core import HomeAssistant, callback

from .camera_check import CameraCheck, CheckHooks, Question, RuleProvider
from .camera_config import CameraConfig
from .camera_events import CameraEvents
from .camera_failures import CameraFailures
from .capture import create_source
from .const import LOGGER
from .engine.backends.base import VisionBackend
from .engine.camera_schedule import CameraSchedule, Occasion, Skip, SkipReason, Start
from .engine.camera_state import PRESENCE_KEY, CameraState
from .engine.frame_clock import next_frame_at
from .engine.gate import ChangeGate
from .engine.scheduling import FairLimiter
from .engine.window import Frame
from .entry_link import EntryLink
from .frame_intake import FrameIntake
from .health import BackendHealth
from .keyframes import KeyFrames
from .watcher_stats import WatcherStats

__all__ = ["PRESENCE_KEY", "CameraWatcher", "WatcherStats"]

# How long async_stop() waits for the loop and the check to end: a camera that swallows cancellation is
# abandoned after this, never waited for.
STOP_TIMEOUT_S: Final = 1.0
# A still scene's skips are counted at once, its entities written for the count alone at most this often (each
# write touches every entity; at two a minute, a third of a still room's cost). Changed states are written at once.
STILL_WRITE_S: Final = 30.0


class CameraWatcher:
    """Watches one camera: runs its capture loop and its checks when the schedule says, and publishes the news."""

    def __init__(
        self,
        hass: HomeAssistant,
        link: EntryLink,
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
        self.subentry_id = subentry_id
        self.title = title
        self.config = config
        self._start_task = link.start_task
        # The newest frame of each check, kept when the check fires something (the Last detection image).
        keep = config.saved_frames_max
        self.key_frames = KeyFrames(
            hass, link.start_task, config.camera_entity_id, save=config.save_frames, keep=keep
        )
        self.events = CameraEvents(hass, link.entry_id, subentry_id, config.camera_entity_id, self.key_frames)
        self.state = CameraState(config.state_settings())
        self.failures = CameraFailures(config.camera_entity_id, self.events, health)
        self.schedule = CameraSchedule(
            subentry_id,
            check_interval_s=config.check_interval_s,
            heartbeat_s=config.heartbeat_s,
            gate=ChangeGate(config.change_threshold),
            limiter=limiter,
            spare_slots=config.spare_slots,
        )
        self._intake = FrameIntake(
            hass,
            config,
            create_source(hass, config),
            schedule=self.schedule,
            failures=self.failures,
            cpu_slots=cpu_slots,
        )
        # Counters for the diagnostic sensors, and who is told when checks start and end (the benchmarks).
        self.stats = WatcherStats()
        self.check_hooks = CheckHooks()
        self._check = CameraCheck(
            config=config,
            schedule=self.schedule,
            # Once this check's task has ended: the next check is a task of its own, not a part of this one.
            wake=self._offered,
            backend=backend,
            cpu_slots=cpu_slots,
            state=self.state,
            events=self.events,
            failures=self.failures,
            key_frames=self.key_frames,
            stats=self.stats,
            hooks=self.check_hooks,
        )
        self._phase = phase
        self._base_spec = config.check_spec()
        self._rule_provider: RuleProvider = tuple
        self._loop_task: asyncio.Task[None] | None = None
        # The checks in flight (two at most, the second on a spare slot).
        self._check_tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._still_written_at = -STILL_WRITE_S

    @property
    def available(self) -> bool:
        """Return False while the camera or the model keeps failing."""
        return self.failures.available

    @property
    def running(self) -> bool:
        """Return True while the capture loop runs."""
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def next_check_in(self) -> float:
        """Return how many seconds remain before a check may run (0 when one is due now)."""
        return max(0.0, self.schedule.next_check - time.monotonic())

    @property
    def buffered_frames(self) -> tuple[int, int]:
        """Return how many frames the window holds, and how many it can hold at most."""
        return len(self._intake.window), self._intake.window.capacity

    @callback
    def ask_soon(self) -> None:
        """Check at the next frame even if the scene did not change (a rule about it was added or changed)."""
        self.schedule.ask_soon()

    @callback
    def set_rule_provider(self, provider: RuleProvider) -> None:
        """Ask, at every check, which enabled rules this camera judges (a switch changes them at once)."""
        self._rule_provider = provider

    def recent_frames(self) -> list[Frame]:
        """Return the frames the next check would use, oldest first (empty before the first frame)."""
        return self._intake.recent_frames()

    @callback
    def async_start(self) -> None:
        """Start the capture loop as a task the entry owns (it ends when the entry unloads)."""
        self._loop_task = self._start_task(
            self._async_run(), f"miloco watcher {self.config.camera_entity_id}"
        )

    async def async_stop(self) -> None:
        """Stop capturing and abandon any check in flight, within STOP_TIMEOUT_S whatever the camera does."""
        self._stopping = self.failures.stopping = True
        self.schedule.stop()
        tasks = [
            task
            for task in (self._loop_task, *self._check_tasks, self._intake.capture_task)
            if task is not None and not task.done()
        ]
        for task in tasks:
            task.cancel()
        if tasks:
            # Never an unbounded await: a camera may swallow the cancellation and answer seconds later.
            _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
            if pending:
                LOGGER.debug("Left %d task(s) of %s to end on their own", len(pending), self.title)
        self.events.availability(False)

    async def _async_run(self) -> None:
        """Start the frame source, run the capture loop, and release the source however the loop ends."""
        source = self._intake.source
        try:
            await source.async_start()
            await self._async_loop()
        finally:
            # Also when Home Assistant stops and cancels this task without unloading the entry.
            await source.async_stop()

    async def _async_loop(self) -> None:
        """Capture at the configured rate; after each frame, let the schedule decide."""
        period = 1.0 / self.config.fps
        next_frame = time.monotonic() + self._phase * period
        self.schedule.begin(time.monotonic(), phase=self._phase, on_offer=self._offered)
        await asyncio.sleep(self._phase * period)
        while not self._stopping:
            decision = await self._intake.async_next()
            try:
                self._after_frame(time.monotonic(), still=decision is not None and not decision.changed)
            except Exception:
                # A bug here must not end the camera's loop silently.
                self.failures.log_unexpected("handling a frame")
            next_frame = next_frame_at(
                next_frame, period, stride=self._intake.frame_stride, phase=self._phase
            )
            delay = next_frame - time.monotonic()
            if delay < 0:
                # Capture fell behind (a slow camera): carry on from now rather than burst to catch up.
                next_frame, delay = time.monotonic(), 0.0
            await asyncio.sleep(delay)

    @callback
    def _after_frame(self, now: float, *, still: bool) -> None:
        """Re-arm events in a still scene, start a check when the schedule says, let holds run out."""
        newest = self._intake.window.newest
        if still and newest is not None and not self.schedule.checking:
            self.events.publish(self.state.still(newest.timestamp), reason=None, now=now)
        self._decide(now, Occasion.FRAME)
        self.events.publish(self.state.tick(now), reason=None, now=now)

    @callback
    def _offered(self) -> None:
        """Ask the schedule again soon: after a check's task ended, or a slot freed (once the release has run)."""
        self.hass.loop.call_soon(self._wake)

    @callback
    def _wake(self) -> None:
        """Start a check now if one is due and wanted: after a check answered (work-conserving), or for a slot."""
        self._decide(time.monotonic(), Occasion.WAKE)

    @callback
    def _decide(self, now: float, occasion: Occasion) -> None:
        """Ask the schedule, and act on its answer: start the check, or count the skip it reports."""
        question = Question(self._base_spec, self._rule_provider)
        match self.schedule.decide(now, occasion, asks=question.asks):
            case Start(moving=moving, check=check):
                task = self._start_task(
                    self._check.async_run(question.spec, self.recent_frames(), moving=moving, check=check),
                    f"miloco check {self.config.camera_entity_id}",
                )
                self._check_tasks.add(task)
                task.add_done_callback(self._check_tasks.discard)
            case Skip(reason=SkipReason.STILL, report=True):
                self.stats.skipped_by_gate += 1
                changes = self.state.unchanged(now)
                self.events.publish(changes, reason=None, now=now)
                if changes:
                    # Published with the count already.
                    self._still_written_at = now
                elif now - self._still_written_at >= STILL_WRITE_S:
                    self._still_written_at = now
                    self.events.state()
            case Skip(reason=SkipReason.BUSY, report=True):
                self.stats.skipped_busy += 1
                self.events.state()
