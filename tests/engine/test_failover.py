"""The failover backend over two real loopback model servers, one of which dies and comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
import time
from typing import Any

import aiohttp
import pytest

from custom_components.miloco.engine.backends.base import VisionRequest
from custom_components.miloco.engine.backends.errors import (
    BackendClosed,
    BackendError,
    BackendTimeout,
    BadReply,
    CannotConnect,
    InvalidAuth,
    RateLimited,
    RequestTooLarge,
    ServerError,
    ServerUnreachable,
)
from custom_components.miloco.engine.backends.failover import FailoverBackend
from custom_components.miloco.engine.backends.openai_compat import OpenAICompatBackend
from custom_components.miloco.engine.parse import yes_no_schema

from ..model_server import FakeModelServer, Reply, context_exceeded, error, hang, rate_limited

MODEL = "mimo-vl-miloco-7b"
JPEG = b"\xff\xd8\xff\xe0failover-jpeg\xff\xd9"
PROBE_S = 0.1


def _request() -> VisionRequest:
    return VisionRequest(
        system_prompt="You are a camera assistant.",
        frames=(JPEG,),
        question="Is someone waving?",
        json_schema=yes_no_schema(),
        max_tokens=32,
    )


@pytest.fixture
async def make_failover(
    session: aiohttp.ClientSession,
) -> AsyncGenerator[Callable[..., FailoverBackend]]:
    made: list[FailoverBackend] = []

    def make(
        *servers: FakeModelServer, timeout_s: float = 2.0, concurrency: int = 2, **kwargs: Any
    ) -> FailoverBackend:
        backends = [
            OpenAICompatBackend(
                session, base_url=server.url, model=MODEL, timeout_s=timeout_s, max_concurrency=concurrency
            )
            for server in servers
        ]
        backend = FailoverBackend(
            backends, probe_interval_s=PROBE_S, max_probe_interval_s=PROBE_S * 4, **kwargs
        )
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.async_close()


async def _stop_between_checks(server: FakeModelServer) -> None:
    """Stop a server the way one goes down between two checks: the client has seen its connections close."""
    await server.stop()
    # Without this pause a pooled keep-alive connection may not have noticed yet, and a request on it is
    # dropped rather than refused: that is a request the server may have had, which we never resend.
    await asyncio.sleep(0.05)


async def _until(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Wait until the predicate holds (the servers and the prober offer nothing to await)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls state that changes in other tasks
            await asyncio.sleep(0.02)


async def test_the_preferred_server_serves_while_it_answers(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
) -> None:
    backend = make_failover(model_server, second_server)
    await backend.async_start()
    for _ in range(3):
        await backend.async_complete(_request())
    assert (len(model_server.chat_requests), len(second_server.chat_requests)) == (3, 0)
    assert backend.active_index == 0
    assert [status.active for status in backend.servers()] == [True, False]


async def test_a_dead_preferred_server_hands_the_same_check_to_the_next(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
) -> None:
    backend = make_failover(model_server, second_server)
    await backend.async_start()
    port = model_server.port
    await _stop_between_checks(model_server)
    # Connection refused: the first server never got the request, so this check is not lost.
    started = time.monotonic()
    reply = await backend.async_complete(_request())
    assert time.monotonic() - started < 1.0
    assert reply.text == '{"result": "yes"}'
    assert backend.active_index == 1
    assert backend.servers()[0].last_error == "cannot_connect"
    await backend.async_complete(_request())
    assert len(second_server.chat_requests) == 2
    # Back on its port, the preferred server is found by a background probe and serves again.
    await model_server.start(port)
    await _until(lambda: backend.active_index == 0)
    await backend.async_complete(_request())
    assert len(model_server.chat_requests) == 1
    assert len(second_server.chat_requests) == 2
    # The probe asked for the model list only, never for a chat completion.
    assert model_server.requests[0] == {"path": "/v1/models"}


async def test_a_hanging_server_costs_one_timeout_and_the_request_is_not_resent(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
) -> None:
    backend = make_failover(model_server, second_server, timeout_s=0.5)
    await backend.async_start()
    model_server.default_reply = hang()
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        await backend.async_complete(_request())
    assert time.monotonic() - started < 1.5
    # No hedging: the request that met the timeout went to one server only.
    assert (len(model_server.chat_requests), len(second_server.chat_requests)) == (1, 0)
    await backend.async_complete(_request())
    assert len(second_server.chat_requests) == 1
    assert backend.active_index == 1


@pytest.mark.parametrize(
    "fault", [error(500, "CUDA error"), error(503, "Loading model"), error(404, "The model does not exist")]
)
async def test_server_faults_move_the_next_check(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
    fault: Reply,
) -> None:
    backend = make_failover(model_server, second_server)
    await backend.async_start()
    model_server.script(fault)
    with pytest.raises(BackendError):
        await backend.async_complete(_request())
    await backend.async_complete(_request())
    assert (len(model_server.chat_requests), len(second_server.chat_requests)) == (1, 1)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (rate_limited("30"), RateLimited),
        (context_exceeded(), RequestTooLarge),
        (error(400, "max_tokens must be at least 1"), ServerError),
        (Reply(raw_body=b'{"choices": [{"message": {"content": [{"type": "text", "text": 1}]}}]}'), BadReply),
    ],
)
async def test_faults_of_the_request_do_not_move(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
    fault: Reply,
    expected: type[BackendError],
) -> None:
    backend = make_failover(model_server, second_server)
    await backend.async_start()
    model_server.script(fault)
    with pytest.raises(expected) as caught:
        await backend.async_complete(_request())
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 30
    await backend.async_complete(_request())
    assert (len(model_server.chat_requests), len(second_server.chat_requests)) == (2, 0)
    assert backend.active_index == 0


async def test_a_server_that_lists_models_but_fails_checks_is_probed_less_often(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
) -> None:
    # Its model list answers (so each probe puts it back), but every chat request fails: the back-off must
    # grow, or checks would bounce between the servers at the probe interval.
    backend = make_failover(model_server, second_server)
    await backend.async_start()
    model_server.default_reply = error(500, "CUDA error")
    waits: list[float] = []
    for _ in range(3):
        await _until(lambda: backend.active_index == 0)
        with pytest.raises(ServerError):
            await backend.async_complete(_request())
        wait = backend.servers()[0].next_probe_in_s
        assert wait is not None
        waits.append(wait)
    assert waits[0] < waits[1] < waits[2] <= PROBE_S * 4
    assert backend.servers()[0].consecutive_failures == 3
    # One good answer clears the record.
    model_server.default_reply = Reply()
    await _until(lambda: backend.active_index == 0)
    await backend.async_complete(_request())
    assert backend.servers()[0].consecutive_failures == 0


async def test_a_servers_retry_after_sets_its_next_probe(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
) -> None:
    backend = make_failover(model_server, second_server)
    await backend.async_start()
    # "Loading model, come back in 2 s": longer than our first probe interval, so the hint wins (up to our cap).
    model_server.script(rate_limited("2", status=503))
    with pytest.raises(BackendError):
        await backend.async_complete(_request())
    wait = backend.servers()[0].next_probe_in_s
    assert wait is not None
    assert PROBE_S * 3 < wait <= PROBE_S * 4


async def test_each_server_keeps_its_own_concurrency(
    model_server: FakeModelServer, second_server: FakeModelServer, session: aiohttp.ClientSession
) -> None:
    backends = [
        OpenAICompatBackend(session, base_url=model_server.url, model=MODEL, max_concurrency=3),
        OpenAICompatBackend(session, base_url=second_server.url, model=MODEL, max_concurrency=1),
    ]
    backend = FailoverBackend(backends, probe_interval_s=60)
    await backend.async_start()
    assert backend.max_concurrency == 3
    model_server.default_reply = second_server.default_reply = Reply(delay_s=0.1)
    await asyncio.gather(*(backend.async_complete(_request()) for _ in range(3)))
    assert model_server.in_flight_max == 3
    await _stop_between_checks(model_server)
    await asyncio.gather(*(backend.async_complete(_request()) for _ in range(3)))
    assert second_server.in_flight_max == 1
    await backend.async_close()


async def test_killed_mid_run_loses_only_the_checks_in_flight(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
) -> None:
    backend = make_failover(model_server, second_server)
    await backend.async_start()
    model_server.default_reply = Reply(delay_s=0.5)
    in_flight = [asyncio.create_task(backend.async_complete(_request())) for _ in range(2)]
    await _until(lambda: model_server.in_flight == 2)
    await model_server.kill()
    results = await asyncio.gather(*in_flight, return_exceptions=True)
    # The server had both requests: they fail, and are not sent again to the second server.
    assert all(isinstance(result, CannotConnect) for result in results), results
    assert not any(isinstance(result, ServerUnreachable) for result in results), results
    assert second_server.chat_requests == []
    # The next checks go to the second server without losing any.
    replies = await asyncio.gather(*(backend.async_complete(_request()) for _ in range(4)))
    assert len(replies) == 4
    assert len(second_server.chat_requests) == 4


async def test_all_servers_down_fails_at_once_then_recovers(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
) -> None:
    backend = make_failover(model_server, second_server)
    await backend.async_start()
    changes: list[int | None] = []
    backend.add_listener(lambda: changes.append(backend.active_index))
    ports = model_server.port, second_server.port
    await _stop_between_checks(model_server)
    await _stop_between_checks(second_server)
    with pytest.raises(CannotConnect):
        await backend.async_complete(_request())
    assert backend.active_index is None
    started = time.monotonic()
    with pytest.raises(CannotConnect) as caught:
        await backend.async_complete(_request())
    # Known dead: no request, no wait, and a hint of when to ask again.
    assert time.monotonic() - started < 0.2
    assert caught.value.retry_after is not None
    assert caught.value.retry_after <= PROBE_S * 4
    await second_server.start(ports[1])
    await _until(lambda: backend.active_index == 1)
    await backend.async_complete(_request())
    await model_server.start(ports[0])
    await _until(lambda: backend.active_index == 0)
    assert changes == [1, None, 1, 0]


async def test_start_needs_one_answering_server(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
) -> None:
    model_server.models = ["another-model"]
    backend = make_failover(model_server, second_server)
    await backend.async_start()
    assert backend.active_index == 1
    assert backend.model == MODEL
    await _stop_between_checks(second_server)
    lonely = make_failover(model_server, second_server)
    with pytest.raises(BackendError) as caught:
        await lonely.async_start()
    assert caught.value.reason == "model_not_found"


async def test_closed_backend_refuses_and_stops_probing(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
) -> None:
    backend = make_failover(model_server, second_server)
    await backend.async_start()
    await _stop_between_checks(model_server)
    await backend.async_complete(_request())
    await backend.async_close()
    probes = len(model_server.requests)
    await asyncio.sleep(PROBE_S * 3)
    assert len(model_server.requests) == probes
    with pytest.raises(BackendClosed):
        await backend.async_complete(_request())


async def test_the_prober_runs_in_the_task_the_owner_gives(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
) -> None:
    started: list[str] = []

    def start_task(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        started.append(name)
        return asyncio.get_running_loop().create_task(coro, name=name)

    backend = make_failover(model_server, second_server, start_task=start_task)
    await backend.async_start()
    assert started == ["miloco failover prober"]
    await _stop_between_checks(model_server)
    await backend.async_complete(_request())
    await backend.async_close()
    assert len(started) == 1


async def test_diagnostics_name_the_active_server_without_secrets(
    model_server: FakeModelServer, second_server: FakeModelServer, session: aiohttp.ClientSession
) -> None:
    model_server.api_key = second_server.api_key = "sk-failover-secret"
    backends = [
        OpenAICompatBackend(session, base_url=server.url, model=MODEL, api_key="sk-failover-secret")
        for server in (model_server, second_server)
    ]
    backend = FailoverBackend(backends)
    await backend.async_start()
    diagnostics = backend.diagnostics()
    assert diagnostics["active_index"] == 0
    assert [server["active"] for server in diagnostics["servers"]] == [True, False]
    assert "sk-failover-secret" not in str(diagnostics)
    await backend.async_close()


def _failover(
    session: aiohttp.ClientSession,
    *servers: FakeModelServer,
    keys: Sequence[str | None] | None = None,
    slots: Sequence[int] | None = None,
    timeout_s: float = 2.0,
    **kwargs: Any,
) -> FailoverBackend:
    """Return a failover backend with each server's own key (by default the one it expects now) and slots."""
    backends = [
        OpenAICompatBackend(
            session,
            base_url=server.url,
            model=MODEL,
            api_key=server.api_key if keys is None else keys[index],
            timeout_s=timeout_s,
            max_concurrency=2 if slots is None else slots[index],
        )
        for index, server in enumerate(servers)
    ]
    kwargs.setdefault("probe_interval_s", PROBE_S)
    kwargs.setdefault("max_probe_interval_s", PROBE_S * 4)
    return FailoverBackend(backends, **kwargs)


async def test_a_key_refused_at_run_time_moves_the_same_request_to_the_next_server(
    model_server: FakeModelServer, second_server: FakeModelServer, session: aiohttp.ClientSession
) -> None:
    model_server.api_key, second_server.api_key = "sk-first", "sk-second"
    backend = _failover(session, model_server, second_server)
    refusals: list[tuple[int, bool]] = []
    backend.add_auth_listener(lambda index, refused: refusals.append((index, refused)))
    await backend.async_start()
    # The first server's key is revoked: a 401 means it did no work, so the request may go on.
    model_server.api_key = "sk-rotated"
    reply = await backend.async_complete(_request())
    assert reply.text == '{"result": "yes"}'
    assert (len(model_server.chat_requests), len(second_server.chat_requests)) == (1, 1)
    assert backend.active_index == 1
    assert refusals == [(0, True)]
    first = backend.servers()[0]
    assert first.key_refused
    assert first.last_error == "invalid_auth"
    # It waits for a new key: no probe at the growing back-off of a server that is down.
    assert first.next_probe_in_s is not None
    assert first.next_probe_in_s > PROBE_S * 100
    probes = model_server.requests.count({"path": "/v1/models"})
    await asyncio.sleep(PROBE_S * 6)
    assert model_server.requests.count({"path": "/v1/models"}) == probes
    await backend.async_complete(_request())
    assert len(second_server.chat_requests) == 2
    assert refusals == [(0, True)]
    await backend.async_close()


async def test_a_key_refused_at_start_is_reported_and_not_probed_like_a_dead_server(
    model_server: FakeModelServer, second_server: FakeModelServer, session: aiohttp.ClientSession
) -> None:
    model_server.api_key = "sk-current"
    backend = _failover(session, model_server, second_server, keys=["sk-old", None])
    refusals: list[tuple[int, bool]] = []
    backend.add_auth_listener(lambda index, refused: refusals.append((index, refused)))
    await backend.async_start()
    assert backend.active_index == 1
    assert refusals == [(0, True)]
    await asyncio.sleep(PROBE_S * 8)
    # One model list at start, none since: a dead server would have been probed several times by now.
    assert model_server.requests == [{"path": "/v1/models"}]
    await backend.async_close()


async def test_a_refused_key_that_works_again_puts_the_server_back(
    model_server: FakeModelServer, second_server: FakeModelServer, session: aiohttp.ClientSession
) -> None:
    model_server.api_key = "sk-first"
    backend = _failover(session, model_server, second_server, auth_probe_interval_s=PROBE_S)
    refusals: list[tuple[int, bool]] = []
    backend.add_auth_listener(lambda index, refused: refusals.append((index, refused)))
    await backend.async_start()
    model_server.api_key = "sk-rotated"
    await backend.async_complete(_request())
    assert backend.active_index == 1
    # The server's admin restores the key: the rare probe finds it, and the user need not act.
    model_server.api_key = "sk-first"
    await _until(lambda: backend.active_index == 0)
    assert refusals == [(0, True), (0, False)]
    assert not backend.servers()[0].key_refused
    await backend.async_close()


async def test_invalid_auth_only_when_no_server_takes_its_key(
    model_server: FakeModelServer, second_server: FakeModelServer, session: aiohttp.ClientSession
) -> None:
    model_server.api_key, second_server.api_key = "sk-first", "sk-second"
    backend = _failover(session, model_server, second_server)
    await backend.async_start()
    model_server.api_key = second_server.api_key = "sk-rotated"
    with pytest.raises(InvalidAuth):
        await backend.async_complete(_request())
    assert backend.active_index is None
    # Known refused: no further request is sent, the caller hears the same at once.
    sent = len(model_server.requests), len(second_server.requests)
    with pytest.raises(InvalidAuth):
        await backend.async_complete(_request())
    assert (len(model_server.requests), len(second_server.requests)) == sent
    await backend.async_close()
    # At start, too: setup asks for new keys only when no server takes its own.
    refused = _failover(session, model_server, second_server, keys=["sk-wrong", "sk-wrong"])
    with pytest.raises(InvalidAuth):
        await refused.async_start()
    await refused.async_close()


async def test_a_server_down_and_one_refusing_its_key_is_a_connection_problem_at_start(
    model_server: FakeModelServer, second_server: FakeModelServer, session: aiohttp.ClientSession
) -> None:
    second_server.api_key = "sk-current"
    await _stop_between_checks(model_server)
    backend = _failover(session, model_server, second_server, keys=[None, "sk-old"])
    # The first server may come back: setup retries rather than asking for keys only.
    with pytest.raises(CannotConnect):
        await backend.async_start()
    await backend.async_close()


async def test_waiting_for_a_slot_is_not_a_fault_of_the_server(
    model_server: FakeModelServer, second_server: FakeModelServer, session: aiohttp.ClientSession
) -> None:
    # A 4-slot primary goes away while 4 checks are connecting: all 4 move to a 1-slot fallback, where
    # they queue. Each answer takes 0.4 s, so the last waits 1.2 s for its slot: longer than the 1 s timeout.
    backend = _failover(
        session, model_server, second_server, slots=[4, 1], timeout_s=1.0, probe_interval_s=60
    )
    await backend.async_start()
    second_server.default_reply = Reply(delay_s=0.4)
    await _stop_between_checks(model_server)
    replies = await asyncio.gather(*(backend.async_complete(_request()) for _ in range(4)))
    assert len(replies) == 4
    assert second_server.in_flight_max == 1
    assert backend.active_index == 1
    fallback = backend.servers()[1]
    assert (fallback.healthy, fallback.consecutive_failures, fallback.last_error) == (True, 0, None)
    await backend.async_close()


async def test_a_request_waiting_for_the_slot_of_a_server_that_fails_goes_to_the_next(
    model_server: FakeModelServer, second_server: FakeModelServer, session: aiohttp.ClientSession
) -> None:
    backend = _failover(
        session, model_server, second_server, slots=[1, 1], timeout_s=0.5, probe_interval_s=60
    )
    await backend.async_start()
    model_server.default_reply = hang()
    first = asyncio.create_task(backend.async_complete(_request()))
    await _until(lambda: model_server.in_flight == 1)
    # Queued behind the hanging request: it never reaches the first server, which is marked down meanwhile.
    queued = asyncio.create_task(backend.async_complete(_request()))
    with pytest.raises(BackendTimeout):
        await first
    reply = await queued
    assert reply.text == '{"result": "yes"}'
    assert (len(model_server.chat_requests), len(second_server.chat_requests)) == (1, 1)
    await backend.async_close()


async def test_close_passes_the_callers_cancellation_on(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
) -> None:
    backend = make_failover(model_server, second_server)
    await backend.async_start()
    closing = asyncio.create_task(backend.async_close())
    # Let close cancel the prober and wait for it, then cancel the caller during that wait.
    await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert closing.cancelled()
    with pytest.raises(BackendClosed):
        await backend.async_complete(_request())


async def test_a_failing_listener_ends_neither_the_request_nor_the_prober(
    model_server: FakeModelServer,
    second_server: FakeModelServer,
    make_failover: Callable[..., FailoverBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = make_failover(model_server, second_server)
    await backend.async_start()

    def broken() -> None:
        raise RuntimeError("listener bug")

    backend.add_listener(broken)
    backend.add_auth_listener(lambda index, refused: broken())
    port = model_server.port
    await _stop_between_checks(model_server)
    reply = await backend.async_complete(_request())
    assert reply.text == '{"result": "yes"}'
    assert backend.active_index == 1
    # The prober still finds the first server when it is back, though the listener fails again then.
    await model_server.start(port)
    await _until(lambda: backend.active_index == 0)
    await _stop_between_checks(model_server)
    await backend.async_complete(_request())
    await model_server.start(port)
    await _until(lambda: backend.active_index == 0)
    assert "listener bug" in caplog.text
