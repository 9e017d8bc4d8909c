"""One check: the frames resized within the budget, the question(s) asked, the replies parsed and read."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
import contextlib
from dataclasses import dataclass
from typing import Any, Final

from .backends.base import VisionBackend, VisionReply, VisionRequest
from .frames import PreparedFrame, pick_window, prepare_window
from .parse import parse_reply
from .prompt import (
    CheckSpec,
    Observation,
    QuestionSpec,
    build_combined_request,
    build_condition_requests,
    build_question_request,
    interpret_combined,
    interpret_conditions,
)
from .window import Frame

# Replies up to this long are parsed on the event loop (well under a millisecond); longer ones in the executor.
INLINE_REPLY_CHARS: Final = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What one check saw and what it cost."""

    observation: Observation
    frames_sent: int
    # Image tokens of every request of the check together (the window is resent with each question).
    image_tokens: int
    requests: int
    # Model time of the check's requests together.
    latency_s: float
    # Server-reported totals over the check's requests; None when any reply lacked them.
    prompt_tokens: int | None
    completion_tokens: int | None
    # The raw reply texts, in request order (a dry run shows them), and the model that answered.
    replies: tuple[str, ...] = ()
    model: str | None = None
    # The parsed reply of a free question (QuestionSpec); None for a check.
    structured: Mapping[str, Any] | None = None


async def ask(
    backend: VisionBackend,
    spec: CheckSpec | QuestionSpec,
    window: Sequence[Frame] | Sequence[bytes],
    *,
    budget: int,
    per_condition: bool,
    cpu_slots: asyncio.Semaphore | None = None,
) -> Answer:
    """Ask the model about the frames (oldest first); backend and parse errors propagate to the caller.

    Frames prepared when captured (the watcher's) are only picked; raw JPEGs (the services', the evaluation
    toolkit's) are resized here. `cpu_slots` caps how many image jobs run at once: many cameras bursting
    onto a small machine would otherwise time-slice dozens of threads and starve the event loop.
    """
    loop = asyncio.get_running_loop()
    prepared = await _prepared(loop, window, budget, cpu_slots)
    frames = [frame.jpeg for frame in prepared]
    tokens = sum(frame.tokens for frame in prepared)
    replies: list[VisionReply] = []
    structured: dict[str, Any] | None = None
    if isinstance(spec, QuestionSpec):
        # A free question is one request whatever the prompt mode: there are no conditions to split.
        request = build_question_request(spec, frames)
        reply = await backend.async_complete(request)
        replies.append(reply)
        structured = await _parse(loop, reply, request)
        observation = Observation()
    elif per_condition:
        answers: dict[str, dict[str, Any]] = {}
        for key, request in build_condition_requests(spec, frames):
            reply = await backend.async_complete(request)
            replies.append(reply)
            answers[key] = await _parse(loop, reply, request)
        observation = interpret_conditions(answers, spec)
    else:
        request = build_combined_request(spec, frames)
        reply = await backend.async_complete(request)
        replies.append(reply)
        observation = interpret_combined(await _parse(loop, reply, request), spec)
    return Answer(
        observation=observation,
        frames_sent=len(frames),
        image_tokens=tokens * len(replies),
        requests=len(replies),
        latency_s=sum(reply.latency_s for reply in replies),
        prompt_tokens=_total(reply.usage.prompt_tokens for reply in replies),
        completion_tokens=_total(reply.usage.completion_tokens for reply in replies),
        replies=tuple(reply.text for reply in replies),
        model=replies[-1].model if replies else None,
        structured=structured,
    )


async def _prepared(
    loop: asyncio.AbstractEventLoop,
    window: Sequence[Frame] | Sequence[bytes],
    budget: int,
    cpu_slots: asyncio.Semaphore | None,
) -> list[PreparedFrame]:
    """Return the window at its planned sizes: picked when prepared at capture, else resized now."""
    frames = [item for item in window if isinstance(item, Frame)]
    if frames and len(frames) == len(window):
        picked = pick_window([frame.prepared for frame in frames], budget)
        if picked is not None:
            return picked
    jpegs = [item.jpeg if isinstance(item, Frame) else item for item in window]
    # Decoding, resizing and parsing are CPU work: in the default executor (Home Assistant's own in HA).
    async with cpu_slots or contextlib.nullcontext():
        return await loop.run_in_executor(None, prepare_window, jpegs, budget)


async def _parse(
    loop: asyncio.AbstractEventLoop, reply: VisionReply, request: VisionRequest
) -> dict[str, Any]:
    """Parse a reply against its request's schema; a long one off the event loop (replies can be 64 KiB)."""
    schema = request.json_schema
    if schema is None:
        raise TypeError("perception requests always carry their JSON schema")
    if len(reply.text) <= INLINE_REPLY_CHARS:
        # A typical answer: parsing it takes far less than a round trip through a busy executor.
        return parse_reply(reply.text, schema)
    return await loop.run_in_executor(None, parse_reply, reply.text, schema)


def _total(counts: Iterable[int | None]) -> int | None:
    """Return the sum of token counts, or None when any is unknown."""
    total = 0
    for count in counts:
        if count is None:
            return None
        total += count
    return total
