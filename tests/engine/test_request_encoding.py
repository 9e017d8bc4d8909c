"""The OpenAI-compatible backend's request bodies: labels before images, and large bodies encoded off the loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import aiohttp
import pytest

from custom_components.miloco.engine.backends.base import VisionRequest
from custom_components.miloco.engine.backends.openai_compat import OpenAICompatBackend
from custom_components.miloco.engine.parse import yes_no_schema

from ..model_server import FakeModelServer

JPEG = b"\xff\xd8\xff\xe0fake-jpeg-bytes\xff\xd9"


class RecordingExecutor(ThreadPoolExecutor):
    """The loop's default executor, noting the name of every job handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.jobs: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.jobs.append(getattr(fn, "__name__", repr(fn)))
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
async def executor() -> AsyncGenerator[RecordingExecutor]:
    recorder = RecordingExecutor()
    loop = asyncio.get_running_loop()
    # Through the loop's class: Home Assistant's runner wraps the loop's own method in a usage warning.
    type(loop).set_default_executor(loop, recorder)
    yield recorder


@pytest.fixture
async def backend(model_server: FakeModelServer) -> AsyncGenerator[OpenAICompatBackend]:
    async with aiohttp.ClientSession() as session:
        yield OpenAICompatBackend(
            session, base_url=model_server.url, model="mimo-vl-miloco-7b", timeout_s=5.0
        )


def _request(question: str, labels: tuple[str, ...] = ()) -> VisionRequest:
    return VisionRequest(
        system_prompt="You are a camera assistant.",
        frames=(JPEG, JPEG + b"2"),
        frame_labels=labels,
        question=question,
        json_schema=yes_no_schema(),
        max_tokens=32,
    )


async def test_a_small_request_is_encoded_inline(
    backend: OpenAICompatBackend, executor: RecordingExecutor, model_server: FakeModelServer
) -> None:
    await backend.async_complete(_request("Is someone waving?"))
    assert "_encode_payload" not in executor.jobs
    assert len(model_server.chat_requests) == 1


async def test_megabytes_of_text_are_encoded_off_the_event_loop(
    backend: OpenAICompatBackend, executor: RecordingExecutor, model_server: FakeModelServer
) -> None:
    # Small frames, huge text: the body is large although the images are not.
    question = "Describe this. " * 200_000
    await backend.async_complete(_request(question))
    assert "_encode_payload" in executor.jobs
    (body,) = model_server.chat_requests
    assert body["messages"][1]["content"][-1]["text"].startswith(question)


async def test_each_label_comes_before_its_image(
    backend: OpenAICompatBackend, model_server: FakeModelServer
) -> None:
    await backend.async_complete(_request("Which?", labels=("Image 1: a.jpg", "Image 2: b.jpg")))
    (body,) = model_server.chat_requests
    parts = body["messages"][1]["content"]
    assert [part.get("text", part["type"]) for part in parts] == [
        "Image 1: a.jpg",
        "image_url",
        "Image 2: b.jpg",
        "image_url",
        "Which?/no_think",
    ]
    assert parts[3]["image_url"]["url"].endswith("Mg==")
