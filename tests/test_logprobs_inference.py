"""Token log-probabilities read as P(yes) per condition: real inference with the tiny model, and a scripted server.

Real inference runs the embedded backend (llama-cpp-python in-process) and both of llama.cpp's servers (the
`llama_server` fixture: llama-cpp-python's `llama_cpp.server` and the C++ `llama-server`, the latter only where
it can be installed). The tiny model has random weights: its answers are arbitrary, but each probability must be
one (within [0, 1]) and agree with the answer the model wrote (P(yes) > 0.5 exactly when it wrote "yes").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
import dataclasses

import aiohttp
import pytest

from custom_components.miloco.engine.backends.base import VisionBackend, VisionReply, VisionRequest
from custom_components.miloco.engine.backends.errors import RequestRejected
from custom_components.miloco.engine.backends.llama_cpp import LlamaCppBackend
from custom_components.miloco.engine.backends.openai_compat import OpenAICompatBackend
from custom_components.miloco.engine.confidence import (
    combined_probabilities,
    condition_probability,
    yes_probabilities,
)
from custom_components.miloco.engine.parse import is_yes, parse_reply, yes_no_schema
from custom_components.miloco.engine.prompt import (
    CheckSpec,
    RuleSpec,
    build_combined_request,
    build_condition_requests,
    interpret_combined,
)
from testkit.llama_server import ALIAS, MMPROJ, MODEL, LlamaServer

from .model_server import FakeModelServer, Reply, error, token_logprobs, yes_no_logprobs
from .scenes import waving_hand

SPEC = CheckSpec(
    presence=True,
    rules=(RuleSpec("door", "the front door is open"), RuleSpec("cat", "a cat sleeps on the sofa")),
)
TOP = 5


def frames(count: int = 2) -> list[bytes]:
    """Return a short clip of real JPEG frames (a hand waving in a room)."""
    scene = waving_hand()
    return [scene() for _ in range(count)]


@pytest.fixture
async def session() -> AsyncGenerator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def with_logprobs(request: VisionRequest, top: int = TOP) -> VisionRequest:
    """Return the request asking for log-probabilities with `top` alternatives per token."""
    return dataclasses.replace(request, logprobs=top)


def assert_agrees(probability: float | None, said_yes: bool, where: str) -> None:
    """Assert that a probability exists, is one, and sides with the answer the model wrote."""
    assert probability is not None, f"{where}: no probability"
    assert 0.0 <= probability <= 1.0, f"{where}: {probability}"
    assert (probability > 0.5) == said_yes, f"{where}: P(yes) {probability} but the model said yes={said_yes}"


def assert_tokens_spell_reply(reply: VisionReply) -> None:
    """Assert that the reply came with tokens, and that they spell its text (the C++ server trims the content)."""
    assert reply.tokens is not None
    assert "".join(token.text for token in reply.tokens).strip() == reply.text.strip()


async def check_combined(backend: VisionBackend) -> None:
    """Ask one combined check with log-probabilities; every answer gets a probability that agrees with it."""
    request = build_combined_request(SPEC, frames())
    reply = await backend.async_complete(with_logprobs(request))
    assert_tokens_spell_reply(reply)
    assert request.json_schema is not None
    observation = interpret_combined(parse_reply(reply.text, request.json_schema), SPEC)
    presence, rules = combined_probabilities(reply.tokens, SPEC)
    assert observation.person_present is not None
    assert_agrees(presence, observation.person_present, "person_present")
    assert set(rules) == set(observation.rules) == {"door", "cat"}
    for rule_id, holds in observation.rules.items():
        assert_agrees(rules[rule_id], holds, f"rule {rule_id}")


async def check_per_condition(backend: VisionBackend) -> None:
    """Ask each condition on its own with log-probabilities; each answer's probability agrees with it."""
    for key, request in build_condition_requests(SPEC, frames()):
        reply = await backend.async_complete(with_logprobs(request))
        assert_tokens_spell_reply(reply)
        said_yes = is_yes(parse_reply(reply.text, yes_no_schema())["result"])
        assert_agrees(condition_probability(reply.tokens), said_yes, key)


# --- real inference -------------------------------------------------------------------------------------


@pytest.fixture
async def embedded() -> AsyncGenerator[LlamaCppBackend]:
    backend = LlamaCppBackend(MODEL, MMPROJ, n_threads=1, n_ctx=4096, timeout_s=120, logprobs=True)
    await backend.async_start()
    yield backend
    await backend.async_close()


async def test_embedded_backend_gives_a_probability_per_condition(embedded: LlamaCppBackend) -> None:
    assert embedded.logprobs_support == "accepted"
    await check_combined(embedded)
    await check_per_condition(embedded)


async def test_embedded_backend_loaded_without_logprobs_answers_without_tokens() -> None:
    # Log-probabilities cost memory and time in llama-cpp-python: a backend not loaded for them answers as before.
    backend = LlamaCppBackend(MODEL, MMPROJ, n_threads=1, n_ctx=4096, timeout_s=120)
    await backend.async_start()
    try:
        (_, request), *_ = build_condition_requests(SPEC, frames())
        reply = await backend.async_complete(with_logprobs(request))
    finally:
        await backend.async_close()
    assert reply.tokens is None
    assert parse_reply(reply.text, yes_no_schema())["result"] in ("yes", "no")
    assert backend.logprobs_support == "refused"


async def test_llama_servers_give_a_probability_per_condition(
    session: aiohttp.ClientSession, llama_server: LlamaServer
) -> None:
    backend = OpenAICompatBackend(session, base_url=llama_server.url, model=ALIAS, timeout_s=120)
    await backend.async_start()
    await check_combined(backend)
    await check_per_condition(backend)
    assert backend.logprobs_support == "accepted"


# --- a scripted server ----------------------------------------------------------------------------------


def remote(session: aiohttp.ClientSession, server: FakeModelServer) -> OpenAICompatBackend:
    return OpenAICompatBackend(session, base_url=server.url, model="mimo-vl-miloco-7b", timeout_s=10)


async def test_scripted_probabilities_come_back_exactly(
    session: aiohttp.ClientSession, model_server: FakeModelServer
) -> None:
    backend = remote(session, model_server)
    model_server.script(yes_no_logprobs({"result": 0.7}), yes_no_logprobs({"result": 0.9}))
    (_, request), *_ = build_condition_requests(SPEC, frames())
    for expected in (0.7, 0.9):
        reply = await backend.async_complete(with_logprobs(request))
        assert reply.text == '{"result": "yes"}'
        assert condition_probability(reply.tokens) == pytest.approx(expected, abs=1e-6)
    # Asked as OpenAI documents it.
    assert all(
        body["logprobs"] is True and body["top_logprobs"] == TOP for body in model_server.chat_requests
    )
    assert backend.logprobs_support == "accepted"


async def test_scripted_combined_probabilities(
    session: aiohttp.ClientSession, model_server: FakeModelServer
) -> None:
    backend = remote(session, model_server)
    model_server.script(yes_no_logprobs({"person_present": 0.3, "rules.r1": 0.7, "rules.r2": 0.9}))
    request = build_combined_request(SPEC, frames())
    reply = await backend.async_complete(with_logprobs(request))
    presence, rules = combined_probabilities(reply.tokens, SPEC)
    assert presence == pytest.approx(0.3, abs=1e-6)
    assert rules == {"door": pytest.approx(0.7, abs=1e-6), "cat": pytest.approx(0.9, abs=1e-6)}
    assert request.json_schema is not None
    assert parse_reply(reply.text, request.json_schema) == {
        "person_present": "no",
        "rules": {"r1": "yes", "r2": "yes"},
    }


async def test_server_without_logprobs_answers_as_today(
    session: aiohttp.ClientSession, model_server: FakeModelServer
) -> None:
    backend = remote(session, model_server)
    # A server that ignores the parameters (no logprobs block), then one whose block is not the documented shape.
    model_server.script(Reply(), Reply(logprobs={"content": [{"token": "{", "logprob": "high"}]}))
    (_, request), *_ = build_condition_requests(SPEC, frames())
    for _ in range(2):
        reply = await backend.async_complete(with_logprobs(request))
        assert reply.text == '{"result": "yes"}'
        assert reply.tokens is None
        assert yes_probabilities(reply.tokens) == {}


async def test_server_refusing_logprobs_is_asked_without_them_from_then_on(
    session: aiohttp.ClientSession, model_server: FakeModelServer
) -> None:
    backend = remote(session, model_server)
    model_server.refuse_logprobs = True
    (_, request), *_ = build_condition_requests(SPEC, frames())
    first = await backend.async_complete(with_logprobs(request))
    second = await backend.async_complete(with_logprobs(request))
    assert first.text == second.text == '{"result": "yes"}'
    assert first.tokens is None and second.tokens is None
    # Refused once, retried at once without them; the next request no longer asks.
    assert ["logprobs" in body for body in model_server.chat_requests] == [True, False, False]
    assert backend.logprobs_support == "refused"
    assert backend.stats.failures == 0


async def test_refused_logprobs_are_asked_again_later(
    session: aiohttp.ClientSession, model_server: FakeModelServer
) -> None:
    # The refusal may have been passing (a router that sent one request elsewhere): after a while, ask again.
    backend = OpenAICompatBackend(
        session, base_url=model_server.url, model="mimo-vl-miloco-7b", timeout_s=10, format_retry_s=0.5
    )
    model_server.refuse_logprobs = True
    (_, request), *_ = build_condition_requests(SPEC, frames())
    await backend.async_complete(with_logprobs(request))
    await backend.async_complete(with_logprobs(request))
    assert ["logprobs" in body for body in model_server.chat_requests] == [True, False, False]
    await asyncio.sleep(0.6)
    # Still refused: retried once without, and the next trial waits twice as long (1 s).
    await backend.async_complete(with_logprobs(request))
    await asyncio.sleep(0.3)
    await backend.async_complete(with_logprobs(request))
    assert ["logprobs" in body for body in model_server.chat_requests][3:] == [True, False, False]
    await asyncio.sleep(0.8)
    model_server.refuse_logprobs = False
    model_server.script(yes_no_logprobs({"result": 0.9}))
    reply = await backend.async_complete(with_logprobs(request))
    assert condition_probability(reply.tokens) == pytest.approx(0.9, abs=1e-6)
    assert backend.logprobs_support == "accepted"


async def test_refusal_of_logprobs_not_asked_is_a_plain_rejection(
    session: aiohttp.ClientSession, model_server: FakeModelServer
) -> None:
    # A 400 that happens to name logprobs, to a request that did not ask for them, fails as any 400 does.
    backend = remote(session, model_server)
    model_server.script(error(400, "top_logprobs must be between 0 and 20"))
    (_, request), *_ = build_condition_requests(SPEC, frames())
    with pytest.raises(RequestRejected, match=r"refused the request \(HTTP 400\): top_logprobs") as caught:
        await backend.async_complete(request)
    assert caught.value.reason == "server_error"
    assert ["logprobs" in body for body in model_server.chat_requests] == [False]


async def test_requests_not_asking_send_no_logprobs_parameters(
    session: aiohttp.ClientSession, model_server: FakeModelServer
) -> None:
    backend = remote(session, model_server)
    model_server.script(Reply(logprobs=token_logprobs(('{"result": "yes"}', 0.9, {}))))
    (_, request), *_ = build_condition_requests(SPEC, frames())
    reply = await backend.async_complete(request)
    (body,) = model_server.chat_requests
    assert "logprobs" not in body and "top_logprobs" not in body
    assert reply.tokens is None
    assert backend.logprobs_support == "untried"
