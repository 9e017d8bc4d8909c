"""One check: the frames resized within the budget, the question(s) asked, the replies parsed and read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
import contextlib
from dataclasses import dataclass, replace
import functools
from typing import Any, Final

from .backends.base import VisionBackend, VisionReply, VisionRequest
from .confidence import combined_probabilities, condition_probability
from .frames import FramePlan, PreparedFrame, pick_window, prepare_clip, prepare_images
from .parse import parse_reply
from .prompt import (
    ANSWER_COMPACT,
    CheckSpec,
    Observation,
    QuestionSpec,
    build_combined_request,
    build_condition_requests,
    build_images_request,
    build_question_request,
    interpret_combined,
    interpret_compact,
    interpret_conditions,
)
from .window import Frame

# Alternatives asked per generated token: "yes" and "no" are among the few likeliest wherever the answer is
# decided, and a short list keeps the reply small.
CHECK_TOP_LOGPROBS: Final = 5

# Replies up to this long are parsed on the event loop (well under a millisecond); longer ones in the executor.
INLINE_REPLY_CHARS: Final = 4096


@dataclass(frozen=True, slots=True)
class NamedImage:
    """One of several separate images (photos, several cameras' snapshots): its source's name and its bytes."""

    name: str
    jpeg: bytes


@dataclass(frozen=True, slots=True)
class SeparateImages:
    """Images that are not a clip (none, one or several): each keeps its own shape and is named to the model."""

    images: tuple[NamedImage, ...] = ()


# What a question is about: a clip of one camera (frames or raw JPEGs, oldest first), or separate images.
type Images = Sequence[Frame] | Sequence[bytes] | SeparateImages


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
    images: Images,
    *,
    plan: FramePlan,
    per_condition: bool,
    cpu_slots: asyncio.Semaphore | None = None,
) -> Answer:
    """Ask the model about images; backend, parse and frame errors propagate to the caller.

    The images say what they are: a clip of one camera (Frames or raw JPEGs, oldest first) is sized by
    `plan` as a live check's window is, and described as frames over time; SeparateImages each keep their
    own shape within the plan's budget and are named in the request. Frames prepared for `plan` when
    captured are only picked; the others are prepared here the same way. `cpu_slots` caps how many image
    jobs run at once: many cameras bursting onto a small machine would otherwise time-slice dozens of
    threads and starve the event loop.
    """
    if isinstance(images, SeparateImages) and not isinstance(spec, QuestionSpec):
        raise TypeError("a camera check asks about a clip, not separate images")
    loop = asyncio.get_running_loop()
    prepared = await _prepared(loop, images, plan, cpu_slots)
    frames = [frame.jpeg for frame in prepared]
    tokens = sum(frame.tokens for frame in prepared)
    replies: list[VisionReply] = []
    structured: dict[str, Any] | None = None
    if isinstance(spec, QuestionSpec):
        # A free question is one request whatever the prompt mode: there are no conditions to split.
        if isinstance(images, SeparateImages):
            request = build_images_request(spec, frames, [image.name for image in images.images])
        else:
            request = build_question_request(spec, frames)
        reply = await backend.async_complete(request)
        replies.append(reply)
        structured = await _parse(loop, reply, request)
        observation = Observation()
    elif per_condition:
        answers: dict[str, dict[str, Any]] = {}
        probabilities: dict[str, float] = {}
        for key, request in build_condition_requests(spec, frames):
            reply = await backend.async_complete(replace(request, logprobs=CHECK_TOP_LOGPROBS))
            replies.append(reply)
            answers[key] = await _parse(loop, reply, request)
            if (
                probability := await _off_loop_if_long(loop, reply, condition_probability, reply.tokens)
            ) is not None:
                probabilities[key] = probability
        observation = interpret_conditions(answers, spec, probabilities)
    elif spec.answer_format == ANSWER_COMPACT:
        # A compact answer has no yes/no token to read a probability from: log-probabilities would cost
        # reply bytes for nothing.
        request = build_combined_request(spec, frames)
        reply = await backend.async_complete(request)
        replies.append(reply)
        observation = interpret_compact(await _parse(loop, reply, request), spec)
    else:
        request = build_combined_request(spec, frames)
        reply = await backend.async_complete(replace(request, logprobs=CHECK_TOP_LOGPROBS))
        replies.append(reply)
        presence, rules = await _off_loop_if_long(loop, reply, combined_probabilities, reply.tokens, spec)
        observation = interpret_combined(
            await _parse(loop, reply, request), spec, presence_probability=presence, rule_probabilities=rules
        )
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
    images: Images,
    plan: FramePlan,
    cpu_slots: asyncio.Semaphore | None,
) -> list[PreparedFrame]:
    """Return the images at their sizes: a clip's frames picked when prepared at capture, else made now."""
    if isinstance(images, SeparateImages):
        if not images.images:
            return []
        jpegs = [image.jpeg for image in images.images]
        async with cpu_slots or contextlib.nullcontext():
            return await loop.run_in_executor(None, prepare_images, jpegs, plan.budget)
    if not images:
        return []
    clip = [item if isinstance(item, Frame) else Frame(0.0, item) for item in images]
    # A longer clip than planned (raw JPEGs) is planned at its own length within the same budget.
    plan = plan if len(clip) <= plan.frames else replace(plan, frames=len(clip))
    versions = [frame.prepared for frame in clip]
    if all(version is not None and version.plan == plan for version in versions):
        # Every frame prepared at capture for this plan: picking is cheap, no executor round trip.
        picked = pick_window(versions, plan.budget)
        if picked is not None:
            return picked
    jpegs = [frame.jpeg for frame in clip]
    # Decoding and resizing are CPU work: in the default executor (Home Assistant's own in HA).
    async with cpu_slots or contextlib.nullcontext():
        return await loop.run_in_executor(None, prepare_clip, jpegs, versions, plan)


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


async def _off_loop_if_long[**P, R](
    loop: asyncio.AbstractEventLoop,
    reply: VisionReply,
    read: Callable[P, R],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Return read(*args): inline for a typical reply, in the executor for a long one (a chain of thought)."""
    if len(reply.text) <= INLINE_REPLY_CHARS:
        return read(*args, **kwargs)
    return await loop.run_in_executor(None, functools.partial(read, *args, **kwargs))


def _total(counts: Iterable[int | None]) -> int | None:
    """Return the sum of token counts, or None when any is unknown."""
    total = 0
    for count in counts:
        if count is None:
            return None
        total += count
    return total
