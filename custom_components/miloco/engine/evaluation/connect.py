"""Open the backend an evaluation runs on: a remote OpenAI-compatible server or an embedded GGUF pair."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ..backends.base import VisionBackend
from ..backends.errors import BackendError
from ..backends.llama_cpp import LlamaCppBackend
from ..backends.openai_compat import OpenAICompatBackend, normalize_base_url, redact_url
from ..gguf import GgufError, check_model_pair
from .errors import EvaluationError


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteOptions:
    """A server speaking OpenAI chat completions; without a model name, the first one it lists."""

    url: str
    model: str | None
    api_key: str | None
    timeout_s: float
    retries: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddedOptions:
    """A GGUF model and its vision projector, run in this process by llama-cpp-python."""

    model_path: Path
    mmproj_path: Path
    threads: int | None
    context: int
    timeout_s: float


type BackendOptions = RemoteOptions | EmbeddedOptions


def check_options(options: BackendOptions) -> None:
    """Raise EvaluationError for a malformed URL or unusable model files, before anything is started."""
    if isinstance(options, RemoteOptions):
        try:
            normalize_base_url(options.url)
        except ValueError as err:
            raise EvaluationError(f"--url {options.url!r}: {err}") from None
        return
    for path, flag in ((options.model_path, "--model-path"), (options.mmproj_path, "--mmproj-path")):
        if not path.is_file():
            raise EvaluationError(f"{flag} {path}: no such file")
    try:
        check_model_pair(options.model_path, options.mmproj_path)
    except (GgufError, OSError) as err:
        raise EvaluationError(f"{options.model_path.name} + {options.mmproj_path.name}: {err}") from None


@contextlib.asynccontextmanager
async def open_backend(options: BackendOptions) -> AsyncIterator[tuple[VisionBackend, dict[str, Any]]]:
    """Yield a started backend and secret-free facts about it for the report; close it afterwards."""
    if isinstance(options, RemoteOptions):
        async with _open_remote(options) as opened:
            yield opened
    else:
        async with _open_embedded(options) as opened:
            yield opened


@contextlib.asynccontextmanager
async def _open_remote(options: RemoteOptions) -> AsyncIterator[tuple[VisionBackend, dict[str, Any]]]:
    """Yield a client for the server, after checking that it answers and choosing the model."""
    check_options(options)
    base_url = normalize_base_url(options.url)
    shown = redact_url(base_url)
    # The threaded resolver is the system's own getaddrinfo: aiohttp picks aiodns when it is installed,
    # and an aiodns that does not match its pycares fails every lookup (it does in HA 2025.4's venv).
    connector = aiohttp.TCPConnector(resolver=aiohttp.ThreadedResolver())
    async with aiohttp.ClientSession(connector=connector) as session:

        def client(model: str) -> OpenAICompatBackend:
            return OpenAICompatBackend(
                session,
                base_url=base_url,
                model=model,
                api_key=options.api_key,
                timeout_s=options.timeout_s,
                max_retries=options.retries,
            )

        try:
            models = await client(options.model or "").async_list_models()
        except BackendError as err:
            raise EvaluationError(f"cannot use the server at {shown}: {err}") from None
        model = options.model or (models[0] if models else None)
        if model is None:
            raise EvaluationError(f"the server at {shown} lists no model: name one with --model")
        backend = client(model)
        try:
            yield backend, {"kind": "remote", "model": model, "url": shown}
        finally:
            await backend.async_close()


@contextlib.asynccontextmanager
async def _open_embedded(options: EmbeddedOptions) -> AsyncIterator[tuple[VisionBackend, dict[str, Any]]]:
    """Yield the loaded model, after checking the files (a few malformed ones crash llama.cpp instead)."""
    await asyncio.to_thread(check_options, options)
    backend = LlamaCppBackend(
        options.model_path,
        options.mmproj_path,
        n_threads=options.threads,
        n_ctx=options.context,
        timeout_s=options.timeout_s,
    )
    try:
        try:
            await backend.async_start()
        except BackendError as err:
            raise EvaluationError(f"cannot load {options.model_path.name}: {err}") from None
        facts = {
            "kind": "embedded",
            "model": backend.model,
            "model_file": options.model_path.name,
            "mmproj_file": options.mmproj_path.name,
            "context": options.context,
        }
        yield backend, facts
    finally:
        await backend.async_close()
