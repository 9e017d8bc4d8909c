"""When a camera takes its next frame: on its own phase while it watches, on a grid shared by all at rest."""

from __future__ import annotations

from typing import Final

# A camera at rest takes its frames at the points of a grid this many to its rest interval, shared by every
# camera of the same rate. What a still camera costs is mostly waking up, not working: each time the event loop
# (or an executor thread) sleeps and wakes costs about as much CPU as a frame's decode on these machines, and
# cameras that wake at the same instant wake the loop once. A few points, not one, so that a large home's resting
# frames do not all land on the executor at the same instant.
REST_SLOTS: Final = 4


def next_frame_at(
    scheduled: float, period: float, *, stride: int, phase: float, rest_slots: int = REST_SLOTS
) -> float:
    """Return when to take the frame after the one scheduled at `scheduled` (monotonic seconds).

    Watching (`stride` 1), a camera keeps its own `phase` (0 to 1 of a period), so that an entry's cameras spread
    their image work over the period; it returns to that phase when it stops resting. At rest (`stride` frames
    apart), it moves to the nearest point of the shared grid: its frames stay `stride` periods apart on average,
    so that resting adds no wait to the first movement beyond the stride's own.
    """
    interval = period * stride
    target = scheduled + interval
    if stride > 1 and rest_slots > 0:
        step, anchor = interval / rest_slots, 0.0
    else:
        step, anchor = period, phase * period
    return anchor + round((target - anchor) / step) * step
