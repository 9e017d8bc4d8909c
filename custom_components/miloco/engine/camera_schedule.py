"""When one camera checks: start a check now, wait until a time, or skip it and say why.

One `CameraSchedule` per camera owns everything about its timing: the least interval between two checks, the
heartbeat of a still scene, how often a still scene is reported, busy accounting, the back-off after failed
checks, what moved while a check ran (its change gate's latch), checks forced by a rule change or a motion
sensor, and the slots another camera frees. The watcher asks it after each frame, when a check answers, and
when a slot is offered; it runs on any clock, so its decisions are tested with a fake one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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
# At most this many checks of one camera in flight: the second only on a spare slot (see `decide`).
MAX_IN_FLIGHT: Final = 2


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
    # Which check this is, for release(), answered() and failed(); not part of the decision.
    check: int = field(default=0, compare=False)


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
        spare_slots: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Schedule the camera `key` in the limiter; raise ValueError for an interval that is not positive.

        With `spare_slots`, a scene that moved after the check in flight began may start a second check on a
        slot nobody waits for.
        """
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
        self._spare_slots = spare_slots
        # The checks started and not yet answered or failed, by number, with the newest thumb of each window
        # and whether it still holds its slot; and the newest check whose answer was applied.
        self._flights: dict[int, _Flight] = {}
        self._started = 0
        self._applied = 0
        # The newest thumb the gate judged, and whether it is of this round of the loop.
        self._newest: Thumb | None = None
        self._fresh = False
        self._remove_waker: Callable[[], None] | None = None

    @property
    def checking(self) -> bool:
        """Return True while a check holds a slot."""
        return any(flight.holding for flight in self._flights.values())

    @property
    def in_flight(self) -> int:
        """Return how many of this camera's checks hold a slot."""
        return sum(flight.holding for flight in self._flights.values())

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
        self._busy_reported = False
        self._next_check, self._wait_reason = now + self._interval_s, WaitReason.INTERVAL
        self._next_still_report = now + self._still_report_s
        self._last_start = now
        self._started += 1
        self._flights[self._started] = _Flight(self._newest)
        if self._newest is not None:
            self._gate.check_started(self._newest)
        return Start(moving=moving, check=self._started)

    def release(self, check: int | None = None) -> None:
        """Give back the slot of a check in flight (the oldest by default): it answered, failed or was cancelled."""
        flight = self._flight(check)
        if flight is not None and flight.holding:
            flight.holding = False
            self._limiter.release(self._key)

    def answered(self, check: int | None = None) -> bool:
        """Note a check (the oldest by default) answered; return False when its answer is stale news.

        Answers are applied in order: one about a window older than an answer already applied (a spare
        check started later answered first) must not undo the newer states, so it is dropped. An applied
        answer clears the gate's latch up to its window (what moved since stays latched for the next); the
        back-off ends either way.
        """
        self._backoff.succeeded()
        number = self._number(check)
        flight = self._flights.pop(number, None) if number is not None else None
        if number is None or flight is None or number < self._applied:
            return False
        self._applied = number
        # Checks started before this one are over: their answers, if they still come, are older news.
        for older in [key for key in self._flights if key < number and not self._flights[key].holding]:
            del self._flights[older]
        if flight.thumb is not None:
            self._gate.mark_checked(flight.thumb)
        return True

    def failed(self, now: float, err: BackendError, check: int | None = None) -> float:
        """Put the next check off after a failed one (a refused key longer); return the wait."""
        number = self._number(check)
        if number is not None:
            self._flights.pop(number, None)
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
        if self.checking and not self._spare_due(now):
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

    def _spare_due(self, now: float) -> bool:
        """Return True when a second check may go out beside the one in flight, on a slot nobody waits for.

        Only when the scene moved after the running check began (that check cannot see it), the camera has
        fewer than MAX_IN_FLIGHT checks out, no other camera or person waits for a slot, and one is idle: it
        never takes a slot someone waits for, and never queues (the interval since the last start still
        applies, in the rows after this one).
        """
        return (
            self._spare_slots
            and self.in_flight < MAX_IN_FLIGHT
            and self._gate.changed_since_newest_start
            and self._limiter.in_flight < self._limiter.limit
            and not self._limiter.has_waiting(self._key, now)
        )

    def _number(self, check: int | None) -> int | None:
        """Return the number of the given check, or of the oldest one in flight (None without one)."""
        if check is not None:
            return check
        return min(self._flights, default=None)

    def _flight(self, check: int | None) -> _Flight | None:
        """Return a check in flight (the oldest holding a slot by default)."""
        if check is not None:
            return self._flights.get(check)
        return next((flight for _, flight in sorted(self._flights.items()) if flight.holding), None)

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


@dataclass(slots=True)
class _Flight:
    """A check started and not yet answered: the newest thumb of its window, and whether it holds its slot."""

    thumb: Thumb | None
    holding: bool = True
