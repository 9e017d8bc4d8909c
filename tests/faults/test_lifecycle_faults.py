"""Lifecycle under real conditions: reload, unload and delete with slow cameras, failed setups, bad data."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
import logging
import time
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components import miloco
from custom_components.miloco import health
from custom_components.miloco.const import DOMAIN, SUBENTRY_RULE
from custom_components.miloco.engine.backends.base import VisionBackend
from custom_components.miloco.engine.backends.errors import BackendClosed
from custom_components.miloco.engine.probe import probe_request

from ..helpers import remote_entry
from ..model_server import FakeModelServer, Reply, error
from ..perception_helpers import answer, camera_subentry, wait_for, watch
from ..scenes import SceneCamera, async_add_cameras, waving_hand
from .cameras import SlowCamera

# The judged bound for reload, unload and delete with cameras whose snapshots take up to 1.5 s.
BOUND_S = 2.0


async def timed(action: Awaitable[Any]) -> tuple[Any, float]:
    """Run an action with a generous hard stop (an old hang fails the test instead of blocking it)."""
    started = time.monotonic()
    result = await asyncio.wait_for(action, timeout=15)
    return result, time.monotonic() - started


async def slow_entry(
    hass: HomeAssistant, server: FakeModelServer
) -> tuple[MockConfigEntry, list[SlowCamera]]:
    """Watch two cameras whose snapshots take 0.25 to 1.5 s."""
    server.default_reply = Reply(content=answer().content, delay_s=0.2)
    cameras = [SlowCamera("Living room", waving_hand(), seed=1), SlowCamera("Hall", waving_hand(), seed=2)]
    entry = await watch(hass, server, *cameras)
    return entry, cameras


async def snapshot_in_flight(cameras: list[SlowCamera]) -> None:
    """Wait until a snapshot is being taken, the moment the old code could not stop in."""
    await wait_for(lambda: any(camera.in_flight for camera in cameras))


async def test_reload_with_a_snapshot_in_flight_finishes_quickly(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    entry, cameras = await slow_entry(hass, model_server)
    for _ in range(5):
        await snapshot_in_flight(cameras)
        reloaded, elapsed = await timed(hass.config_entries.async_reload(entry.entry_id))
        assert reloaded
        assert elapsed < BOUND_S, f"reload took {elapsed:.2f} s"
        assert entry.state is ConfigEntryState.LOADED
    # The last runtime's watchers run, and the cameras keep being asked.
    watchers = list(entry.runtime_data.watchers.values())
    assert all(watcher.running for watcher in watchers)
    await wait_for(lambda: all(watcher.stats.checks >= 1 for watcher in watchers))


async def test_unload_with_a_snapshot_in_flight_leaves_nothing_calling_the_model(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    entry, cameras = await slow_entry(hass, model_server)
    await wait_for(lambda: len(model_server.chat_requests) >= 2)
    watchers = list(entry.runtime_data.watchers.values())
    for _ in range(3):
        await snapshot_in_flight(cameras)
        unloaded, elapsed = await timed(hass.config_entries.async_unload(entry.entry_id))
        assert unloaded
        assert elapsed < BOUND_S, f"unload took {elapsed:.2f} s"
        assert entry.state is ConfigEntryState.NOT_LOADED
        assert not any(watcher.running for watcher in watchers)
        served = len(model_server.chat_requests)
        # Longer than the slowest snapshot plus a check interval: an orphaned loop would have asked again.
        await asyncio.sleep(2.0)
        assert len(model_server.chat_requests) == served
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        watchers = list(entry.runtime_data.watchers.values())
        await wait_for(lambda served=served: len(model_server.chat_requests) > served)


async def test_delete_with_a_snapshot_in_flight_finishes_quickly(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    entry, cameras = await slow_entry(hass, model_server)
    for attempt in range(3):
        if attempt:
            entry = await _readd(hass, model_server)
        await wait_for(lambda: len(model_server.chat_requests) >= 1)
        await snapshot_in_flight(cameras)
        _, elapsed = await timed(hass.config_entries.async_remove(entry.entry_id))
        assert elapsed < BOUND_S, f"delete took {elapsed:.2f} s"
        assert hass.config_entries.async_get_entry(entry.entry_id) is None
        served = len(model_server.chat_requests)
        await asyncio.sleep(2.0)
        assert len(model_server.chat_requests) == served


async def _readd(hass: HomeAssistant, server: FakeModelServer) -> MockConfigEntry:
    """Add the backend with its two cameras again (the cameras themselves are already in HA)."""
    entry = remote_entry(
        server,
        subentries=[
            camera_subentry(SlowCamera("Living room", waving_hand())),
            camera_subentry(SlowCamera("Hall", waving_hand())),
        ],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_a_rule_added_right_after_a_slow_camera_gets_its_entities(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    entry, cameras = await slow_entry(hass, model_server)
    await snapshot_in_flight(cameras)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_RULE), context={"source": "user"}
    )
    result = await asyncio.wait_for(
        hass.config_entries.subentries.async_configure(
            result["flow_id"],
            {
                "name": "Wave",
                "preset": "custom",
                "condition": "someone is waving at the camera",
                "cameras": ["camera.living_room"],
                "mode": "event",
                "timing": {"cooldown": 10, "on_checks": 2, "off_delay": 10},
                "enabled": True,
            },
        ),
        timeout=15,
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await wait_for(lambda: hass.states.get("switch.wave_enabled") is not None, within=BOUND_S + 1)
    assert hass.states.get("switch.wave_enabled").state == STATE_ON
    assert entry.state is ConfigEntryState.LOADED


async def test_a_failure_after_the_backend_started_closes_it(
    hass: HomeAssistant, model_server: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[VisionBackend] = []
    real_create_backend = miloco.create_backend

    def recording_create_backend(hass: HomeAssistant, data: Any) -> VisionBackend:
        backend = real_create_backend(hass, data)
        started.append(backend)
        return backend

    async def broken_runtime(*args: Any) -> Any:
        raise RuntimeError("a platform could not be prepared")

    monkeypatch.setattr(miloco, "create_backend", recording_create_backend)
    monkeypatch.setattr(miloco, "async_create_runtime", broken_runtime)
    entry = remote_entry(model_server)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    (backend,) = started
    request = await hass.async_add_executor_job(probe_request)
    with pytest.raises(BackendClosed):
        await backend.async_complete(request)


async def test_deleting_the_entry_deletes_its_repair_issues(
    hass: HomeAssistant, model_server: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "BACKEND_ISSUE_AFTER_S", 0.5)
    model_server.default_reply = error(500, "CUDA out of memory")
    entry = await watch(hass, model_server, SceneCamera("Living room", waving_hand()))
    backend_issue = f"backend_failing_{entry.entry_id}"
    await wait_for(lambda: ir.async_get(hass).async_get_issue(DOMAIN, backend_issue) is not None, within=20)
    # The same entry also carries the "cannot load" issue of an earlier failed attempt.
    ir.async_create_issue(
        hass,
        DOMAIN,
        f"cannot_load_{entry.entry_id}",
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="load_failed",
        translation_placeholders={"title": entry.title, "reason": "gone", "install": ""},
    )
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    issues = ir.async_get(hass)
    assert issues.async_get_issue(DOMAIN, backend_issue) is None
    assert issues.async_get_issue(DOMAIN, f"cannot_load_{entry.entry_id}") is None


async def test_a_subentry_with_bad_stored_data_is_skipped_not_fatal(
    hass: HomeAssistant, model_server: FakeModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="custom_components.miloco")
    model_server.default_reply = answer()
    good, bad = SceneCamera("Living room", waving_hand()), SceneCamera("Hall", waving_hand())
    await async_add_cameras(hass, good, bad)
    # Stored data no camera can run from (a hand edit, or an older version's bug): no camera entity at all.
    # (A single bad number, such as `change_threshold: nan` stored as null, only falls back to its default.)
    entry = remote_entry(
        model_server, subentries=[camera_subentry(good), camera_subentry(bad, camera_entity_id=None)]
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_ON)
    assert "Hall" in caplog.text and "not valid" in caplog.text
    # Deleting the bad camera works and leaves the entry loaded.
    bad_id = next(sid for sid, sub in entry.subentries.items() if sub.title == "Hall")
    assert hass.config_entries.async_remove_subentry(entry, bad_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await wait_for(lambda: hass.states.get("binary_sensor.living_room_person").state == STATE_ON)
