"""Work-conserving checks: while the scene changes, the next check starts when the model answers the last one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import itertools
import statistics
import time
from typing import Any

from homeassistant.core import HomeAssistant

from custom_components.miloco.const import CONF_MAX_CONCURRENT

from .helpers import remote_entry
from .model_server import FakeModelServer, Reply
from .perception_helpers import answer, camera_subentry, wait_for, watch
from .scenes import SceneCamera, async_add_cameras, static_room, waving_hand


@dataclass
class Timeline:
    """When each chat request arrived, answered after a fixed delay."""

    delay_s: float
    arrived: list[float] = field(default_factory=list)

    def respond(self, body: dict[str, Any]) -> Reply:
        """Note the arrival and answer after `delay_s`."""
        self.arrived.append(time.monotonic())
        return Reply(content=answer().content, delay_s=self.delay_s)

    def waits_after_answers(self) -> list[float]:
        """Return, for each request after the first, how long after the previous answer it arrived."""
        return [later - (earlier + self.delay_s) for earlier, later in itertools.pairwise(self.arrived)]


async def test_a_busy_scene_is_checked_again_as_soon_as_the_model_answers(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    # One frame a second and a model that takes 1.2 s: when an answer comes, a newer frame is already there.
    timeline = Timeline(delay_s=1.2)
    model_server.responder = timeline.respond
    # Spare slots off: this pins one check at a time (tests/test_spare_slots.py covers the second check).
    await watch(
        hass,
        model_server,
        SceneCamera("Living room", waving_hand()),
        fps=1,
        window_frames=2,
        spare_slots=False,
    )
    await wait_for(lambda: len(timeline.arrived) >= 7, within=30)
    waits = timeline.waits_after_answers()
    # The next check starts at the answer, with the frames already there; a fixed tick, or a start at the
    # camera's next frame, would wait half a second on average (up to a frame, 1 s).
    assert statistics.median(waits) < 0.2, waits
    # Still one check of a camera at a time: the next starts after the answer, never alongside.
    assert model_server.in_flight_max == 1
    assert min(waits) >= 0, waits


async def test_the_interval_is_a_minimum_the_user_can_raise(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    camera = SceneCamera("Living room", waving_hand())
    timeline = Timeline(delay_s=0.0)
    model_server.responder = timeline.respond
    await watch(hass, model_server, camera, check_interval=1.5)
    await wait_for(lambda: len(timeline.arrived) >= 4, within=20)
    # The model answers at once and the scene moves at 10 fps, yet checks start 1.5 s apart at the least.
    spacing = [later - earlier for earlier, later in itertools.pairwise(timeline.arrived)]
    assert min(spacing) >= 1.45, spacing
    # And no more than the interval apart either: it is the only thing that holds them back.
    assert statistics.median(spacing) < 1.5 + 0.5, spacing


async def test_a_change_that_ends_while_a_check_runs_is_checked_next(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    room = static_room()
    hand = waving_hand()
    showing_hand = False
    camera = SceneCamera("Living room", lambda: hand() if showing_hand else room())
    timeline = Timeline(delay_s=1.5)
    model_server.responder = timeline.respond
    # Spare slots off: with them, a second check would see the wave at once (tests/test_spare_slots.py).
    await watch(hass, model_server, camera, spare_slots=False)
    await wait_for(lambda: len(timeline.arrived) == 1)
    # While the first check runs, a hand waves and is gone again before the model answers.
    await asyncio.sleep(0.3)
    showing_hand = True
    await asyncio.sleep(0.4)
    showing_hand = False
    # The answer covers a window from before the wave, and the room looks as it did: the wave still asks.
    await wait_for(lambda: len(timeline.arrived) == 2, within=10)
    assert timeline.arrived[1] - timeline.arrived[0] < 1.5 + 0.5
    # After that check the room is still: nothing more is asked.
    await asyncio.sleep(1.5 + 2)
    assert len(timeline.arrived) == 2


async def test_busy_cameras_sharing_one_slot_take_turns(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = Reply(content=answer().content, delay_s=0.3)
    cameras = [SceneCamera(f"Cam {index}", waving_hand()) for index in range(2)]
    await async_add_cameras(hass, *cameras)
    entry = remote_entry(
        model_server,
        subentries=[camera_subentry(camera) for camera in cameras],
        **{CONF_MAX_CONCURRENT: 1},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: len(model_server.chat_requests) >= 10, within=20)
    watchers = list(entry.runtime_data.watchers.values())
    # Each camera would start its next check the moment its own answers; the limiter keeps them taking turns.
    assert model_server.in_flight_max == 1
    checks = [watcher.stats.checks for watcher in watchers]
    assert min(checks) >= 4
    assert max(checks) - min(checks) <= 1, checks


async def test_a_slot_freed_by_one_camera_goes_at_once_to_the_camera_waiting_for_it(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    timeline = Timeline(delay_s=0.7)
    model_server.responder = timeline.respond
    # One frame a second per camera: a refused camera that waited for its next frame would leave the slot
    # idle for half a second on average.
    cameras = [SceneCamera(f"Cam {index}", waving_hand()) for index in range(2)]
    await async_add_cameras(hass, *cameras)
    entry = remote_entry(
        model_server,
        subentries=[camera_subentry(camera, fps=1, window_frames=2) for camera in cameras],
        **{CONF_MAX_CONCURRENT: 1},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: len(timeline.arrived) >= 8, within=30)
    waits = timeline.waits_after_answers()
    # The slot never idles: the next request (the other camera's) arrives as the previous one is answered.
    assert statistics.median(waits) < 0.2, waits
    assert model_server.in_flight_max == 1
    checks = [watcher.stats.checks for watcher in entry.runtime_data.watchers.values()]
    assert max(checks) - min(checks) <= 1, checks
