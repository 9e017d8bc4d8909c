"""A bounded in-memory record of an entry's detections (its miloco_event bus events), for Assist to read back."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util

from .const import EVENT_MILOCO
from .keyframes import ATTR_KEY_FRAME_ENTITY, ATTR_KEY_FRAME_MEDIA_ID, ATTR_KEY_FRAME_PATH, ATTR_KEY_FRAME_URL

# A busy home fires a few events a minute; this keeps hours of them and never grows past it.
MAX_DETECTIONS: Final = 500
KIND_GESTURE: Final = "gesture"
KIND_ACTIVITY: Final = "activity"
KIND_PRESENCE: Final = "presence"
KIND_RULE: Final = "rule"
KINDS: Final = (KIND_GESTURE, KIND_ACTIVITY, KIND_PRESENCE, KIND_RULE)
KEY_FRAME_FIELDS: Final = (
    ATTR_KEY_FRAME_ENTITY,
    ATTR_KEY_FRAME_PATH,
    ATTR_KEY_FRAME_MEDIA_ID,
    ATTR_KEY_FRAME_URL,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Detection:
    """One thing a camera saw: when, what kind, what, and where its key frame is (when it has one)."""

    time: datetime
    camera_entity_id: str
    kind: str
    label: str
    # "started" or "ended" for activities and presence; None for momentary things (gestures, rules).
    phase: str | None = None
    reason: str | None = None
    key_frame: dict[str, str] = field(default_factory=dict)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        """Return the detection as a tool's answer gives it (the time also as minutes ago)."""
        data: dict[str, Any] = {
            "time": dt_util.as_local(self.time).isoformat(timespec="seconds"),
            "minutes_ago": round((now - self.time).total_seconds() / 60, 1),
            "camera": self.camera_entity_id,
            "kind": self.kind,
            "label": self.label,
        }
        if self.phase is not None:
            data["phase"] = self.phase
        if self.reason:
            data["reason"] = self.reason
        if self.key_frame:
            data["key_frame"] = dict(self.key_frame)
        return data


# Momentary event types: the detection's kind, and the event field that names what was seen.
_MOMENTARY: Final[dict[str, tuple[str, str | None]]] = {
    "gesture": (KIND_GESTURE, "gesture"),
    "rule_triggered": (KIND_RULE, "rule"),
}
# Kinds whose events come in pairs ("<kind>_started", "<kind>_ended"): the field that names it (None: a person).
_PHASED: Final[dict[str, str | None]] = {KIND_PRESENCE: None, KIND_ACTIVITY: "activity"}
_PHASES: Final = ("started", "ended")


def detection_of(data: dict[str, Any], time: datetime) -> Detection | None:
    """Return the detection a miloco_event describes, or None for an event type that is not one."""
    camera = data.get("camera_entity_id")
    if not isinstance(camera, str):
        return None
    event_type = str(data.get("type", ""))
    phase: str | None = None
    name_field: str | None
    key_frame: dict[str, str] = {}
    if event_type in _MOMENTARY:
        kind, name_field = _MOMENTARY[event_type]
        # Only momentary detections carry a key frame: the frame of the moment they were seen.
        key_frame = {key: str(data[key]) for key in KEY_FRAME_FIELDS if data.get(key)}
    else:
        kind, _, phase = event_type.rpartition("_")
        if kind not in _PHASED or phase not in _PHASES:
            return None
        name_field = _PHASED[kind]
    reason = data.get("reason")
    return Detection(
        time=time,
        camera_entity_id=camera,
        kind=kind,
        label="person" if name_field is None else str(data.get(name_field)),
        phase=phase,
        reason=reason if kind == KIND_RULE and isinstance(reason, str) else None,
        key_frame=key_frame,
    )


class DetectionRecord:
    """The newest detections of one entry, oldest first, at most `maxlen` of them."""

    def __init__(self, maxlen: int = MAX_DETECTIONS) -> None:
        """Start empty."""
        self._detections: deque[Detection] = deque(maxlen=maxlen)

    @callback
    def add(self, detection: Detection) -> None:
        """Remember a detection; the oldest goes once the record is full."""
        self._detections.append(detection)

    def since(self, start: datetime, cameras: Iterable[str], kind: str | None = None) -> list[Detection]:
        """Return the detections of the cameras (of one kind, or all) from `start` on, newest first."""
        wanted = set(cameras)
        return [
            detection
            for detection in reversed(self._detections)
            if detection.time >= start
            and detection.camera_entity_id in wanted
            and (kind is None or detection.kind == kind)
        ]


def recent_detections(
    records: Iterable[DetectionRecord],
    cameras: Iterable[str],
    minutes: float,
    kind: str | None,
    now: datetime,
) -> list[Detection]:
    """Return the records' detections of the cameras within the last `minutes`, newest first."""
    start = now - timedelta(minutes=minutes)
    cameras = list(cameras)
    found = [detection for record in records for detection in record.since(start, cameras, kind)]
    return sorted(found, key=lambda detection: detection.time, reverse=True)


@callback
def async_track_detections(
    hass: HomeAssistant, record: DetectionRecord, entry_id: str, watches: Callable[[str], bool]
) -> CALLBACK_TYPE:
    """Record the entry's miloco_event events from now on; return the stop (call it on unload).

    An event is the entry's when its device belongs to the entry or, without a device, when the entry
    `watches` its camera.
    """
    devices = dr.async_get(hass)

    def is_ours(data: dict[str, Any]) -> bool:
        device_id = data.get("device_id")
        if isinstance(device_id, str) and (device := devices.async_get(device_id)) is not None:
            return entry_id in device.config_entries
        camera = data.get("camera_entity_id")
        return isinstance(camera, str) and watches(camera)

    @callback
    def listener(event: Event[dict[str, Any]]) -> None:
        data = dict(event.data)
        if is_ours(data) and (detection := detection_of(data, event.time_fired)) is not None:
            record.add(detection)

    return hass.bus.async_listen(EVENT_MILOCO, listener)
