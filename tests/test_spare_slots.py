"""Spare slots: a scene that moves while a check runs starts a second check on a model slot nobody waits for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
import time
from typing import Any

from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers.event import async_track_state_change_event

from custom_components.miloco.engine.scheduling import FairLimiter
from custom_components.miloco.watcher import CameraWatcher

from .model_server import FakeModelServer, Reply
from .perception_helpers import answer, wait_for, watch
from .scenes import SceneCamera, static_room, waving_hand

MODEL_S = 1.5


@dataclass
class Overlap:
    """How many checks of one camera run at once, seen through its public check hooks."""

    running: int = 0
    most: int = 0
    starts: list[float] = field(default_factory=list)

    def follow(self, watcher: CameraWatcher) -> None:
        """Count the watcher's checks as they start and end."""
        watcher.check_hooks.started.add(self._started)
        watcher.check_hooks.ended.add(self._ended)

    def _started(self, started: float) -> None:
        self.starts.append(started)
        self.running += 1
        self.most = max(self.most, self.running)

    def _ended(self, started: float, ended: float) -> None:
        # A check that started before the hooks were followed (a loaded machine starts the first one early) was
        # never counted as running.
        if started in self.starts:
            self.running -= 1


@dataclass
class SlowModel:
    """Answers like a 7B model on a home GPU, after 1.5 s, noting when each request arrived."""

    arrived: list[float] = field(default_factory=list)

    def respond(self, body: dict[str, Any]) -> Reply:
        """Note the arrival and answer late."""
        self.arrived.append(time.monotonic())
        return Reply(content=answer().content, delay_s=MODEL_S)


async def _wave_during_the_first_check(
    hass: HomeAssistant,
    model_server: FakeModelServer,
    *,
    spare_slots: bool,
    while_checking: Callable[[FairLimiter], None] = lambda limiter: None,
) -> tuple[SlowModel, Overlap]:
    """Watch a still room on two slots; a hand appears while the first check runs (`while_checking` runs then)."""
    room, hand = static_room(), waving_hand()
    waving = False
    camera = SceneCamera("Living room", lambda: hand() if waving else room())
    model = SlowModel()
    model_server.responder = model.respond
    entry = await watch(hass, model_server, camera, spare_slots=spare_slots)
    overlap = Overlap()
    (watcher,) = entry.runtime_data.watchers.values()
    overlap.follow(watcher)
    await wait_for(lambda: len(model.arrived) == 1)
    while_checking(entry.runtime_data.limiter)
    await asyncio.sleep(0.2)
    waving = True
    await asyncio.sleep(MODEL_S)
    return model, overlap


async def test_a_change_during_a_check_starts_a_second_check_on_a_spare_slot(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model, overlap = await _wave_during_the_first_check(hass, model_server, spare_slots=True)
    # The running check cannot see the wave: a second one starts on the idle slot, without waiting 1.5 s.
    await wait_for(lambda: model_server.in_flight_max == 2, within=5)
    assert overlap.most == 2
    first, second = model.arrived[:2]
    # Staggered by at least the check interval (0.5 s), and well before the first answers.
    assert 0.5 - 0.05 <= second - first < MODEL_S, (first, second)


async def test_spare_slots_turned_off_keep_one_check_at_a_time(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model, overlap = await _wave_during_the_first_check(hass, model_server, spare_slots=False)
    await wait_for(lambda: len(model.arrived) >= 3, within=10)
    assert overlap.most == 1
    assert model_server.in_flight_max == 1


async def test_no_second_check_on_a_slot_another_camera_waits_for(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    def another_camera_waits(limiter: FairLimiter) -> None:
        # Another camera holds the second slot and is refused a further one: it waits for the next slot freed.
        now = time.monotonic()
        assert limiter.try_acquire("another camera", now)
        assert not limiter.try_acquire("another camera", now)
        # Its check answers: a slot is idle, and the waiting camera's turn is next (it has no waker to take it).
        limiter.release("another camera")

    model, overlap = await _wave_during_the_first_check(
        hass, model_server, spare_slots=True, while_checking=another_camera_waits
    )
    await wait_for(lambda: len(model.arrived) >= 2, within=10)
    # The wave waits for the camera's own check to answer: the idle slot was the other camera's turn.
    assert model.arrived[1] - model.arrived[0] >= MODEL_S
    assert overlap.most == 1
    assert model_server.in_flight_max == 1


async def test_a_late_answer_about_an_older_window_undoes_nothing(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    # The first check's answer (someone reading) comes last, after the spare checks' answers about newer windows.
    arrived = 0

    def respond(body: dict[str, Any]) -> Reply:
        nonlocal arrived
        arrived += 1
        if arrived == 1:
            return Reply(content=answer(activities=("reading",)).content, delay_s=2.5)
        return Reply(content=answer().content, delay_s=0.2)

    model_server.responder = respond
    room, hand = static_room(), waving_hand()
    waving = False
    camera = SceneCamera("Living room", lambda: hand() if waving else room())
    reading: list[str] = []

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        if (new := event.data["new_state"]) is not None:
            reading.append(new.state)

    async_track_state_change_event(hass, ["binary_sensor.living_room_reading"], changed)
    entry = await watch(hass, model_server, camera, spare_slots=True)
    (watcher,) = entry.runtime_data.watchers.values()
    await wait_for(lambda: arrived == 1)
    waving = True
    await wait_for(lambda: watcher.stats.stale_answers == 1, within=10)
    await hass.async_block_till_done()
    # Newer windows were answered first: the older "reading" is dropped, never shown.
    assert watcher.stats.checks >= 2
    assert STATE_ON not in reading
    assert hass.states.get("binary_sensor.living_room_reading").state == STATE_OFF
