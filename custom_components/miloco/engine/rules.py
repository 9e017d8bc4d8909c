"""State machines that turn per-check answers into events and states; pure, with the clock passed in.

Every `now` is monotonic seconds. A check that ran reports what the model said; a check the change gate
skipped reports nothing new: the scene did not change, so neither did the answer.
"""

from __future__ import annotations

from enum import StrEnum
import math
from typing import Final

# A rule's timing as Miloco has it: an event fires at most once per 10 s; a state turns on after two positive
# checks in a row and off after 10 s of negative ones. The integration's settings table takes these defaults.
DEFAULT_COOLDOWN_S: Final = 10
DEFAULT_ON_CHECKS: Final = 2
DEFAULT_OFF_DELAY_S: Final = 10


class Transition(StrEnum):
    """A state turning on or off."""

    STARTED = "started"
    ENDED = "ended"


def _check_duration(name: str, value: float) -> None:
    """Raise ValueError unless a duration is finite and not negative."""
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value}")


class EpisodeTracker:
    """One event per continuous episode of a momentary thing (a gesture held over several checks fires once).

    The episode ends when a check that ran says the thing is gone, or after more than `max_gap_s` without
    any check at all (the camera or the model was away); only then can it fire again.
    """

    def __init__(self, max_gap_s: float) -> None:
        """Create a tracker; `max_gap_s` is typically the window length."""
        _check_duration("max_gap_s", max_gap_s)
        self._max_gap_s = max_gap_s
        self._active = False
        self._last: float | None = None

    @property
    def active(self) -> bool:
        """Return True while an episode is going on."""
        return self._active

    def update(self, present: bool, now: float, checked: bool = True) -> bool:
        """Record one check (or, with checked=False, a skipped one) and return True when an episode starts."""
        if self._last is not None and now - self._last > self._max_gap_s:
            self._active = False
        self._last = now
        if not checked:
            # No change, no news: the episode stays as it is, and the skip counts as contact for the gap.
            return False
        if not present:
            self._active = False
            return False
        if self._active:
            return False
        self._active = True
        return True

    def end(self) -> None:
        """End the episode without a check (the scene was still for a whole window): the next sighting fires."""
        self._active = False

    def reset(self) -> None:
        """End any episode and forget the last check."""
        self._active = False
        self._last = None


class HoldState:
    """A lasting state (an activity, presence): on when seen, on for `hold_s` after it was last seen.

    A skipped check refreshes the hold while the last check that ran saw the state (a person reading barely
    moves); it turns off only once a check that ran says absent and the hold has run out.
    """

    def __init__(self, hold_s: float) -> None:
        """Create a state that stays on for `hold_s` seconds after its last sighting."""
        _check_duration("hold_s", hold_s)
        self._hold_s = hold_s
        self._on = False
        self._last_seen = -math.inf
        self._last_check_saw = False

    @property
    def is_on(self) -> bool:
        """Return whether the state is on."""
        return self._on

    def update(self, present: bool, now: float) -> Transition | None:
        """Record a check that ran and return the transition it causes, if any."""
        self._last_check_saw = present
        if present:
            self._last_seen = now
            if not self._on:
                self._on = True
                return Transition.STARTED
            return None
        return self.tick(now)

    def refresh(self, now: float) -> Transition | None:
        """Record a skipped check: the last answer still holds, so a seen state's hold starts over."""
        if self._on and self._last_check_saw:
            self._last_seen = now
            return None
        return self.tick(now)

    def tick(self, now: float) -> Transition | None:
        """Let time pass: end the state once the last check that ran said absent and the hold ran out."""
        if self._on and not self._last_check_saw and now - self._last_seen >= self._hold_s:
            self._on = False
            return Transition.ENDED
        return None

    def reset(self) -> None:
        """Turn off without a transition and forget every sighting."""
        self._on = False
        self._last_seen = -math.inf
        self._last_check_saw = False


class EdgeTrigger:
    """An event-mode rule: fires on a false→true edge, then swallows new edges for `cooldown_s`."""

    def __init__(self, cooldown_s: float = DEFAULT_COOLDOWN_S) -> None:
        """Create a trigger with the given cooldown (Miloco's own is 10 s)."""
        _check_duration("cooldown_s", cooldown_s)
        self._cooldown_s = cooldown_s
        self._value = False
        self._last_fired = -math.inf

    @property
    def value(self) -> bool:
        """Return the last answer of a check that ran."""
        return self._value

    def update(self, value: bool, now: float) -> bool:
        """Record a check that ran and return True when the rule fires."""
        edge = value and not self._value
        self._value = value
        if not edge or now - self._last_fired < self._cooldown_s:
            return False
        self._last_fired = now
        return True

    def reset(self) -> None:
        """Forget the last answer and the cooldown."""
        self._value = False
        self._last_fired = -math.inf

    def restore(self, *, value: bool | None = None, last_fired: float | None = None) -> None:
        """Take back what was known before a restart: the last answer, and when the rule last fired."""
        if value is not None:
            self._value = value
        if last_fired is not None:
            self._last_fired = last_fired


class Debounce:
    """A state-mode rule: on after `on_checks` positive checks in a row, off after `off_delay_s` of negatives.

    One misread frame neither turns a light on nor off.
    """

    def __init__(self, on_checks: int = DEFAULT_ON_CHECKS, off_delay_s: float = DEFAULT_OFF_DELAY_S) -> None:
        """Create a debouncer with an on-delay in checks and an off-delay in seconds."""
        if on_checks < 1:
            raise ValueError(f"on_checks must be at least 1, not {on_checks}")
        _check_duration("off_delay_s", off_delay_s)
        self._on_checks = on_checks
        self._off_delay_s = off_delay_s
        self._on = False
        self._positives = 0
        self._negative_since: float | None = None

    @property
    def is_on(self) -> bool:
        """Return whether the rule's state is on."""
        return self._on

    def update(self, value: bool, now: float) -> Transition | None:
        """Record a check that ran and return the transition it causes, if any."""
        if value:
            self._positives += 1
            self._negative_since = None
            if not self._on and self._positives >= self._on_checks:
                self._on = True
                return Transition.STARTED
            return None
        self._positives = 0
        if self._negative_since is None:
            self._negative_since = now
        return self.tick(now)

    def tick(self, now: float) -> Transition | None:
        """Let time pass: turn off once the checks have said no for `off_delay_s`."""
        if self._on and self._negative_since is not None and now - self._negative_since >= self._off_delay_s:
            self._on = False
            return Transition.ENDED
        return None

    def reset(self) -> None:
        """Turn off without a transition and forget the counts."""
        self._on = False
        self._positives = 0
        self._negative_since = None

    def restore_on(self) -> None:
        """Be on again without a transition (it was on before a restart): the next "yes" starts nothing."""
        self._on = True
        self._positives = self._on_checks
        self._negative_since = None
