"""Helpers for tests of the perception loop: fast camera settings, scripted answers, waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import json
import time
from typing import Any

from homeassistant.core import Event, HomeAssistant, callback
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.const import EVENT_MILOCO, SUBENTRY_CAMERA

from .helpers import Server, remote_entry
from .model_server import Reply
from .scenes import SceneCamera, async_add_cameras

# Fast timing for tests: 10 frames per second, 3-frame windows, a check every half second.
FAST: dict[str, Any] = {
    "capture_mode": "snapshot",
    "fps": 10,
    "window_frames": 3,
    "check_interval": 0.5,
    "detail": "low",
    "change_threshold": 0.5,
    "heartbeat": 0,
    "hold_time": 1,
    "prompt_mode": "combined",
}


def answer(
    gestures: tuple[str, ...] = (),
    activities: tuple[str, ...] = (),
    person: bool = True,
    rules: dict[str, bool] | None = None,
    reason: str = "scripted",
    **extra: Any,
) -> Reply:
    """Return a combined perception reply; rules are keyed r1, r2, … as the model sees them."""
    body: dict[str, Any] = {
        "gestures": list(gestures),
        "activities": list(activities),
        "person_present": "yes" if person else "no",
        "reason": reason,
        **extra,
    }
    if rules is not None:
        body["rules"] = {alias: "yes" if holds else "no" for alias, holds in rules.items()}
    return Reply(content=json.dumps(body))


async def wait_for(condition: Callable[[], bool], within: float = 15.0) -> None:
    """Wait (in real time: the watcher runs on real clocks) until the condition holds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def camera_subentry(camera: SceneCamera, **overrides: Any) -> dict[str, Any]:
    """Return the subentry that watches a scene camera with fast timing."""
    return {
        "subentry_type": SUBENTRY_CAMERA,
        "title": camera.name,
        "unique_id": None,
        "data": {
            "camera_entity_id": f"camera.{str(camera.name).lower().replace(' ', '_')}",
            "gestures": ["thumbs_up", "wave"],
            "activities": ["reading", "watch_tv"],
            "presence": True,
            **FAST,
            **overrides,
        },
    }


async def watch(
    hass: HomeAssistant, server: Server, *cameras: SceneCamera, **overrides: Any
) -> MockConfigEntry:
    """Set up a backend entry on the server that watches the cameras with fast timing."""
    await async_add_cameras(hass, *cameras)
    model = overrides.pop("model", "mimo-vl-miloco-7b")
    entry = remote_entry(
        server, model=model, subentries=[camera_subentry(camera, **overrides) for camera in cameras]
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def capture_events(hass: HomeAssistant) -> list[dict[str, Any]]:
    """Collect miloco_event bus events."""
    events: list[dict[str, Any]] = []

    @callback
    def listener(event: Event) -> None:
        events.append(dict(event.data))

    hass.bus.async_listen(EVENT_MILOCO, listener)
    return events
