"""Combined request versus one request per condition, through the tiny real model on llama.cpp's server.

llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`, from the venv that
MILOCO_LLAMA_SERVER_PYTHON names) serves tests/fixtures/models' random-weight Qwen2.5-VL pair. The same six
frames (a gesture scene, prepared as the integration prepares them at medium detail) are asked about R
rules, once in ONE combined request and once in R per-condition requests (the integration's two prompt
modes, built by its own engine and sent by its own client). Each is run against a server started with
`--cache True` (llama-cpp-python 0.3.36's prompt cache: a RAM cache of model states keyed by prompt
tokens) and one without. Figures: prompt tokens, completion tokens and wall time, per check.

Random weights make the answers meaningless and their lengths arbitrary (the JSON grammar bounds them),
so the prompt side (prompt tokens, time to first token) is the meaningful comparison here; the wall time
includes generation and is reported as measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
import time
from typing import Any

import aiohttp

from benchmarks.llama_server_bench import async_bench, rule_spec
from benchmarks.scenes import Scene
from custom_components.miloco.engine.backends.openai_compat import OpenAICompatBackend
from custom_components.miloco.engine.frames import DETAIL_BUDGETS, PreparedFrame, prepare_window
from custom_components.miloco.engine.prompt import build_combined_request, build_condition_requests
from testkit.llama_server import (
    ALIAS,
    FIXTURES,
    MMPROJ,
    MODEL,
    PYTHON_VARIABLE,
    LlamaServer,
    python_server_command,
)
from testkit.ports import free_port


class _Server(LlamaServer):
    """llama-cpp-python's server with the tiny model, with or without its prompt cache."""

    kind = "python"

    def __init__(self, python: str, log_path: Path, *, cache: bool) -> None:
        super().__init__(free_port(), log_path)
        self.python = python
        self.cache = cache

    def command(self) -> list[str]:
        """Return the server's command line: a larger context and two threads, the prompt cache as asked."""
        extra = ("--cache", "True") if self.cache else ()
        return python_server_command(self.python, self.port, n_ctx=8192, threads="2", extra=extra)


def _window(scene: Scene) -> list[PreparedFrame]:
    """Return six frames of a gesture episode (3 s at 2 fps), prepared at medium detail."""
    jpegs = [scene.frame(slot).jpeg for slot in range(0, 12, 2)]
    return prepare_window(jpegs, DETAIL_BUDGETS["medium"])


def server_python() -> str | None:
    """Return the interpreter of llama.cpp's server venv, if one is known and exists."""
    python = os.environ.get(PYTHON_VARIABLE)
    return python if python and Path(python).exists() else None


async def _measure(
    backend: OpenAICompatBackend, frames: list[bytes], rules: int, mode: str
) -> dict[str, Any]:
    """Run one check in `mode` (combined or per_condition); return its tokens and wall time."""
    spec = rule_spec(rules)
    if mode == "combined":
        requests = [build_combined_request(spec, frames)]
    else:
        requests = [request for _key, request in build_condition_requests(spec, frames)]
    prompt = completion = 0
    started = time.monotonic()
    for request in requests:
        reply = await backend.async_complete(request)
        prompt += reply.usage.prompt_tokens or 0
        completion += reply.usage.completion_tokens or 0
    return {
        "requests": len(requests),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "wall_s": round(time.monotonic() - started, 3),
    }


async def async_compare(
    scene: Scene, rule_counts: tuple[int, ...], log_dir: Path, *, repeats: int = 2
) -> dict[str, Any]:
    """Return the Python server's comparison and, under "cpp", the C++ llama-server's section."""
    result = await _async_compare_python(scene, rule_counts, log_dir, repeats=repeats)
    result["cpp"] = await async_bench(rule_counts, log_dir)
    return result


async def _async_compare_python(
    scene: Scene, rule_counts: tuple[int, ...], log_dir: Path, *, repeats: int
) -> dict[str, Any]:
    """Return the Python server's comparison, or a 'skipped' record when no server venv is available."""
    python = server_python()
    if python is None:
        return {"skipped": f"{PYTHON_VARIABLE} is not set to llama.cpp's server venv (scripts/bench sets it)"}
    if not MODEL.exists() or not MMPROJ.exists():
        return {"skipped": f"the tiny model pair is missing from {FIXTURES}"}
    prepared = await asyncio.get_running_loop().run_in_executor(None, _window, scene)
    frames = [frame.jpeg for frame in prepared]
    results: list[dict[str, Any]] = []
    for cache in (True, False):
        server = _Server(python, log_dir / f"llama-server-cache-{cache}.log", cache=cache)
        await asyncio.get_running_loop().run_in_executor(None, server.start)
        try:
            async with aiohttp.ClientSession() as session:
                backend = OpenAICompatBackend(session, base_url=server.url, model=ALIAS, timeout_s=300)
                # Warm up: the first request loads the projector and settles the response format.
                await _measure(backend, frames, 1, "combined")
                # Repeats go round the cells, so that a moment of contention does not hit one cell only.
                runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
                for _ in range(repeats):
                    for rules in rule_counts:
                        for mode in ("combined", "per_condition"):
                            runs.setdefault((rules, mode), []).append(
                                await _measure(backend, frames, rules, mode)
                            )
                for (rules, mode), cell in runs.items():
                    best = min(cell, key=lambda run: run["wall_s"])
                    results.append({"cache": cache, "rules": rules, "mode": mode, **best})
        finally:
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(None, server.stop)
    return {
        "server": "llama-cpp-python 0.3.36 (python -m llama_cpp.server), tiny random-weight Qwen2.5-VL",
        "frames": [[frame.width, frame.height] for frame in prepared],
        "image_tokens_planned": sum(frame.tokens for frame in prepared),
        "repeats": repeats,
        "results": results,
    }
