"""The embedded llama-cpp-python backend, run for real on the tiny random-weight Qwen2.5-VL pair."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
import contextlib
import gc
import io
import json
import logging
from pathlib import Path
import sys
import threading
import time
from types import MappingProxyType
from typing import Any

from PIL import Image, ImageDraw
import pytest

from custom_components.miloco.engine.backends.base import VisionRequest
from custom_components.miloco.engine.backends.errors import (
    BackendClosed,
    BackendTimeout,
    ModelLoadError,
    RuntimeCrashed,
    RuntimeMissing,
    ServerError,
)
from custom_components.miloco.engine.backends.llama_cpp import (
    _RUNTIME_LOCK,
    THREAD_NAME_PREFIX,
    LlamaCppBackend,
    async_probe_runtime,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
MODEL = FIXTURES / "tiny-qwen25vl.gguf"
MMPROJ = FIXTURES / "tiny-qwen25vl-mmproj.gguf"

GESTURES = ["thumbs_up", "v_sign", "open_palm", "ok", "shaka", "wave"]
ACTIVITIES = ["watch_tv", "reading", "phone", "esports", "workout"]
# Read-only mappings on purpose: the backend must hand llama-cpp-python plain dicts.
PERCEPTION_SCHEMA: Mapping[str, Any] = MappingProxyType(
    {
        "type": "object",
        "properties": {
            "gestures": {"type": "array", "items": {"type": "string", "enum": GESTURES}},
            "activities": {"type": "array", "items": {"type": "string", "enum": ACTIVITIES}},
            "person_present": {"type": "boolean"},
            "rules": {
                "type": "object",
                "properties": {"r1": {"type": "boolean"}, "r2": {"type": "boolean"}},
                "required": ["r1", "r2"],
                "additionalProperties": False,
            },
        },
        "required": ["gestures", "activities", "person_present", "rules"],
        "additionalProperties": False,
    }
)


def conforms(value: Any, schema: Mapping[str, Any]) -> bool:
    """Return whether value matches the small JSON-schema subset used here."""
    if "enum" in schema and value not in schema["enum"]:
        return False
    kind = schema.get("type")
    if kind == "object":
        return isinstance(value, dict) and object_conforms(value, schema)
    if kind == "array":
        return isinstance(value, list) and all(conforms(item, schema.get("items", {})) for item in value)
    return kind is None or isinstance(value, {"string": str, "boolean": bool}[kind])


def object_conforms(value: dict[str, Any], schema: Mapping[str, Any]) -> bool:
    props: Mapping[str, Any] = schema.get("properties", {})
    if any(key not in value for key in schema.get("required", [])):
        return False
    if schema.get("additionalProperties") is False and set(value) - set(props):
        return False
    return all(conforms(value[key], sub) for key, sub in props.items() if key in value)


def jpeg_frame(index: int, size: int = 448) -> bytes:
    """Return a JPEG of a skin-coloured blob moving right across a dark room."""
    image = Image.new("RGB", (size, size), (40, 60, 80))
    draw = ImageDraw.Draw(image)
    x = 40 + 50 * index
    draw.ellipse((x, 150, x + 110, 260), fill=(220, 180, 140))
    draw.rectangle((0, 360, size, size), fill=(90, 70, 50))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def perception_request(
    *, max_tokens: int = 128, schema: Mapping[str, Any] | None = PERCEPTION_SCHEMA
) -> VisionRequest:
    return VisionRequest(
        system_prompt="You are a smart camera assistant. The frames are 0.5 s apart, 6 frames in total.",
        frames=[jpeg_frame(i) for i in range(6)],
        lead_in="Image sequence is as follows:",
        question="Report gestures, activities, presence and rules as JSON.",
        json_schema=schema,
        max_tokens=max_tokens,
    )


def llama_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME_PREFIX)]


@pytest.fixture
async def backend() -> AsyncIterator[LlamaCppBackend]:
    backend = LlamaCppBackend(MODEL, MMPROJ, n_threads=2, n_ctx=4096, timeout_s=60)
    await backend.async_start()
    yield backend
    await backend.async_close()
    assert not llama_threads()


async def test_answers_six_frames_under_a_schema(backend: LlamaCppBackend) -> None:
    reply = await backend.async_complete(perception_request())
    answer = json.loads(reply.text)
    assert conforms(answer, PERCEPTION_SCHEMA), answer
    assert reply.model == "tiny-qwen25vl"
    assert reply.latency_s > 0
    assert reply.usage.completion_tokens
    assert backend.stats.requests == 1
    assert backend.stats.failures == 0
    assert backend.stats.last_latency_s == reply.latency_s


async def test_answers_are_deterministic(backend: LlamaCppBackend) -> None:
    first = await backend.async_complete(perception_request())
    second = await backend.async_complete(perception_request())
    assert first.text == second.text


async def test_free_text_without_schema(backend: LlamaCppBackend) -> None:
    reply = await backend.async_complete(perception_request(schema=None, max_tokens=16))
    assert isinstance(reply.text, str)


async def test_event_loop_stays_responsive(backend: LlamaCppBackend) -> None:
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            started = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - started - 0.01)

    task = asyncio.create_task(ticker())
    try:
        await backend.async_complete(perception_request())
    finally:
        done.set()
        await task
    assert len(lags) > 5
    assert max(lags) < 0.25, max(lags)


async def test_timeout_returns_at_once_and_the_backend_recovers(
    backend: LlamaCppBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncio")
    backend.timeout_s = 0.001
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        await backend.async_complete(perception_request(max_tokens=4096))
    assert time.monotonic() - started < 0.5
    assert backend.stats.failures == 1
    assert backend.stats.last_error == "timeout"

    backend.timeout_s = 60
    reply = await backend.async_complete(perception_request())
    assert conforms(json.loads(reply.text), PERCEPTION_SCHEMA)
    gc.collect()
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


@contextlib.contextmanager
def runtime_busy_for(seconds: float) -> Iterator[None]:
    """Keep llama.cpp busy for `seconds` on another thread, as another request (or backend) would."""
    held = threading.Event()

    def hold() -> None:
        with _RUNTIME_LOCK:
            held.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    try:
        yield
    finally:
        thread.join()


async def test_waiting_for_the_runtime_is_not_counted_against_the_timeout(backend: LlamaCppBackend) -> None:
    small = VisionRequest(system_prompt="s", frames=[jpeg_frame(0)], question="q", max_tokens=8)
    started = time.monotonic()
    await backend.async_complete(small)
    # Room for one request many times over (a loaded machine slows one down), but less than the wait ahead
    # of it plus the request.
    backend.timeout_s = 6 * (time.monotonic() - started) + 2
    with runtime_busy_for(backend.timeout_s + 0.5):
        reply = await backend.async_complete(small)
    assert isinstance(reply.text, str)
    assert backend.stats.failures == 0


async def test_a_runtime_that_stays_busy_ends_the_wait(
    backend: LlamaCppBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncio")
    small = VisionRequest(system_prompt="s", frames=[jpeg_frame(0)], question="q", max_tokens=8)
    backend.timeout_s = 0.3
    with runtime_busy_for(1.5):
        started = time.monotonic()
        with pytest.raises(BackendTimeout):
            await backend.async_complete(small)
        # A timeout for the request ahead of it and one for itself, then the caller is told, not left hanging.
        assert time.monotonic() - started < 1.4
    backend.timeout_s = 60
    assert isinstance((await backend.async_complete(small)).text, str)
    gc.collect()
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_runs_on_one_named_worker_thread(backend: LlamaCppBackend) -> None:
    await backend.async_complete(perception_request())
    assert len(llama_threads()) == 1


async def test_close_frees_the_model_and_the_thread() -> None:
    backend = LlamaCppBackend(MODEL, MMPROJ, n_threads=None, n_ctx=4096, timeout_s=60)
    await backend.async_start()
    assert backend.diagnostics()["loaded"] is True
    assert len(llama_threads()) == 1
    await backend.async_close()
    assert backend.diagnostics()["loaded"] is False
    assert not llama_threads()
    with pytest.raises(BackendClosed):
        await backend.async_complete(perception_request())
    with pytest.raises(BackendClosed):
        await backend.async_start()
    await backend.async_close()  # idempotent


async def test_close_while_a_request_runs() -> None:
    backend = LlamaCppBackend(MODEL, MMPROJ, n_threads=None, n_ctx=4096, timeout_s=60)
    await backend.async_start()
    request = asyncio.create_task(backend.async_complete(perception_request(max_tokens=4096)))
    await asyncio.sleep(0.05)
    await backend.async_close()
    # Either it finished before the close or it was stopped; it never hangs.
    with contextlib.suppress(BackendTimeout, BackendClosed):
        await request
    assert not llama_threads()


async def test_diagnostics_show_file_names_only(backend: LlamaCppBackend) -> None:
    diag = backend.diagnostics()
    assert diag["model_file"] == "tiny-qwen25vl.gguf"
    assert diag["mmproj_file"] == "tiny-qwen25vl-mmproj.gguf"
    assert diag["n_ctx"] == 4096
    assert diag["threads"] == 2
    assert diag["loaded"] is True
    assert diag["stats"]["requests"] == 0
    assert str(FIXTURES) not in json.dumps(diag)


async def test_prompt_larger_than_the_context() -> None:
    # Six 448-px frames cost 6 x 256 image tokens: more than a 1024-token context holds.
    backend = LlamaCppBackend(MODEL, MMPROJ, n_threads=None, n_ctx=1024, timeout_s=60)
    await backend.async_start()
    try:
        with pytest.raises(ServerError, match="do not fit the context size"):
            await backend.async_complete(perception_request())
        assert backend.stats.last_error == "server_error"
        small = VisionRequest(system_prompt="s", frames=[jpeg_frame(0)], question="q", max_tokens=8)
        assert isinstance((await backend.async_complete(small)).text, str)
    finally:
        await backend.async_close()


async def test_complete_before_start() -> None:
    backend = LlamaCppBackend(MODEL, MMPROJ, n_threads=None, n_ctx=4096, timeout_s=60)
    with pytest.raises(ModelLoadError):
        await backend.async_complete(perception_request())
    await backend.async_close()


# Files that cannot load fail with ModelLoadError (missing files included) and never crash the process.


async def start_fails(model: Path, mmproj: Path) -> ModelLoadError:
    backend = LlamaCppBackend(model, mmproj, n_threads=None, n_ctx=4096, timeout_s=60)
    try:
        with pytest.raises(ModelLoadError) as caught:
            await backend.async_start()
    finally:
        await backend.async_close()
    assert not backend.loaded
    assert not llama_threads()
    assert backend.stats.last_error == "load_failed"
    return caught.value


async def test_truncated_model(tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(MODEL.read_bytes()[: MODEL.stat().st_size // 2])
    err = await start_fails(cut, MMPROJ)
    assert "could not load the model" in str(err)
    assert "corrupted or incomplete" in str(err)
    assert str(tmp_path) not in str(err)


async def test_truncated_projector(tmp_path: Path) -> None:
    cut = tmp_path / "cut-mmproj.gguf"
    cut.write_bytes(MMPROJ.read_bytes()[: MMPROJ.stat().st_size // 2])
    assert "could not load the vision projector" in str(await start_fails(MODEL, cut))


async def test_text_model_as_projector() -> None:
    assert "could not load the vision projector" in str(await start_fails(MODEL, MODEL))


async def test_projector_as_model() -> None:
    assert "could not load the model" in str(await start_fails(MMPROJ, MMPROJ))


async def test_not_a_gguf_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF")
    assert "could not load the model" in str(await start_fails(junk, MMPROJ))


@pytest.mark.parametrize("which", ["model", "mmproj"])
async def test_missing_file(tmp_path: Path, which: str) -> None:
    missing = tmp_path / "missing.gguf"
    model, mmproj = (missing, MMPROJ) if which == "model" else (MODEL, missing)
    err = await start_fails(model, mmproj)
    assert "missing.gguf does not exist" in str(err)


# The runtime probe runs in a child process; fake interpreters stand in for broken installs.


def fake_python(tmp_path: Path, code: str, flags: str = "") -> str:
    """Return an 'interpreter' that ignores the probe and runs `code` with the real one."""
    script = tmp_path / "python"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" {flags} -c "{code}"\n', encoding="utf-8")
    script.chmod(0o755)
    return str(script)


async def test_probe_reports_the_version() -> None:
    import llama_cpp

    assert await async_probe_runtime() == llama_cpp.__version__


async def test_probe_not_installed(tmp_path: Path) -> None:
    # Without site-packages (-S) the real interpreter cannot find llama_cpp.
    python = fake_python(tmp_path, "import llama_cpp", flags="-S")
    with pytest.raises(RuntimeMissing, match="not installed") as caught:
        await async_probe_runtime(python)
    assert isinstance(caught.value, RuntimeMissing)
    assert caught.value.reason == "llama_cpp_missing"


async def test_probe_missing_dependency_is_not_called_missing_runtime(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "import numpy_is_not_here")
    with pytest.raises(RuntimeMissing, match="import") as caught:
        await async_probe_runtime(python)
    assert "not installed" not in str(caught.value)


async def test_probe_import_error(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "raise OSError('libgomp.so.1: cannot open shared object file')")
    with pytest.raises(RuntimeMissing, match="libgomp"):
        await async_probe_runtime(python)


async def test_probe_crash_is_reported_with_its_signal(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    with pytest.raises(RuntimeCrashed, match="SIGILL") as caught:
        await async_probe_runtime(python)
    assert caught.value.reason == "llama_cpp_crashed"


async def test_probe_hang_times_out(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "import time; time.sleep(30)")
    started = time.monotonic()
    with pytest.raises(RuntimeCrashed, match="did not finish"):
        await async_probe_runtime(python, timeout_s=0.5)
    assert time.monotonic() - started < 5


async def test_probe_without_interpreter(tmp_path: Path) -> None:
    with pytest.raises(RuntimeMissing):
        await async_probe_runtime(str(tmp_path / "no-python"))
