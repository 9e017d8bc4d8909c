"""One camera check: ask the model about a window, then publish its answer or count its failure."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
import time

from homeassistant.util import dt as dt_util

from .asking import async_ask_holding_slot
from .camera_config import CameraConfig
from .camera_events import CameraEvents
from .camera_failures import CameraFailures
from .engine.backends.base import VisionBackend
from .engine.backends.errors import BackendError, BadReply
from .engine.camera_schedule import CameraSchedule
from .engine.camera_state import CameraState
from .engine.check import Answer
from .engine.frames import FrameDecodeError
from .engine.parse import ReplyParseError
from .engine.prompt import CheckSpec, RuleSpec
from .engine.window import Frame
from .keyframes import KeyFrames
from .listeners import Listeners
from .watcher_stats import WatcherStats

type RuleProvider = Callable[[], tuple[RuleSpec, ...]]


class Question:
    """What a check about to start asks: the camera's own question and the rules enabled at that moment."""

    def __init__(self, base: CheckSpec, rules: RuleProvider) -> None:
        """Start from the camera's own question; the rules are read only when a check is due and wanted."""
        self.spec = base
        self._rules = rules

    def asks(self) -> bool:
        """Add the enabled rules (a switch changes them at once); return False when nothing is left to ask."""
        self.spec = replace(self.spec, rules=self._rules())
        return not self.spec.is_empty


@dataclass(slots=True)
class CheckHooks:
    """Who is told when a camera's checks start and end (the benchmarks time them here)."""

    # (started): called from the check's own task as it starts, so a context set there follows its requests.
    started: Listeners[float] = field(default_factory=Listeners)
    # (started, ended): called as the check ends, however it ends.
    ended: Listeners[float, float] = field(default_factory=Listeners)


@dataclass(slots=True, kw_only=True)
class CameraCheck:
    """What a camera's check needs: the model and its CPU slots, its schedule, and where its answer goes."""

    config: CameraConfig
    schedule: CameraSchedule
    # Asks the schedule again once the check's task has ended (a changed scene is checked again at once).
    wake: Callable[[], None]
    backend: VisionBackend
    cpu_slots: asyncio.Semaphore
    state: CameraState
    events: CameraEvents
    failures: CameraFailures
    key_frames: KeyFrames
    stats: WatcherStats = field(default_factory=WatcherStats)
    hooks: CheckHooks = field(default_factory=CheckHooks)

    async def async_run(self, spec: CheckSpec, frames: list[Frame], *, moving: bool, check: int = 0) -> None:
        """Ask the model about the frames, then hand the answer to the state model or count the failure.

        `check` is the schedule's number for this check (a camera may have two in flight on spare slots).
        """
        started = time.monotonic()
        try:
            # Inside the try: a faulty hook must not keep the slot.
            self.hooks.started(started)
            outcome = await self.async_ask(spec, frames)
        finally:
            self.schedule.release(check)
            self.hooks.ended(started, time.monotonic())
        if self.failures.stopping:
            # The backend closes under a check abandoned by a stop: not the model's fault, and no news.
            return
        now = time.monotonic()
        if isinstance(outcome, BackendError):
            # The back-off first: the entities told of the failure show when the next check is due.
            self.schedule.failed(now, outcome, check)
            self.count_failure(outcome)
            return
        if self.schedule.answered(check):
            self.publish(outcome, spec, frames, moving=moving, now=now)
        else:
            # A newer window's answer came first: this older one must not undo its states.
            self.stats.stale_answers += 1
            self.failures.check_ok()
        self.wake()

    async def async_ask(self, spec: CheckSpec, frames: list[Frame]) -> Answer | BackendError:
        """Ask the model about the frames; return its answer, or the failure (an odd frame or reply is one)."""
        try:
            return await async_ask_holding_slot(self.backend, self.cpu_slots, self.config, spec, frames)
        except BackendError as err:
            return err
        except (ReplyParseError, FrameDecodeError) as err:
            return BadReply(str(err))
        except Exception as err:
            # An odd frame or reply must cost one check, never the loop (nor an unretrieved task error).
            self.failures.log_unexpected("checking the frames")
            return BadReply(type(err).__name__)

    def publish(
        self, answer: Answer, spec: CheckSpec, frames: list[Frame], *, moving: bool, now: float
    ) -> None:
        """Count the answer and hand it to the state model; publish what changed."""
        self.stats.checks += 1
        self.stats.last_analysis = dt_util.utcnow()
        self.stats.last_latency_s = answer.latency_s
        self.stats.last_image_tokens = answer.image_tokens
        self.stats.last_reason = answer.observation.reason
        self.failures.check_ok()
        self.key_frames.set_check_frame(frames[-1].jpeg)
        changes = self.state.answered(
            answer.observation, now, window_end=frames[-1].timestamp, moving=moving, asked=spec.rules
        )
        self.events.publish(changes, reason=answer.observation.reason, now=now)

    def count_failure(self, err: BackendError) -> None:
        """Count a failed check, and tell the entities (their availability and counters)."""
        self.stats.failures += 1
        self.failures.check_failed(err)
        self.events.state()
