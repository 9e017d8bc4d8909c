"""Where a camera's news goes: its entities (listeners), the rules that look at it, and the event bus."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback

from .const import EVENT_MILOCO
from .devices import async_device_id
from .engine.camera_state import PRESENCE_KEY, Changes
from .engine.prompt import RuleSpec
from .keyframes import KeyFrames
from .listeners import Listeners

type GestureListener = Callable[[str], None]
# Records the check's newest frame as the key frame of what it fired; returns where the event finds it.
type KeyFrameRecorder = Callable[[str], dict[str, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdicts:
    """One camera's answers to the rules a check asked, with what a rule needs to act on them."""

    camera_entity_id: str
    # Keyed by the rule as it was asked: a rule edited since the check started is not the same question.
    holds: Mapping[RuleSpec, bool]
    # P(yes) of each rule whose answer had one (the server gave log-probabilities).
    probabilities: Mapping[RuleSpec, float]
    reason: str | None
    now: float
    # False for a heartbeat check of a still scene: such a check starts no event.
    moving: bool
    key_frame: KeyFrameRecorder


type VerdictListener = Callable[[Verdicts], None]
# (now): the scene has been still for a whole window since the last check; event rules re-arm.
type StillListener = Callable[[float], None]
# (available): False when the camera's answers stop counting (it fails, or its watcher stopped).
type AvailabilityListener = Callable[[bool], None]


class CameraEvents:
    """The listeners of one camera, and its miloco_event bus events."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        subentry_id: str,
        camera_entity_id: str,
        key_frames: KeyFrames,
    ) -> None:
        """Publish for the camera subentry `subentry_id` watching `camera_entity_id`."""
        self._hass = hass
        self._key_frames = key_frames
        self._entry_id = entry_id
        self._subentry_id = subentry_id
        self._camera_entity_id = camera_entity_id
        self.state: Listeners[()] = Listeners()
        self.gestures: Listeners[str] = Listeners()
        self.verdicts: Listeners[Verdicts] = Listeners()
        self.still: Listeners[float] = Listeners()
        self.availability: Listeners[bool] = Listeners()

    @callback
    def add_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener` whenever states, availability or counters change; return the remover."""
        return self.state.add(listener)

    @callback
    def publish(self, changes: Changes, *, reason: str | None, now: float) -> None:
        """Publish what a piece of news changed: gestures, state transitions, rule verdicts, re-arming."""
        for gesture in changes.gestures:
            self.gestures(gesture)
            # The event says where the frame that showed the gesture can be fetched (image entity, saved file).
            self.fire(
                "gesture",
                gesture=gesture,
                **_probability(changes.probabilities, gesture),
                **self._key_frames.record(gesture),
            )
        for key, transition in changes.transitions:
            # A hold that ran out had no check behind it: the last check's P is not why it ended.
            seen = changes.probabilities if changes.rules is not None else {}
            if key == PRESENCE_KEY:
                self.fire(f"presence_{transition}", **_probability(seen, key))
            else:
                self.fire(f"activity_{transition}", activity=key, **_probability(seen, key))
        if changes.rules is not None:
            self.verdicts(
                Verdicts(
                    camera_entity_id=self._camera_entity_id,
                    holds=changes.rules,
                    probabilities=changes.rule_probabilities,
                    reason=reason,
                    now=now,
                    moving=changes.moving,
                    key_frame=self._key_frames.record,
                )
            )
        if changes.rearmed:
            self.still(now)
        if changes:
            self.state()

    @callback
    def fire(self, event_type: str, **data: str | float) -> None:
        """Fire a miloco_event for YAML automations, naming the device and the camera."""
        self._hass.bus.async_fire(
            EVENT_MILOCO,
            {
                "device_id": async_device_id(self._hass, self._entry_id, self._subentry_id),
                "type": event_type,
                "camera_entity_id": self._camera_entity_id,
                **data,
            },
        )


def _probability(probabilities: Mapping[str, float], key: str) -> dict[str, float]:
    """Return the event data field of a label's P(yes), or nothing when the check gave none."""
    return {"probability": probabilities[key]} if key in probabilities else {}
