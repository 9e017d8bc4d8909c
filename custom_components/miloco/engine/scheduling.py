"""Admission to a busy backend: live checks skip, services wait their turn, and cameras take turns fairly."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable
import contextlib
import math
import time


class FairLimiter:
    """At most `limit` requests in flight, shared by two kinds of callers.

    Live callers (a camera's checks) use `try_acquire`: one that finds no free slot is refused, not queued.
    Refusing keeps the newest frames winning and memory flat, but on its own it lets the camera that
    happens to ask first take every slot. So service goes in rounds: a caller served in this round must
    let every caller that was refused (and has not been served since) have a turn before its next one.
    A refused caller that has not asked again for `contender_ttl_s` is no longer waiting.

    A live caller may leave a waker: when a slot frees while callers wait, the one whose turn is next is
    asked at once whether it still wants one (and then tries), instead of the slot idling until it asks again.

    Patient callers (a person's question: the services, AI Task) use `async_acquire_patient`: they queue,
    first come first served, for at most a timeout, and take the next free slot ahead of waiting cameras,
    within two bounds that keep live checks from starving: patient callers together hold at most
    `patient_share` slots (`limit - 1`, one when the limit is one), and once one has entered ahead of a
    waiting camera, the next free slot goes to a camera before any patient caller jumps ahead again.
    """

    def __init__(
        self, limit: int, contender_ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Create a limiter with `limit` slots; `clock` dates the turns when a patient caller looks at them."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if not (math.isfinite(contender_ttl_s) and contender_ttl_s > 0):
            raise ValueError(f"contender_ttl_s must be positive, not {contender_ttl_s}")
        self._limit = limit
        self._ttl_s = contender_ttl_s
        self._clock = clock
        self._running: Counter[str] = Counter()
        # Callers refused since they were last served, and when they last asked.
        self._waiting: dict[str, float] = {}
        self._served_this_round: set[str] = set()
        # Slots held by patient callers, and the queue of those still waiting (a ticket each, oldest first).
        self._patient_running: Counter[str] = Counter()
        self._queue: deque[_Ticket] = deque()
        # A patient caller entered ahead of a waiting camera: the next free slot is a camera's.
        self._cameras_owed = False
        self._changed = asyncio.Event()
        # Live callers' wakers: each returns True when its caller will try for the freed slot.
        self._wakers: dict[str, Callable[[], bool]] = {}

    @property
    def limit(self) -> int:
        """Return the number of slots."""
        return self._limit

    @limit.setter
    def limit(self, limit: int) -> None:
        """Change the number of slots; requests in flight above a lowered limit finish, none starts meanwhile."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self._limit = limit
        # A raised limit may let a patient caller in at once.
        self._notify()

    @property
    def in_flight(self) -> int:
        """Return how many slots are taken."""
        return self._running.total()

    @property
    def patient_share(self) -> int:
        """Return how many slots patient callers may hold at once."""
        return max(1, self._limit - 1)

    def has_waiting(self, key: str, now: float) -> bool:
        """Return True when a caller other than `key` waits for a slot (a camera refused lately, or a person)."""
        return bool(self._queue) or any(
            other != key and now - last <= self._ttl_s for other, last in self._waiting.items()
        )

    def try_acquire(self, key: str, now: float) -> bool:
        """Take a slot for `key` and return True, or return False (the caller skips this check)."""
        self._drop_stale(now)
        if self.in_flight >= self._limit or (
            key in self._served_this_round
            and any(other not in self._served_this_round for other in self._waiting if other != key)
        ):
            self._waiting[key] = now
            return False
        if key in self._served_this_round:
            # Nobody refused is still waiting for a turn: a new round starts, in which this caller is first.
            self._served_this_round = set()
        self._served_this_round.add(key)
        self._cameras_owed = False
        self._waiting.pop(key, None)
        self._running[key] += 1
        return True

    def try_acquire_patient(self, key: str, now: float) -> bool:
        """Take a slot for a patient caller if one may enter now (and none queues ahead); never queue."""
        return not self._queue and self._admit_patient(key, now)

    async def async_acquire_patient(self, key: str, timeout_s: float) -> bool:
        """Wait in line for a slot for `key`; return False when `timeout_s` passed without one."""
        if not (math.isfinite(timeout_s) and timeout_s >= 0):
            raise ValueError(f"timeout_s must be a finite number of seconds, not {timeout_s}")
        if self.try_acquire_patient(key, self._clock()):
            return True
        loop = asyncio.get_running_loop()
        # The wait is timed by the loop; `clock` only dates the cameras' turns (as their callers do).
        deadline = loop.time() + timeout_s
        ticket = _Ticket(key)
        self._queue.append(ticket)
        try:
            while True:
                # A freed slot is handed to the head of the line in `release`; a stale camera frees one too.
                self._admit_head()
                if ticket.admitted:
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                changed = self._changed
                # A slot freed or a waiting camera forgotten wakes us; a camera that stopped asking
                # does not, so look again once it may have gone stale.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(remaining, self._ttl_s / 4))
        except BaseException:
            if ticket.admitted:
                # Admitted as the caller gave up (cancelled): the slot goes back.
                self.release(key)
            raise
        finally:
            if ticket in self._queue:
                self._queue.remove(ticket)
            # The next in line may be able to enter now that this one entered or left.
            self._notify()

    def set_waker(self, key: str, waker: Callable[[], bool]) -> Callable[[], None]:
        """Let `waker` be asked when a slot frees while `key` waits for a turn; return its remover.

        The waker must not take the slot itself (it runs inside `release`): it says whether its caller will
        try soon, and arranges that try.
        """
        self._wakers[key] = waker

        def remove() -> None:
            if self._wakers.get(key) is waker:
                del self._wakers[key]

        return remove

    def release(self, key: str) -> None:
        """Give back a slot that `key` took (live or patient)."""
        if self._running[key] <= 0:
            raise RuntimeError(f"release({key!r}) without a matching acquire")
        self._running[key] -= 1
        if not self._running[key]:
            del self._running[key]
        if self._patient_running[key] > 0:
            self._patient_running[key] -= 1
            if not self._patient_running[key]:
                del self._patient_running[key]
        # A person waiting takes the freed slot first (within its bounds); otherwise a waiting camera is offered it.
        self._notify()
        self._wake_next()

    def forget(self, key: str) -> None:
        """Forget `key` altogether (its camera was removed)."""
        self._waiting.pop(key, None)
        self._served_this_round.discard(key)
        self._notify()

    def _wake_next(self) -> None:
        """Offer a free slot to the waiting live caller whose turn is next (not served this round, oldest)."""
        if self.in_flight >= self._limit:
            return
        # Stale callers are left in place: dropping them is the callers' clock's business (try_acquire), and a
        # caller that stopped asking declines the offer anyway.
        waiting = sorted(
            self._waiting.items(), key=lambda item: (item[0] in self._served_this_round, item[1])
        )
        for key, _ in waiting:
            waker = self._wakers.get(key)
            if waker is not None and waker():
                return

    def _admit_patient(self, key: str, now: float) -> bool:
        """Take a slot for a patient caller when one is free, within its share, and no camera is owed it."""
        self._drop_stale(now)
        if self.in_flight >= self._limit or self._patient_running.total() >= self.patient_share:
            return False
        if not self._waiting:
            self._cameras_owed = False
        elif self._cameras_owed:
            return False
        else:
            # Ahead of a waiting camera: a camera gets the slot after this one.
            self._cameras_owed = True
        self._running[key] += 1
        self._patient_running[key] += 1
        return True

    def _admit_head(self) -> bool:
        """Admit the first patient caller in line if it may enter now; return whether one was admitted."""
        if not self._queue or not self._admit_patient(self._queue[0].key, self._clock()):
            return False
        self._queue.popleft().admitted = True
        return True

    def _notify(self) -> None:
        """Hand a free slot to the first patient caller in line, and wake the callers to look again."""
        self._admit_head()
        self._changed.set()
        self._changed = asyncio.Event()

    def _drop_stale(self, now: float) -> None:
        """Forget callers that stopped asking: they are not waiting for a turn."""
        for key in [key for key, last in self._waiting.items() if now - last > self._ttl_s]:
            del self._waiting[key]


class _Ticket:
    """A patient caller's place in line; admitted once a slot was taken for it."""

    __slots__ = ("admitted", "key")

    def __init__(self, key: str) -> None:
        """Queue a caller of `key`, not yet admitted."""
        self.key = key
        self.admitted = False
