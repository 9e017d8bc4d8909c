"""The embedded backend sends separate images each after its name, through the real llama.cpp chat handler."""

from __future__ import annotations

from dataclasses import replace
import json

from custom_components.miloco.engine.backends.llama_cpp import LlamaCppBackend
from custom_components.miloco.engine.parse import yes_no_schema
from custom_components.miloco.engine.prompt import QuestionSpec, build_images_request

from .test_llama_cpp_backend import backend, jpeg_frame

__all__ = ["backend"]


async def test_named_separate_images_are_answered(backend: LlamaCppBackend) -> None:
    # A yes/no answer: the tiny test model rambles to its token limit on a free-text one.
    spec = QuestionSpec(question="Is the blob further right in image 2?", json_schema=yes_no_schema())
    request = build_images_request(spec, [jpeg_frame(0), jpeg_frame(4)], ["left.jpg", "right.jpg"])
    reply = await backend.async_complete(request)
    # The tiny model's words mean nothing; that it took text between the images and answered in the schema does.
    assert json.loads(reply.text)["result"] in {"yes", "no"}
    assert backend.stats.failures == 0


async def test_a_free_text_question_is_answered_not_crashed_on(backend: LlamaCppBackend) -> None:
    # The free answer's maxLength (2,000) made llama.cpp fail to parse the grammar and crash the process.
    spec = QuestionSpec(question="What do the images show?")
    request = build_images_request(spec, [jpeg_frame(0), jpeg_frame(4)], ["left.jpg", "right.jpg"])
    reply = await backend.async_complete(replace(request, max_tokens=48))
    assert reply.text
    assert backend.stats.failures == 0
