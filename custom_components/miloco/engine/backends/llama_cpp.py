"""The embedded backend: llama-cpp-python, loaded once, driven from one dedicated worker thread."""

from __future__ import annotations

import asyncio
import base64
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
import concurrent.futures
import contextlib
import ctypes
from dataclasses import asdict, replace
import logging
from pathlib import Path
import re
import signal
import sys
import threading
import time
from typing import Any, Final

from .base import BackendStats, TokenUsage, VisionReply, VisionRequest
from .errors import (
    BackendClosed,
    BackendError,
    BackendTimeout,
    BadReply,
    ModelLoadError,
    RuntimeCrashed,
    RuntimeMissing,
    ServerError,
)
from .logprobs import tokens_from_body, top_logprobs_wanted

_LOGGER = logging.getLogger(__name__)

THREAD_NAME_PREFIX: Final = "miloco-llama"
JPEG_DATA_URL_PREFIX: Final = "data:image/jpeg;base64,"

# The probe also initialises the backend: a wheel built with -march=native for another CPU may only die of
# SIGILL once ggml's CPU code runs, not on the bare import.
_PROBE_CODE: Final = (
    "import llama_cpp\n"
    "llama_cpp.llama_backend_init()\n"
    "llama_cpp.llama_print_system_info()\n"
    "print(llama_cpp.__version__)\n"
)
_MAX_REASON_LEN: Final = 160
_FUNCTION_PREFIX: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*: ")

# ggml log levels as the vendored ggml.h of 0.3.36 numbers them. llama-cpp-python's own log callback still
# assumes an older numbering: with verbose=False it prints native warnings to stderr and hides errors.
_GGML_LOG_WARN: Final = 3
_GGML_LOG_ERROR: Final = 4
_GGML_LOG_CONT: Final = 5

# llama-cpp-python swaps the process-wide stdout/stderr file descriptors while it loads (verbose=False), and
# native log callbacks are process globals: two backends touching the runtime at once could leave stderr
# pointing at /dev/null for good. Every call into the runtime holds this lock.
_RUNTIME_LOCK = threading.Lock()
# The recent errors of llama.cpp and mtmd, read to explain a failed load (guarded by the lock).
_native_errors: deque[str] = deque(maxlen=20)
_native_level = 0
_native_callback: Any = None


class _Cancelled(Exception):
    """Raised inside the generation loop to stop a request its caller gave up on."""


async def async_probe_runtime(python: str | None = None, timeout_s: float = 60) -> str:
    """Import llama_cpp in a child process and return its version; raise RuntimeMissing when that fails."""
    # Read at call time: the interpreter running Home Assistant is the one whose packages matter.
    python = python or sys.executable
    try:
        proc = await asyncio.create_subprocess_exec(
            python,
            "-c",
            _PROBE_CODE,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as err:
        raise RuntimeMissing(f"could not start {Path(python).name}: {err.strerror}") from err
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeCrashed(f"importing llama_cpp did not finish within {timeout_s:g} s") from None
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    code = proc.returncode
    if code is not None and code < 0:
        raise RuntimeCrashed(f"importing llama_cpp crashed with signal {_signal_name(-code)}")
    if code != 0:
        # Only llama_cpp itself missing means "not installed"; a missing dependency is a broken install.
        if b"No module named 'llama_cpp'" in stderr:
            raise RuntimeMissing("llama-cpp-python is not installed")
        raise RuntimeMissing(f"importing llama_cpp failed: {_last_line(stderr)}")
    return stdout.decode("utf-8", errors="replace").strip()


def _signal_name(number: int) -> str:
    """Return e.g. 'SIGILL (4)' for a signal number."""
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)


def _last_line(output: bytes) -> str:
    """Return the last non-empty line of a child's stderr, shortened."""
    lines = [line for line in output.decode("utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1].strip()[:_MAX_REASON_LEN] if lines else "no error output"


# The longest maxLength left in a grammar: a check's reason (200) is kept, a free answer's (2,000) is not.
_GRAMMAR_MAX_LENGTH: Final = 256


def _plain(value: Any) -> Any:
    """Return a JSON schema as plain dicts and lists (llama-cpp-python json.dumps it), fit for its grammar.

    A long maxLength is left out: llama-cpp-python spells it as that many repetitions, which llama.cpp
    fails to parse ("failed to parse grammar") and then crashes the process on. The reply parser cuts
    a longer string to the schema's maxLength anyway.
    """
    if isinstance(value, Mapping):
        return {
            str(key): _plain(item)
            for key, item in value.items()
            if not (key == "maxLength" and isinstance(item, int) and item > _GRAMMAR_MAX_LENGTH)
        }
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(item) for item in value]
    return value


def _install_native_logging(llama_cpp: Any, mtmd_cpp: Any) -> None:
    """Route llama.cpp's and mtmd's logs to us (once): mtmd otherwise prints each prompt to stderr."""
    global _native_callback  # noqa: PLW0603 - the ctypes callback must outlive every native caller

    if _native_callback is not None:
        return

    def on_log(level: int, text: bytes | None, _user_data: ctypes.c_void_p) -> None:
        global _native_level  # noqa: PLW0603 - continuation lines inherit the previous level
        if level != _GGML_LOG_CONT:
            _native_level = level
        if _native_level not in (_GGML_LOG_WARN, _GGML_LOG_ERROR) or not text:
            return
        line = text.decode("utf-8", errors="replace").strip()
        if line:
            if _native_level == _GGML_LOG_ERROR:
                _native_errors.append(line)
            _LOGGER.debug("llama.cpp: %s", line)

    _native_callback = llama_cpp.llama_log_callback(on_log)
    llama_cpp.llama_log_set(_native_callback, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_helper_log_set(_native_callback, ctypes.c_void_p(0))


def _native_reason(default: str, paths: Sequence[Path]) -> str:
    """Return the first native error since the last clear (the root cause; later ones just echo it)."""
    if not _native_errors:
        return default
    # Drop the C function name in front ("llama_model_load: error loading model: ...").
    reason = _FUNCTION_PREFIX.sub("", _native_errors[0])
    for path in paths:
        reason = reason.replace(str(path), path.name)
    return reason[:_MAX_REASON_LEN]


class LlamaCppBackend:
    """A GGUF model and its vision projector, run in-process by llama-cpp-python.

    A missing model or projector file raises ModelLoadError (like any other unloadable file), so callers
    only handle BackendError. Check the files with engine.gguf first: a few malformed-but-valid GGUF files
    crash llama.cpp instead of failing.
    """

    def __init__(
        self,
        model_path: Path,
        mmproj_path: Path,
        *,
        n_threads: int | None,
        n_ctx: int,
        timeout_s: float,
        seed: int = 0,
        logprobs: bool = False,
    ) -> None:
        """Remember the configuration; nothing is loaded until async_start.

        `logprobs` loads the model able to return token log-probabilities. llama-cpp-python then keeps the
        logits of every position (n_ctx × vocabulary floats, about 2.5 GB for a 151,936-token vocabulary at
        n_ctx 4096) and computes them for every prompt token, so it is off unless asked for.
        """
        self._model_path = model_path
        self._mmproj_path = mmproj_path
        self._n_threads = n_threads
        self._n_ctx = n_ctx
        # Public: the caller may change it between requests (e.g. after an options change).
        self.timeout_s = timeout_s
        self._seed = seed
        self._logprobs = logprobs
        self._stats = BackendStats()
        # All llama calls happen on this one thread: the runtime is not thread-safe.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=THREAD_NAME_PREFIX
        )
        self._llm: Any = None
        self._runtime_version: str | None = None
        self._effective_threads: int | None = None
        self._closed = False
        # The cancel flags of the requests submitted and not yet finished (running or queued).
        self._pending: set[threading.Event] = set()

    @property
    def _paths(self) -> tuple[Path, Path]:
        return self._model_path, self._mmproj_path

    @property
    def model(self) -> str:
        """Return the model file's name without its extension."""
        return self._model_path.stem

    @property
    def max_concurrency(self) -> int:
        """Return 1: the model answers one request at a time."""
        return 1

    @property
    def stats(self) -> BackendStats:
        """Return the running counters."""
        return self._stats

    @property
    def logprobs_support(self) -> str:
        """Return 'accepted' when requests get token log-probabilities, else 'refused' (not loaded for them)."""
        return "accepted" if self._logprobs else "refused"

    @property
    def loaded(self) -> bool:
        """Return whether the model is loaded and ready."""
        return self._llm is not None

    async def async_start(self) -> None:
        """Load the model and its projector on the worker thread (seconds to minutes for a real model)."""
        if self._closed:
            raise BackendClosed("the backend is closed")
        if self._llm is not None:
            return
        try:
            await asyncio.wrap_future(self._executor.submit(self._load))
        except BackendError as err:
            self._record_failure(err)
            raise

    async def async_complete(self, request: VisionRequest) -> VisionReply:
        """Answer one request; the caller gets BackendTimeout on time while the worker winds down.

        The timeout counts from the moment the worker starts on this request. Requests run one at a time
        (on this backend's thread, and across backends under the runtime lock), so one that waits for another
        to finish must not spend its own time on that wait.
        """
        if self._closed:
            raise BackendClosed("the backend is closed")
        if self._llm is None:
            raise ModelLoadError("the model is not loaded")
        self._stats.requests += 1
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()

        def on_start() -> None:
            if not started.done():
                started.set_result(None)

        def signal_start() -> None:
            # Called on the worker thread; a loop that closed meanwhile has nobody left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(on_start)

        cancel = threading.Event()
        self._pending.add(cancel)
        # A queued job whose caller gave up is skipped when its turn comes; a running one stops at its next token.
        future = asyncio.wrap_future(self._executor.submit(self._complete, request, cancel, signal_start))
        # Each request ahead of this one (itself included here) ends within about one timeout, and so does
        # one of another backend holding the runtime; a wait longer than all of those is a stuck runtime.
        queue_limit_s = self.timeout_s * (len(self._pending) + 1)
        try:
            await _until_started(started, future, queue_limit_s)
            reply = await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            cancel.set()
            future.cancel()
            err: BackendError = BackendTimeout(f"no answer within {self.timeout_s:g} s")
            self._record_failure(err)
            raise err from None
        except asyncio.CancelledError:
            cancel.set()
            future.cancel()
            raise
        except BackendError as err:
            self._record_failure(err)
            raise
        finally:
            self._pending.discard(cancel)
            started.cancel()
        self._stats.last_latency_s = reply.latency_s
        return reply

    async def async_close(self) -> None:
        """Free the model on its thread, then wait for the thread to end without blocking the loop."""
        if self._closed:
            return
        self._closed = True
        for cancel in self._pending:
            cancel.set()
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wrap_future(self._executor.submit(self._unload))
        finally:
            await loop.run_in_executor(None, self._executor.shutdown, True)

    def diagnostics(self) -> dict[str, Any]:
        """Return file names (not paths), sizes of the context and thread pool, and the counters."""
        return {
            "backend": "llama_cpp",
            "model_file": self._model_path.name,
            "mmproj_file": self._mmproj_path.name,
            "n_ctx": self._n_ctx,
            "threads": self._effective_threads if self._effective_threads is not None else self._n_threads,
            "timeout_s": self.timeout_s,
            "loaded": self.loaded,
            "closed": self._closed,
            "runtime_version": self._runtime_version,
            "stats": asdict(self._stats),
        }

    def _record_failure(self, err: BackendError) -> None:
        self._stats.failures += 1
        self._stats.last_error = err.reason

    # Everything below runs on the worker thread.

    def _load(self) -> None:
        with _RUNTIME_LOCK:
            try:
                import llama_cpp  # noqa: PLC0415 - optional runtime, imported only when an entry needs it
                from llama_cpp import llama_chat_format, mtmd_cpp  # noqa: PLC0415
            except ImportError as err:
                raise RuntimeMissing(f"llama-cpp-python cannot be imported: {err}") from err
            except OSError as err:
                raise RuntimeMissing(f"llama-cpp-python's library cannot be loaded: {err}") from err
            _install_native_logging(llama_cpp, mtmd_cpp)
            self._runtime_version = str(getattr(llama_cpp, "__version__", "unknown"))
            for path, what in ((self._model_path, "model"), (self._mmproj_path, "vision projector")):
                if not path.is_file():
                    raise ModelLoadError(f"the {what} file {path.name} does not exist")
            _native_errors.clear()
            handler = llama_chat_format.Qwen25VLChatHandler(
                clip_model_path=str(self._mmproj_path), verbose=False
            )
            started = time.monotonic()
            try:
                llm = llama_cpp.Llama(
                    model_path=str(self._model_path),
                    chat_handler=handler,
                    n_ctx=self._n_ctx,
                    seed=self._seed,
                    verbose=False,
                    # Both: left alone, the batch (prompt and image) thread count is every core, which
                    # starves Home Assistant. None keeps llama-cpp-python's defaults.
                    n_threads=self._n_threads,
                    n_threads_batch=self._n_threads,
                    # llama-cpp-python computes log-probabilities only from logits it kept for every position.
                    logits_all=self._logprobs,
                )
            except (ValueError, RuntimeError, OSError) as err:
                reason = _native_reason("the file is not a model llama.cpp can load", self._paths)
                raise ModelLoadError(f"could not load the model: {reason}") from err
            _native_errors.clear()
            try:
                # The handler would load the projector on the first request; load it now so a bad mmproj
                # fails the start, not every check.
                handler._init_mtmd_context(llm)
            except (ValueError, RuntimeError, OSError) as err:
                llm.close()
                reason = _native_reason("the file is not a projector llama.cpp can load", self._paths)
                raise ModelLoadError(f"could not load the vision projector: {reason}") from err
            self._llm = llm
            self._effective_threads = int(llm.n_threads)
            _LOGGER.debug(
                "Loaded %s with %s in %.1f s (n_ctx %d, %d threads)",
                self._model_path.name,
                self._mmproj_path.name,
                time.monotonic() - started,
                self._n_ctx,
                self._effective_threads,
            )

    def _complete(
        self, request: VisionRequest, cancel: threading.Event, on_start: Callable[[], None]
    ) -> VisionReply:
        with _RUNTIME_LOCK:
            llm = self._llm
            if llm is None or self._closed:
                raise BackendClosed("the backend is closed")
            if cancel.is_set():
                raise BackendTimeout("the request was given up before it started")
            # From here on the request's own timeout runs (see async_complete).
            on_start()
            content = request.user_content(_image_part)
            messages = [
                {"role": "system", "content": request.system_prompt},
                {"role": "user", "content": content},
            ]
            extra: dict[str, Any] = {}
            if request.json_schema is not None:
                extra["response_format"] = {"type": "json_object", "schema": _plain(request.json_schema)}
            extra.update(self._logprobs_arguments(request))
            started = time.monotonic()
            try:
                with _stop_when_cancelled(llm, cancel):
                    result = llm.create_chat_completion(
                        messages=messages, temperature=0.0, max_tokens=request.max_tokens, **extra
                    )
            except _Cancelled:
                raise BackendTimeout("the request was stopped after its caller gave up") from None
            except ValueError as err:
                message = str(err)
                # Qwen-VL images advance the position by far fewer steps than the tokens they fill, so the
                # handler's own "Prompt exceeds n_ctx" check rarely fires: a full KV cache instead fails
                # the image chunk's decode with a bare error code.
                if "n_ctx" in message or "evaluate chunk" in message:
                    raise ServerError(
                        f"the frames do not fit the context size ({self._n_ctx} tokens): {message[:80]}"
                    ) from err
                raise ServerError(f"llama.cpp rejected the request: {message[:_MAX_REASON_LEN]}") from err
            except (RuntimeError, OSError) as err:
                raise ServerError(f"llama.cpp failed: {type(err).__name__}") from err
            latency = time.monotonic() - started
        reply = _to_reply(result, self.model, latency)
        if "logprobs" in extra:
            reply = replace(reply, tokens=tokens_from_body(result))
        return reply

    def _logprobs_arguments(self, request: VisionRequest) -> dict[str, Any]:
        """Return create_chat_completion's log-probability arguments when asked and the model can give them."""
        wanted = top_logprobs_wanted(request.logprobs)
        if wanted is None or not self._logprobs:
            return {}
        return {"logprobs": True, "top_logprobs": wanted}

    def _unload(self) -> None:
        with _RUNTIME_LOCK:
            llm, self._llm = self._llm, None
            if llm is not None:
                # close() frees the context, the model and (through its exit stack) the mtmd projector.
                llm.close()


async def _until_started(started: asyncio.Future[None], job: asyncio.Future[Any], limit_s: float) -> None:
    """Wait until the worker starts on a request (or the job ends early); raise TimeoutError after limit_s."""
    done, _ = await asyncio.wait((started, job), timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
    if not done:
        raise TimeoutError


@contextlib.contextmanager
def _stop_when_cancelled(llm: Any, cancel: threading.Event) -> Iterator[None]:
    """Make the model's eval() raise once `cancel` is set, so a given-up request stops early."""
    # eval() is called from Python for every text chunk of the prompt (between images) and for every
    # generated token. Logits processors cannot do this: they run inside a ctypes callback, which swallows
    # exceptions, and the chat handler does not pass stopping criteria through.
    original_eval = llm.eval

    def eval_unless_cancelled(tokens: Sequence[int]) -> None:
        if cancel.is_set():
            raise _Cancelled
        original_eval(tokens)

    llm.eval = eval_unless_cancelled
    try:
        yield
    finally:
        del llm.eval


def _to_reply(result: Any, model: str, latency: float) -> VisionReply:
    """Return the reply in a chat completion result; raise BadReply when it has none."""
    try:
        text = result["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as err:
        raise BadReply("llama.cpp returned no message") from err
    if not isinstance(text, str):
        raise BadReply("llama.cpp returned no text")
    usage = result.get("usage") if isinstance(result, Mapping) else None
    tokens = TokenUsage()
    if isinstance(usage, Mapping):
        # prompt_tokens undercounts image tokens in llama-cpp-python 0.3.36: treat it as a rough figure.
        tokens = TokenUsage(
            prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens")
        )
    return VisionReply(text=text, model=model, latency_s=latency, usage=tokens)


def _image_part(frame: bytes) -> dict[str, Any]:
    """Return a frame as a chat image part with its JPEG inline as a data URL."""
    return {
        "type": "image_url",
        "image_url": {"url": JPEG_DATA_URL_PREFIX + base64.b64encode(frame).decode("ascii")},
    }
