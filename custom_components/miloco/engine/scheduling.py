"""Admission to a busy backend: skip, never queue, and take turns fairly between cameras."""

from __future__ import annotations

from collections import Counter
import math


class FairLimiter:
    """At most `limit` requests in flight; a caller that finds no free slot is refused, not queued.

    Refusing keeps the newest frames winning and memory flat, but on its own it lets the camera that
    happens to ask first take every slot. So service goes in rounds: a caller served in this round must
    let every caller that was refused (and has not been served since) have a turn before its next one.
    A refused caller that has not asked again for `contender_ttl_s` is no longer waiting.
    """

    def __init__(self, limit: int, contender_ttl_s: float = 5.0) -> None:
        """Create a limiter with `limit` slots."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if not (math.isfinite(contender_ttl_s) and contender_ttl_s > 0):
            raise ValueError(f"contender_ttl_s must be positive, not {contender_ttl_s}")
        self._limit = limit
        self._ttl_s = contender_ttl_s
        self._running: Counter[str] = Counter()
        # Callers refused since they were last served, and when they last asked.
        self._waiting: dict[str, float] = {}
        self._served_this_round: set[str] = set()

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

    @property
    def in_flight(self) -> int:
        """Return how many slots are taken."""
        return self._running.total()

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
        self._waiting.pop(key, None)
        self._running[key] += 1
        return True

    def release(self, key: str) -> None:
        """Give back a slot that `key` took."""
        if self._running[key] <= 0:
            raise RuntimeError(f"release({key!r}) without a matching try_acquire()")
        self._running[key] -= 1
        if not self._running[key]:
            del self._running[key]

    def forget(self, key: str) -> None:
        """Forget `key` altogether (its camera was removed)."""
        self._waiting.pop(key, None)
        self._served_this_round.discard(key)

    def _drop_stale(self, now: float) -> None:
        """Forget callers that stopped asking: they are not waiting for a turn."""
        for key in [key for key, last in self._waiting.items() if now - last > self._ttl_s]:
            del self._waiting[key]
