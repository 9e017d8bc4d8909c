"""What one camera currently sees, free of Home Assistant: gesture episodes, held states, rule verdicts.

The watcher feeds it three kinds of news, each with the monotonic time passed in: a check answered, the
change gate found the scene unchanged, and time passed. Each returns the `Changes` to publish, so the
state machines can be driven (and tested) with a fake clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .labels import PRESENCE
from .prompt import Observation, RuleSpec
from .rules import EpisodeTracker, HoldState, Transition

PRESENCE_KEY = PRESENCE.key


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraStateSettings:
    """The settings the state machines need: what is watched, and the camera's timing."""

    gestures: tuple[str, ...] = ()
    activities: tuple[str, ...] = ()
    presence: bool = False
    hold_s: float
    window_s: float
    check_interval_s: float


@dataclass(slots=True)
class Changes:
    """What one piece of news changed, in the order to publish it."""

    # Gestures whose new episode started.
    gestures: list[str] = field(default_factory=list)
    # (activity key or PRESENCE_KEY, started/ended).
    transitions: list[tuple[str, Transition]] = field(default_factory=list)
    # This camera's verdict on each rule the check asked, keyed by the question as it was asked (None when no
    # check answered).
    rules: Mapping[RuleSpec, bool] | None = None
    # P(yes) of the rules the check asked, where the server gave log-probabilities.
    rule_probabilities: Mapping[RuleSpec, float] = field(default_factory=dict)
    # P(yes) of the check's gestures, activities and presence (PRESENCE_KEY), where the reply gave one.
    probabilities: Mapping[str, float] = field(default_factory=dict)
    # False when the check saw a still scene (a heartbeat): such a check starts no event.
    moving: bool = True
    # The scene has been still for a whole window since the last check: event verdicts are "no" again.
    rearmed: bool = False

    def __bool__(self) -> bool:
        """Return True when there is anything to publish."""
        return bool(self.gestures or self.transitions or self.rules is not None or self.rearmed)


class CameraState:
    """The state machines of one camera, driven by checks, gate skips and the clock."""

    def __init__(self, settings: CameraStateSettings) -> None:
        """Start with nothing seen; raise ValueError for durations that are not finite and >= 0."""
        self._window_s = settings.window_s
        # Without any contact for longer than this, an episode is over (the camera or the model was away).
        max_gap_s = max(settings.window_s, settings.check_interval_s * 2)
        self._episodes = {key: EpisodeTracker(max_gap_s) for key in settings.gestures}
        self._holds = {key: HoldState(settings.hold_s) for key in settings.activities}
        if settings.presence:
            self._holds[PRESENCE_KEY] = HoldState(settings.hold_s)
        # When the newest frame of the last answered check was taken, until its events are re-armed.
        self._rearm_after: float | None = None
        self._probabilities: dict[str, float] = {}

    @property
    def probabilities(self) -> Mapping[str, float]:
        """Return the last answered check's P(yes) by gesture, activity or PRESENCE_KEY (where it gave one)."""
        return self._probabilities

    def probability(self, key: str) -> float | None:
        """Return the last answered check's P(yes) of a gesture, activity or presence; None when it gave none."""
        return self._probabilities.get(key)

    def is_on(self, key: str) -> bool:
        """Return whether an activity (or presence, PRESENCE_KEY) is going on."""
        return self._holds[key].is_on

    def answered(
        self,
        observation: Observation,
        now: float,
        *,
        window_end: float,
        moving: bool,
        asked: tuple[RuleSpec, ...] = (),
    ) -> Changes:
        """Take a check's answer about a window whose newest frame was taken at `window_end`.

        `asked` are the rules the check asked about, as they were when it started. A check of a still scene
        (`moving` False, a heartbeat) re-validates states but starts no gesture: events need motion.
        """
        rules = {spec: observation.rules.get(spec.rule_id, False) for spec in asked}
        rule_probabilities = {
            spec: observation.rule_probabilities[spec.rule_id]
            for spec in asked
            if spec.rule_id in observation.rule_probabilities
        }
        watched = {*self._episodes, *self._holds}
        self._probabilities = {key: p for key, p in observation.label_probabilities.items() if key in watched}
        if PRESENCE_KEY in self._holds and observation.presence_probability is not None:
            self._probabilities[PRESENCE_KEY] = observation.presence_probability
        changes = Changes(
            rules=rules,
            rule_probabilities=rule_probabilities,
            probabilities=dict(self._probabilities),
            moving=moving,
        )
        for key, tracker in self._episodes.items():
            if tracker.update(moving and key in observation.gestures, now):
                changes.gestures.append(key)
        for key, hold in self._holds.items():
            if key == PRESENCE_KEY:
                if observation.person_present is None:
                    continue
                transition = hold.update(observation.person_present, now)
            else:
                transition = hold.update(key in observation.activities, now)
            if transition is not None:
                changes.transitions.append((key, transition))
        self._rearm_after = window_end
        return changes

    def unchanged(self, now: float) -> Changes:
        """Take a check the gate skipped: no change, no news; seen states have their hold refreshed."""
        changes = Changes()
        for tracker in self._episodes.values():
            tracker.update(False, now, checked=False)
        for key, hold in self._holds.items():
            if (transition := hold.refresh(now)) is not None:
                changes.transitions.append((key, transition))
        return changes

    def still(self, newest_frame_at: float) -> Changes:
        """Take a frame the gate found unchanged since the last check; re-arm events after a whole window.

        A "yes" from a window that still held the end of a wave must not outlive it: a window of still
        frames holds no wave, so the next wave is a new episode. States are untouched.
        """
        if self._rearm_after is None or newest_frame_at - self._rearm_after < self._window_s:
            return Changes()
        self._rearm_after = None
        for tracker in self._episodes.values():
            tracker.end()
        return Changes(rearmed=True)

    def tick(self, now: float) -> Changes:
        """Let time pass: hold times run out."""
        changes = Changes()
        for key, hold in self._holds.items():
            if (transition := hold.tick(now)) is not None:
                changes.transitions.append((key, transition))
        return changes
