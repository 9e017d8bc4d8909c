"""Fallback servers through real Home Assistant: two loopback model servers, one camera, servers killed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
import json
import time
from typing import Any

from homeassistant.const import EVENT_STATE_CHANGED, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import Event, HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.miloco import health
from custom_components.miloco.const import (
    CONF_API_KEY,
    CONF_FALLBACKS,
    CONF_MODEL,
    CONF_URL,
    CONF_VERIFY_SSL,
    DOMAIN,
)
from custom_components.miloco.engine.backends.failover import FailoverBackend
from custom_components.miloco.engine.backends.openai_compat import OpenAICompatBackend
from custom_components.miloco.settings import REMOTE_TIMEOUT

from .helpers import remote_entry
from .model_server import FakeModelServer, Reply, hang
from .perception_helpers import answer, camera_subentry, wait_for
from .scenes import SceneCamera, async_add_cameras, waving_hand

MODEL = "mimo-vl-miloco-7b"
TIMEOUT_S = 10
# The shortest request timeout the entry accepts: a hanging server costs no more than this.
MIN_TIMEOUT_S = int(REMOTE_TIMEOUT.minimum)
PERSON = "binary_sensor.living_room_person"


def fallback(
    server: FakeModelServer, *, url: str | None = None, api_key: str | None = None
) -> dict[str, Any]:
    """Return a fallback server's settings as the flow stores them."""
    return {
        CONF_URL: url or f"{server.url}/v1",
        CONF_MODEL: MODEL,
        CONF_API_KEY: api_key,
        CONF_VERIFY_SSL: True,
    }


async def watch_with_fallback(
    hass: HomeAssistant,
    first: FakeModelServer,
    *fallbacks: dict[str, Any],
    api_key: str | None = None,
    timeout_s: float = TIMEOUT_S,
    spare_slots: bool = True,
) -> MockConfigEntry:
    """Set up an entry on the first server with fallbacks, watching one camera with fast timing."""
    camera = SceneCamera("Living room", waving_hand())
    await async_add_cameras(hass, camera)
    entry = remote_entry(
        first,
        model=MODEL,
        api_key=api_key,
        subentries=[camera_subentry(camera, spare_slots=spare_slots)],
        timeout=timeout_s,
        fallbacks=list(fallbacks),
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def active_server(hass: HomeAssistant, entry: MockConfigEntry) -> State:
    """Return the entry's active-server sensor."""
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}_active_server")
    assert entity_id is not None
    state = hass.states.get(entity_id)
    assert state is not None
    return state


def active_server_state(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    """Return the state of the entry's active-server sensor."""
    return active_server(hass, entry).state


def record_unavailable(hass: HomeAssistant, entity_id: str) -> list[float]:
    """Collect the times at which the entity went unavailable."""
    times: list[float] = []

    @callback
    def listener(event: Event) -> None:
        new_state = event.data["new_state"]
        if (
            event.data["entity_id"] == entity_id
            and new_state is not None
            and new_state.state == STATE_UNAVAILABLE
        ):
            times.append(time.monotonic())

    hass.bus.async_listen(EVENT_STATE_CHANGED, listener)
    return times


async def wait_or_explain(entry: MockConfigEntry, condition: Callable[[], bool], within: float) -> None:
    """Wait for the condition; when it never holds, fail with the camera's, limiter's and servers' state."""
    try:
        await wait_for(condition, within=within)
    except AssertionError as err:
        runtime = entry.runtime_data
        state = {
            "cameras": {sid: asdict(watcher.stats) for sid, watcher in runtime.watchers.items()},
            "limiter": {"limit": runtime.limiter.limit, "in_flight": runtime.limiter.in_flight},
            "backend": runtime.backend.diagnostics(),
        }
        raise AssertionError(f"condition not met in time: {json.dumps(state, default=str)}") from err


def prober_tasks() -> list[asyncio.Task[Any]]:
    """Return the failover prober tasks still running."""
    return [task for task in asyncio.all_tasks() if "failover prober" in task.get_name() and not task.done()]


async def test_first_server_dies_and_comes_back(
    hass: HomeAssistant, model_server: FakeModelServer, second_server: FakeModelServer
) -> None:
    # The first server is slow enough that a check is in flight when it dies, as a crashing GPU box does.
    model_server.default_reply = Reply(content=answer().content, delay_s=0.3)
    second_server.default_reply = answer()
    # The fallback has its own key: it must be sent there and only there.
    second_server.api_key = "sk-mini-pc"
    entry = await watch_with_fallback(hass, model_server, fallback(second_server, api_key="sk-mini-pc"))
    assert isinstance(entry.runtime_data.backend, FailoverBackend)
    await wait_for(lambda: hass.states.get(PERSON).state == STATE_ON)
    assert active_server_state(hass, entry) == f"{model_server.url}/v1"
    # The preferred server serves while it answers; the fallback was only asked for its model list.
    assert model_server.chat_requests
    assert not second_server.chat_requests
    watcher = next(iter(entry.runtime_data.watchers.values()))
    unavailable = record_unavailable(hass, PERSON)

    await wait_for(lambda: model_server.in_flight > 0)
    port = model_server.port
    checks_before = watcher.stats.checks
    killed_at = time.monotonic()
    await model_server.kill()
    await wait_for(lambda: watcher.stats.checks > checks_before and bool(second_server.chat_requests))
    assert time.monotonic() - killed_at < TIMEOUT_S
    await wait_for(lambda: active_server_state(hass, entry) == f"{second_server.url}/v1")
    assert active_server(hass, entry).attributes["position"] == 2
    assert active_server(hass, entry).attributes["model"] == MODEL
    await wait_for(lambda: len(second_server.chat_requests) >= 3)
    # Only the check in flight at the kill failed: the camera's entities never went unavailable.
    assert watcher.stats.failures <= 1
    assert not unavailable
    assert hass.states.get(PERSON).state == STATE_ON
    assert all(headers.get("Authorization") == "Bearer sk-mini-pc" for headers in second_server.headers_seen)
    assert not any("sk-mini-pc" in str(headers) for headers in model_server.headers_seen)

    # Back on its port, the first server is found by the background probe and takes the checks again.
    served_by_first = len(model_server.chat_requests)
    await model_server.start(port)
    await wait_for(lambda: active_server_state(hass, entry) == f"{model_server.url}/v1", within=20)
    await wait_or_explain(entry, lambda: len(model_server.chat_requests) > served_by_first, within=15)
    served_by_second = len(second_server.chat_requests)
    await wait_for(lambda: len(model_server.chat_requests) >= served_by_first + 4)
    # A request already on its way may finish on the fallback, but no new check goes there.
    assert len(second_server.chat_requests) <= served_by_second + 1
    assert not unavailable

    # The prober belongs to the entry: unloading ends it.
    assert prober_tasks()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert not prober_tasks()


async def test_a_hanging_server_costs_one_check_and_one_timeout(
    hass: HomeAssistant, model_server: FakeModelServer, second_server: FakeModelServer
) -> None:
    second_server.default_reply = answer()
    model_server.default_reply = answer()
    # One check in flight (spare slots off): with them, a second check started during the hang would hang too.
    entry = await watch_with_fallback(
        hass, model_server, fallback(second_server), timeout_s=MIN_TIMEOUT_S, spare_slots=False
    )
    await wait_for(lambda: hass.states.get(PERSON).state == STATE_ON)
    unavailable = record_unavailable(hass, PERSON)
    watcher = next(iter(entry.runtime_data.watchers.values()))
    # The GPU box still lists its models but never answers a check (a wedged driver).
    model_server.default_reply = hang()
    hung_at = time.monotonic()
    await wait_for(lambda: bool(second_server.chat_requests), within=MIN_TIMEOUT_S + 5)
    moved_after = time.monotonic() - hung_at
    # One timeout, plus the check interval and the time to prepare the next check.
    assert moved_after < MIN_TIMEOUT_S + 2, moved_after
    await wait_for(lambda: len(second_server.chat_requests) >= 4)
    assert watcher.stats.failures == 1
    assert not unavailable
    assert active_server_state(hass, entry) == f"{second_server.url}/v1"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_all_servers_down_then_back(
    hass: HomeAssistant,
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(health, "BACKEND_ISSUE_AFTER_S", 1.0)
    model_server.default_reply = second_server.default_reply = answer()
    entry = await watch_with_fallback(hass, model_server, fallback(second_server))
    issue_id = f"backend_failing_{entry.entry_id}"
    await wait_for(lambda: hass.states.get(PERSON).state == STATE_ON)
    ports = model_server.port, second_server.port

    # The first server dying alone is no backend failure: no repair issue while the second answers.
    await model_server.kill()
    await wait_for(lambda: active_server_state(hass, entry) == f"{second_server.url}/v1")
    served = len(second_server.chat_requests)
    await wait_for(lambda: len(second_server.chat_requests) >= served + 4)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert hass.states.get(PERSON).state == STATE_ON

    await second_server.kill()
    await wait_for(lambda: hass.states.get(PERSON).state == STATE_UNAVAILABLE)
    await wait_for(lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None)
    assert hass.states.get("event.living_room_gesture").state == STATE_UNAVAILABLE
    # No server answers: which one is active is unknown, not "none".
    assert active_server_state(hass, entry) == STATE_UNAVAILABLE

    # Both come back: the entities recover and the repair issue goes, then the preferred server serves again
    # (its probes have backed off for longer, as it has been down for longer).
    await second_server.start(ports[1])
    await model_server.start(ports[0])
    await wait_or_explain(entry, lambda: hass.states.get(PERSON).state == STATE_ON, within=30)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert hass.states.get("event.living_room_gesture").state != STATE_UNAVAILABLE
    await wait_for(lambda: active_server_state(hass, entry) == f"{model_server.url}/v1", within=40)
    await wait_for(lambda: bool(model_server.chat_requests))
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_setup_on_the_fallback_when_the_first_is_down(
    hass: HomeAssistant, model_server: FakeModelServer, second_server: FakeModelServer
) -> None:
    second_server.default_reply = answer()
    await model_server.stop()
    entry = await watch_with_fallback(hass, model_server, fallback(second_server))
    await wait_for(lambda: hass.states.get(PERSON).state == STATE_ON)
    assert active_server_state(hass, entry) == f"{second_server.url}/v1"
    assert second_server.chat_requests
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_without_fallbacks_the_backend_is_one_server(
    hass: HomeAssistant, model_server: FakeModelServer
) -> None:
    model_server.default_reply = answer()
    entry = await watch_with_fallback(hass, model_server)
    assert type(entry.runtime_data.backend) is OpenAICompatBackend
    assert er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}_active_server") is None


async def test_checks_admitted_follow_the_active_servers_limit(
    hass: HomeAssistant, model_server: FakeModelServer, second_server: FakeModelServer
) -> None:
    # Slow answers and three cameras keep every slot busy. The first server (a router, say) takes two
    # requests at once, the fallback (a CPU box) one.
    model_server.default_reply = second_server.default_reply = Reply(content=answer().content, delay_s=0.4)
    cameras = [SceneCamera(f"Cam {index}", waving_hand()) for index in range(3)]
    await async_add_cameras(hass, *cameras)
    port = model_server.port
    await model_server.stop()
    entry = remote_entry(
        model_server,
        model=MODEL,
        subentries=[camera_subentry(camera) for camera in cameras],
        max_concurrent=2,
        fallbacks=[{**fallback(second_server), "max_concurrent": 1}],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    runtime = entry.runtime_data
    await wait_for(lambda: len(second_server.chat_requests) >= 4)
    # On the fallback, one check at a time is admitted: the others are skipped, none waits in its queue.
    assert runtime.limiter.limit == 1
    assert second_server.in_flight_max == 1
    watchers = runtime.watchers.values()
    assert sum(watcher.stats.failures for watcher in watchers) == 0
    assert sum(watcher.stats.skipped_busy for watcher in watchers) > 0

    # Back on the first server, two at a time again.
    await model_server.start(port)
    await wait_for(lambda: model_server.in_flight_max == 2, within=20)
    assert runtime.limiter.limit == 2
    assert second_server.in_flight_max == 1
    assert sum(watcher.stats.failures for watcher in watchers) == 0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_diagnostics_redact_the_fallbacks_secrets(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    model_server: FakeModelServer,
    second_server: FakeModelServer,
) -> None:
    assert await async_setup_component(hass, "diagnostics", {})
    model_server.default_reply = answer()
    url = f"http://admin:hunter2@127.0.0.1:{second_server.port}/v1"
    entry = await watch_with_fallback(
        hass, model_server, fallback(second_server, url=url, api_key="sk-fallback-secret")
    )
    await wait_for(lambda: bool(model_server.chat_requests))
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(diagnostics, default=str)
    assert "sk-fallback-secret" not in text
    assert "hunter2" not in text
    assert "admin" not in text
    (stored,) = diagnostics["entry"]["data"][CONF_FALLBACKS]
    assert stored[CONF_URL] == f"http://127.0.0.1:{second_server.port}/v1"
    assert stored[CONF_API_KEY] == "**REDACTED**"
    assert diagnostics["backend"]["kind"] == "failover"
    assert [server["active"] for server in diagnostics["backend"]["servers"]] == [True, False]
