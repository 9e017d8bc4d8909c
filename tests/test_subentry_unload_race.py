"""A subentry change and an unload never run side by side (issue 18, case 9e)."""

from __future__ import annotations

import asyncio
import logging
import time

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.miloco.runtime import MilocoRuntime

from .helpers import remote_entry
from .model_server import FakeModelServer
from .perception_helpers import camera_subentry, wait_for
from .scenes import SceneCamera, async_add_cameras, static_room, waving_hand

# How long the porch camera ignores being stopped, the first time its stream is asked for.
STUBBORN_S = 2.0


class StubbornStreamCamera(SceneCamera):
    """A camera that takes its time to look up its stream, the first time, and ignores a stop meanwhile.

    Its watcher then takes its whole stop timeout to stop: a window in which another task can run.
    """

    def __init__(self, name: str) -> None:
        """Serve a still room; no stream."""
        super().__init__(name, static_room())
        self.lookups = 0

    async def stream_source(self) -> str | None:
        """Wait STUBBORN_S the first time, whatever cancels it; there is no stream."""
        self.lookups += 1
        if self.lookups == 1:
            deadline = time.monotonic() + STUBBORN_S
            while (left := deadline - time.monotonic()) > 0:
                try:
                    await asyncio.sleep(left)
                except asyncio.CancelledError:
                    continue
        return None


@pytest.fixture
async def porch(
    hass: HomeAssistant, model_server: FakeModelServer
) -> tuple[MockConfigEntry, StubbornStreamCamera]:
    """Return a backend watching a living room and a porch whose camera stops slowly, with the porch."""
    living_room, porch = SceneCamera("Living room", waving_hand()), StubbornStreamCamera("Porch")
    await async_add_cameras(hass, living_room, porch)
    entry = remote_entry(
        model_server,
        subentries=[camera_subentry(living_room), camera_subentry(porch, capture_mode="stream")],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: porch.lookups == 1)
    return entry, porch


def subentry_of(entry: MockConfigEntry, camera: str) -> str:
    """Return the id of the subentry watching a camera."""
    return next(sid for sid, sub in entry.subentries.items() if sub.data.get("camera_entity_id") == camera)


def change_camera(hass: HomeAssistant, entry: MockConfigEntry, camera: str) -> None:
    """Save a camera's subentry with another check interval (its watcher is rebuilt)."""
    subentry = entry.subentries[subentry_of(entry, camera)]
    hass.config_entries.async_update_subentry(entry, subentry, data={**subentry.data, "check_interval": 0.7})


async def assert_nothing_runs(
    hass: HomeAssistant, runtime: MilocoRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    """Assert that no watcher of the unloaded entry runs, and that nothing went wrong on the way."""
    await hass.async_block_till_done()
    assert not [watcher.title for watcher in runtime.watchers.values() if watcher.running]
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []


async def test_a_change_under_way_finishes_before_the_unload(
    hass: HomeAssistant,
    porch: tuple[MockConfigEntry, StubbornStreamCamera],
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry, _ = porch
    runtime = entry.runtime_data
    # The porch's watcher is rebuilt: its old one takes the whole stop timeout to stop.
    change_camera(hass, entry, "camera.porch")
    await asyncio.sleep(0.1)
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    await assert_nothing_runs(hass, runtime, caplog)


async def test_a_change_after_the_unload_started_changes_nothing(
    hass: HomeAssistant,
    porch: tuple[MockConfigEntry, StubbornStreamCamera],
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry, _ = porch
    runtime = entry.runtime_data
    # The unload waits for the porch's watcher to stop; the porch is changed meanwhile (unguarded, the change
    # would wait for the same stop, then start a new watcher once the unload is done).
    unload = hass.async_create_task(hass.config_entries.async_unload(entry.entry_id))
    await asyncio.sleep(0.4)
    assert not unload.done()
    change_camera(hass, entry, "camera.porch")
    assert await unload
    assert entry.state is ConfigEntryState.NOT_LOADED
    await assert_nothing_runs(hass, runtime, caplog)
