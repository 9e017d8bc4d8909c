"""When one camera checks: start a check now, wait until a time, or skip it and say why.

One `CameraSchedule` per camera owns everything about its timing: the least interval between two checks, the
heartbeat of a still scene, how often a still scene is reported, busy accounting, the back-off after failed
checks, what moved while a check ran (its change gate's latch), checks forced by a rule change or a motion
sensor, and the slots another camera frees. The watcher asks it after each frame, when a check answers, and
when a slot is offered; it runs on any clock, so its decisions are tested with a fake one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
import math
import time
from typing import Final

from .backends.errors import BackendError, InvalidAuth
from .backoff import Backoff
from .gate import ChangeGate, GateDecision, Thumb
from .scheduling import FairLimiter

# A still scene's skip is counted, and its states refreshed, at most this often (or once per interval, if
# longer): a short check interval must not turn a still room into a stream of state writes.
STILL_REPORT_S: Final = 2.0
# Failed checks back off exponentially from the check interval up to this, or longer when the server asks.
BACKOFF_MAX_S: Final = 60.0
# A refused key is retried this rarely while the reauth flow waits for the user.
AUTH_RETRY_S: Final = 300.0


class Occasion(StrEnum):
    """What makes the watcher ask."""

    # A frame was taken (or none came): the gate's decision on it is fresh.
    FRAME = "frame"
    # The camera's check answered, or another camera freed a slot: the frames already judged decide.
    WAKE = "wake"


class WaitReason(StrEnum):
    """Why no check may start before a time."""

    INTERVAL = "interval"
    BACKOFF = "backoff"
    KEY_REFUSED = "key_refused"


class SkipReason(StrEnum):
    """Why no check starts now (the next frame, answer or offered slot asks again)."""

    STOPPED = "stopped"
    IN_FLIGHT = "in_flight"
    NO_FRAME = "no_frame"
    STILL = "still"
    NOTHING_TO_ASK = "nothing_to_ask"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class Start:
    """Start a check of the newest window now; the slot is taken (release() gives it back)."""

    # False for the heartbeat of a still scene: such a check starts no event.
    moving: bool


@dataclass(frozen=True, slots=True)
class Wait:
    """No check before `until` (monotonic seconds)."""

    until: float
    reason: WaitReason


@dataclass(frozen=True, slots=True)
class Skip:
    """No check now."""

    reason: SkipReason
    # Count this skip (and, for a still scene, refresh the states): a still scene now and then, a refused
    # check once per due check.
    report: bool = False


type Decision = Start | Wait | Skip


class CameraSchedule:
    """The timing of one camera's checks, deciding from the time, its gate and the shared limiter."""

    def __init__(
        self,
        key: str,
        *,
        check_interval_s: float,
        heartbeat_s: float,
        gate: ChangeGate,
        limiter: FairLimiter,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Schedule the camera `key` in the limiter; raise ValueError for an interval that is not positive."""
        if not (math.isfinite(check_interval_s) and check_interval_s > 0):
            raise ValueError(f"check_interval_s must be positive, not {check_interval_s}")
        self._key = key
        self._interval_s = check_interval_s
        self._heartbeat_s = heartbeat_s
        self._gate = gate
        self._limiter = limiter
        self._clock = clock
        self._still_report_s = max(check_interval_s, STILL_REPORT_S)
        self._backoff = Backoff(check_interval_s, max(BACKOFF_MAX_S, check_interval_s))
        self._next_check = 0.0
        self._wait_reason = WaitReason.INTERVAL
        self._next_still_report = 0.0
        self._last_start: float | None = None
        self._busy_reported = False
        self._stopping = False
        self._in_flight = False
        # The newest thumb the gate judged, whether it is of this round of the loop, and the check's own.
        self._newest: Thumb | None = None
        self._fresh = False
        self._checked: Thumb | None = None
        self._remove_waker: Callable[[], None] | None = None

    @property
    def checking(self) -> bool:
        """Return True while a check holds a slot."""
        return self._in_flight

    @property
    def next_check(self) -> float:
        """Return the earliest time the next check may start."""
        return self._next_check

    def begin(self, now: float, *, phase: float = 0.0, on_offer: Callable[[], None] | None = None) -> None:
        """Start the clock, `phase` (0 to 1) of an interval late; `on_offer` runs when a freed slot is taken."""
        self._next_check = now + phase * self._interval_s
        if on_offer is not None and not self._stopping:
            self._remove_waker = self._limiter.set_waker(self._key, lambda: self._offered(on_offer))

    def stop(self) -> None:
        """Start no check from now on, and leave the limiter's turns."""
        self._stopping = True
        if self._remove_waker is not None:
            self._remove_waker()
            self._remove_waker = None
        self._limiter.forget(self._key)

    def ask_soon(self) -> None:
        """Check at the next frame even if the scene did not change (a rule about it was added or changed)."""
        self._gate.force()

    def no_frame(self) -> None:
        """Note that this round of the loop brought no new frame: no check starts on frames already judged."""
        self._fresh = False

    def observe(self, thumb: Thumb, now: float, *, motion: bool = False) -> GateDecision:
        """Let the gate judge the newest frame; `motion` (a motion sensor is on) opens it until a check runs."""
        if motion:
            self._gate.force()
        self._newest = thumb
        self._fresh = True
        return self._gate.observe(thumb, now)

    def decide(
        self, now: float, occasion: Occasion = Occasion.FRAME, *, asks: Callable[[], bool] = lambda: True
    ) -> Decision:
        """Answer whether a check starts now; `asks` returns False when the camera has nothing to ask.

        `asks` is called only when a check is due and wanted (it builds the question). A Start has taken the
        limiter's slot and started the clock of the next check.
        """
        ready = self._ready(now, occasion)
        if ready is not None:
            return ready
        if not asks():
            # Only rules asked for this camera, and all of them are switched off.
            self._next_check, self._wait_reason = now + self._interval_s, WaitReason.INTERVAL
            return Skip(SkipReason.NOTHING_TO_ASK)
        if not self._limiter.try_acquire(self._key, now):
            # Skipped, not queued: the next frame, or a slot freed for this camera's turn, tries again with
            # newer frames. Counted once per due check.
            report, self._busy_reported = not self._busy_reported, True
            return Skip(SkipReason.BUSY, report=report)
        moving = self._gate.changed_since_check
        self._in_flight = True
        self._busy_reported = False
        self._next_check, self._wait_reason = now + self._interval_s, WaitReason.INTERVAL
        self._next_still_report = now + self._still_report_s
        self._last_start = now
        self._checked = self._newest
        if self._checked is not None:
            self._gate.check_started(self._checked)
        return Start(moving=moving)

    def release(self) -> None:
        """Give back the slot of the check in flight (it answered, failed or was cancelled)."""
        if self._in_flight:
            self._in_flight = False
            self._limiter.release(self._key)

    def answered(self) -> None:
        """Note the check answered: what moved while it ran stays latched for the next; the back-off ends."""
        if self._checked is not None:
            self._gate.mark_checked(self._checked)
        self._backoff.succeeded()

    def failed(self, now: float, err: BackendError) -> float:
        """Put the next check off after a failed one (a refused key longer); return the wait."""
        wait = self._backoff.failed(err.retry_after)
        reason = WaitReason.BACKOFF
        if isinstance(err, InvalidAuth):
            # The key will not start working by itself: no hammering while the reauth flow waits.
            wait, reason = AUTH_RETRY_S, WaitReason.KEY_REFUSED
        if now + wait > self._next_check:
            self._next_check, self._wait_reason = now + wait, reason
        return wait

    def _ready(self, now: float, occasion: Occasion) -> Decision | None:
        """Return why no check may start now, or None when one is due, wanted, and only needs a slot."""
        if self._stopping:
            return Skip(SkipReason.STOPPED)
        if self._in_flight:
            # Not a busy backend: the check in flight asks again when it answers.
            return Skip(SkipReason.IN_FLIGHT)
        if now < self._next_check:
            return Wait(self._next_check, self._wait_reason)
        if self._newest is None or (occasion is Occasion.FRAME and not self._fresh):
            # A gate decision belongs to its frame: no new frame (a failure, a stream between two frames),
            # no check on frames already judged.
            return Skip(SkipReason.NO_FRAME)
        if self._gate.changed_since_check or self._heartbeat_due(now):
            return None
        # No change, no news. The check stays due: a change in the very next frame is checked at once.
        report = occasion is Occasion.FRAME and now >= self._next_still_report
        if report:
            self._next_still_report = now + self._still_report_s
        return Skip(SkipReason.STILL, report=report)

    def _heartbeat_due(self, now: float) -> bool:
        """Return True when a still scene is due its re-validating check."""
        return self._heartbeat_s > 0 and (
            self._last_start is None or now - self._last_start >= self._heartbeat_s
        )

    def _offered(self, on_offer: Callable[[], None]) -> bool:
        """Take a slot another camera freed if a check is due and wanted now (the limiter asks, inside release)."""
        if self._ready(self._clock(), Occasion.WAKE) is not None:
            return False
        # Not from inside the limiter's release: `on_offer` arranges the try once the releasing code has run.
        on_offer()
        return True
