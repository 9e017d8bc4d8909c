"""A backend for any OpenAI-compatible chat-completions server (llama.cpp, vLLM, Ollama, LM Studio).

Retry policy: a call is cheap when the server fails, because the caller checks again soon and backs off
between checks, never inside one. A call makes at most `max_retries` (default 1) extra attempts, and only
where one more attempt at once is likely to help:

- the connection closed before any byte of the reply (a keep-alive connection the server had dropped, a
  restart): retried at once;
- HTTP 429/503 whose Retry-After is at most `max_retry_wait_s` (default 1 s) and fits the deadline:
  retried after that wait.

Everything else fails the call at once, with the server's Retry-After (if any) in `err.retry_after`:
RateLimited for 429 (ServerUnavailable, a RateLimited, for 503), ServerError for other 5xx, RequestRejected
(a ServerError) for other 4xx, InvalidAuth for 401/403, RequestTooLarge for a request over the model's
context, and CannotConnect (ServerUnreachable when the request never left) when there is no connection.
A 400/422 steps down the structured-output ladder only when the server complains about the response
format itself, and the stronger format is tried again later, so one odd refusal does not cost structured
output for good.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
import dataclasses
from datetime import UTC
from email.utils import parsedate_to_datetime
import json
import logging
import re
import time
from typing import Any, Final

import aiohttp
from yarl import URL

from ..backend_defaults import REMOTE_TIMEOUT_S
from .base import BackendStats, TokenUsage, VisionReply, VisionRequest
from .errors import (
    BackendClosed,
    BackendError,
    BackendTimeout,
    BadReply,
    CannotConnect,
    InvalidAuth,
    ModelNotFound,
    ModelRejectsImages,
    RateLimited,
    RequestRejected,
    RequestTooLarge,
    ServerError,
    ServerUnavailable,
    ServerUnreachable,
    bounded_retry_after,
)
from .logprobs import tokens_from_body, top_logprobs_wanted

_LOGGER = logging.getLogger(__name__)

# A perception reply is a few hundred bytes; a megabyte is already a misbehaving server.
MAX_REPLY_BYTES: Final = 1 << 20
MAX_CONTENT_CHARS: Final = 65536
# How much of a server's error text we keep in our own messages (scrubbed of the key).
_ERROR_EXCERPT_CHARS: Final = 160
_ERROR_TEXT_BYTES: Final = 8192
# Replies are read in pieces of at most this size until the server ends them.
_READ_CHUNK_BYTES: Final = 65536
# A request whose frames total at most this is encoded on the event loop (about a millisecond); a larger one
# (high detail, many frames) in the executor.
INLINE_FRAME_BYTES: Final = 96 * 1024

# Ways to ask for structured output, from most to least specific. Servers differ: OpenAI and vLLM
# take `json_schema`; llama-cpp-python's server only `json_object` with a `schema`; some only
# plain `json_object`; the last level asks for nothing and relies on the prompt and the parser.
FORMAT_JSON_SCHEMA: Final = 0
FORMAT_JSON_OBJECT_WITH_SCHEMA: Final = 1
FORMAT_JSON_OBJECT: Final = 2
FORMAT_NONE: Final = 3
_FORMAT_NAMES: Final = ("json_schema", "json_object+schema", "json_object", "none")
# After stepping down, the strongest format is tried again after this long; each refusal of that trial
# doubles the wait up to the maximum, so a server that never takes it costs a request every few hours.
FORMAT_RETRY_S: Final = 300.0
_FORMAT_RETRY_MAX_S: Final = 6 * 3600.0

# How servers say "this model cannot see": llama.cpp ("image input is not supported"), vLLM
# ("not a multimodal model", "At most 0 image(s)"), OpenAI ("image_url is only supported by
# certain models"), Ollama and LM Studio ("does not support images").
_NO_VISION = re.compile(
    r"image input is not supported|does(?: not|n't) support (?:image|vision)|not a multimodal model"
    r"|at most 0 image|image_url is only supported|vision is not supported|images? (?:are|is) not supported"
    r"|no mmproj|multimodal (?:input )?is not supported",
    re.IGNORECASE,
)
# How servers refuse the structured-output request itself: an unknown response_format (llama-cpp-python's
# server answers json_schema with HTTP 500 and "Input should be 'text' or 'json_object'"), a schema or
# grammar they cannot compile (llama.cpp, vLLM's guided decoding backends).
_FORMAT_REFUSED = re.compile(
    r"response_format|json[_ ]schema|json_object|grammar|guided[_ ](?:json|decoding)|structured output",
    re.IGNORECASE,
)
# How servers say the prompt does not fit: llama.cpp ("the request exceeds the available context size",
# type exceed_context_size_error; older builds "input is too large to process"), vLLM ("This model's
# maximum context length is ..."), OpenAI (context_length_exceeded).
_CONTEXT_EXCEEDED = re.compile(
    r"exceed_context_size|context (?:size|length|window)|maximum context length|context_length_exceeded"
    r"|input is too large|prompt is too long|too many (?:input )?tokens",
    re.IGNORECASE,
)
# How servers refuse log-probabilities: llama-cpp-python's server with a model loaded without logits_all
# ("logprobs is not supported for models created with logits_all=False", HTTP 500), OpenAI-style 400s naming
# `logprobs` or `top_logprobs`.
_LOGPROBS_REFUSED = re.compile(r"logprobs|log_probs|logits_all", re.IGNORECASE)
_MODEL_MISSING = re.compile(
    r"model\b.{0,80}\b(?:not found|does not exist|not loaded|unknown)|unknown model|no such model",
    re.IGNORECASE | re.DOTALL,
)
# Retry-After's delay-seconds form (RFC 9110: digits; a fraction is tolerated), else it is an HTTP date.
_DELAY_SECONDS = re.compile(r"\s*(\d{1,12}(?:\.\d{0,6})?)\s*")


def normalize_base_url(raw: str) -> str:
    """Return the API root (ending in /v1) for a server URL typed with or without /v1; raise ValueError."""
    text = raw.strip()
    if not text:
        raise ValueError("empty URL")
    try:
        url = URL(text)
    except (ValueError, TypeError) as err:
        raise ValueError("unparsable URL") from err
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("URL needs http:// or https:// and a host")
    path = url.path.rstrip("/")
    # People paste the endpoint they see in docs; reduce it to the API root.
    for suffix in ("/chat/completions", "/completions", "/models"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    if not path.endswith("/v1"):
        path = f"{path}/v1"
    return str(url.with_path(path).with_query(None).with_fragment(None))


def redact_url(url: str) -> str:
    """Return the URL without user name and password, for logs and diagnostics."""
    parsed = URL(url)
    if parsed.user is None and parsed.password is None:
        return url
    return str(parsed.with_user(None))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Return the wait a Retry-After header asks for in bounded, finite seconds (delay or HTTP date)."""
    if not value:
        return None
    delay = _DELAY_SECONDS.fullmatch(value)
    if delay is not None:
        return bounded_retry_after(float(delay.group(1)))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # RFC 5322's "-0000" zone parses as naive; HTTP dates are always GMT.
        when = when.replace(tzinfo=UTC)
    try:
        seconds = when.timestamp() - (time.time() if now is None else now)
    except (OverflowError, OSError, ValueError):
        return None
    return bounded_retry_after(seconds)


def _encode_payload(payload: dict[str, Any], frames: tuple[bytes, ...]) -> bytes:
    """Serialise the request with frames as data URLs (CPU work: run off the event loop)."""
    messages = payload["messages"]
    user_content: list[dict[str, Any]] = messages[-1]["content"]
    images = iter(frames)
    for part in user_content:
        if part["type"] == "image_url":
            encoded = base64.b64encode(next(images)).decode("ascii")
            part["image_url"] = {"url": f"data:image/jpeg;base64,{encoded}"}
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _body_bytes(request: VisionRequest) -> int:
    """Return about how large the request's body is: its images and its texts (instructions can be megabytes)."""
    texts = (request.system_prompt, request.question, request.lead_in, *request.frame_labels)
    return sum(len(frame) for frame in request.frames) + sum(len(text) for text in texts)


class OpenAICompatBackend:
    """Talks to an OpenAI-compatible server through an injected aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = REMOTE_TIMEOUT_S,
        max_concurrency: int = 2,
        max_retries: int = 1,
        max_retry_wait_s: float = 1.0,
        format_retry_s: float = FORMAT_RETRY_S,
    ) -> None:
        """Store the connection settings; nothing is sent until a call is made."""
        self._session = session
        url = URL(normalize_base_url(base_url))
        # Credentials in the URL become a Basic header; an API key (Bearer) takes precedence over them.
        self._base_url = str(url.with_user(None))
        self._model = model
        self._api_key = api_key or None
        self._authorization: str | None = None
        if self._api_key:
            self._authorization = f"Bearer {self._api_key}"
        elif url.user is not None:
            self._authorization = aiohttp.BasicAuth(url.user, url.password or "").encode()
        self._timeout_s = timeout_s
        self._max_concurrency = max(1, max_concurrency)
        self._max_retries = max(0, max_retries)
        self._max_retry_wait_s = max(0.0, max_retry_wait_s)
        self._format_level = FORMAT_JSON_SCHEMA
        self._format_retry_first_s = max(0.0, format_retry_s)
        self._format_retry_s = self._format_retry_first_s
        self._format_retry_at = 0.0
        self._closed = False
        self._stats = BackendStats()
        # None until a request asked for log-probabilities; then whether the server gave them. A refusal is
        # tried again after a while, as the structured-output step-down is (the wait doubling each time).
        self._logprobs_accepted: bool | None = None
        self._logprobs_retry_s = self._format_retry_first_s
        self._logprobs_retry_at = 0.0

    @property
    def model(self) -> str:
        """Return the model name sent with every request."""
        return self._model

    @property
    def max_concurrency(self) -> int:
        """Return how many requests may be in flight at once."""
        return self._max_concurrency

    @property
    def stats(self) -> BackendStats:
        """Return the running counters."""
        return self._stats

    @property
    def base_url(self) -> str:
        """Return the API root without credentials."""
        return self._base_url

    @property
    def timeout_s(self) -> float:
        """Return the longest a call may take, retries included."""
        return self._timeout_s

    @property
    def logprobs_support(self) -> str:
        """Return whether this server returns log-probabilities: 'untried', 'accepted' or 'refused'."""
        if self._logprobs_accepted is None:
            return "untried"
        return "accepted" if self._logprobs_accepted else "refused"

    async def async_start(self) -> None:
        """Check that the server answers (and accepts our key) before the entry is set up."""
        await self.async_list_models()

    async def async_close(self) -> None:
        """Stop serving; the HA-owned session is left open for others."""
        self._closed = True

    async def async_list_models(self) -> list[str]:
        """Return the model ids the server lists; empty when it lists none or has no /models."""
        try:
            body = await self._call("GET", "models", None, deadline=time.monotonic() + self._timeout_s)
        except ModelNotFound:
            # A 404 here means the server has no /models endpoint, not that a model is missing.
            return []
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            return []
        ids = [item["id"] for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)]
        return sorted(dict.fromkeys(ids))

    async def async_complete(self, request: VisionRequest) -> VisionReply:
        """Send one chat completion with the frames and return the reply text."""
        if self._closed:
            raise BackendClosed("backend is closed")
        return await self._stats.count(self._complete(request))

    def diagnostics(self) -> dict[str, Any]:
        """Return secret-free facts about the connection."""
        return {
            "kind": "openai_compat",
            "base_url": self._base_url,
            "model": self._model,
            "api_key_set": self._api_key is not None,
            "authorization": self._authorization.split(" ", 1)[0] if self._authorization else None,
            "timeout_s": self._timeout_s,
            "max_concurrency": self._max_concurrency,
            "response_format": _FORMAT_NAMES[self._format_level],
            "stats": self._stats.as_dict(),
        }

    async def _complete(self, request: VisionRequest) -> VisionReply:
        """Ask the server within this call's timeout and read its reply."""
        started = time.monotonic()
        body, asked_logprobs = await self._complete_with_logprobs_fallback(request, started + self._timeout_s)
        reply = reply_from_body(body, default_model=self._model, started=started)
        if not asked_logprobs:
            return reply
        return dataclasses.replace(reply, tokens=tokens_from_body(body))

    async def _complete_with_logprobs_fallback(
        self, request: VisionRequest, deadline: float
    ) -> tuple[Any, bool]:
        """Post the request with log-probabilities when asked and not known refused; without, once refused.

        Returns the body and whether it was asked with log-probabilities.
        """
        wanted = top_logprobs_wanted(request.logprobs)
        refused = self._logprobs_accepted is False and time.monotonic() < self._logprobs_retry_at
        if wanted is None or refused:
            return await self._complete_with_format_fallback(request, deadline), False
        try:
            body = await self._complete_with_format_fallback(request, deadline, logprobs=wanted)
        except _LogprobsRejected as err:
            # Log-probabilities are an extra: a server without them answers as before.
            self._logprobs_refused(err)
            return await self._complete_with_format_fallback(request, deadline), False
        if self._logprobs_accepted is not True:
            self._logprobs_accepted = True
            self._logprobs_retry_s = self._format_retry_first_s
        return body, True

    def _logprobs_refused(self, err: BackendError) -> None:
        """Stop asking for log-probabilities for a while; each refusal of a retry doubles the wait."""
        if self._logprobs_accepted is False:
            self._logprobs_retry_s = min(self._logprobs_retry_s * 2, _FORMAT_RETRY_MAX_S)
        self._logprobs_accepted = False
        self._logprobs_retry_at = time.monotonic() + self._logprobs_retry_s
        _LOGGER.info(
            "Server at %s refused log-probabilities (%s); asking again in %.0f s",
            self._base_url,
            err,
            self._logprobs_retry_s,
        )

    async def _complete_with_format_fallback(
        self, request: VisionRequest, deadline: float, *, logprobs: int | None = None
    ) -> Any:
        """Post the request, stepping down the structured-output ladder when the server refuses a form."""
        level = self._first_format_level() if request.json_schema is not None else FORMAT_NONE
        while True:
            payload, frames = self._build_payload(request, level)
            _ask_logprobs(payload, logprobs)
            if _body_bytes(request) <= INLINE_FRAME_BYTES:
                # A check's window at its planned sizes: encoding it costs less than an executor round trip.
                data = _encode_payload(payload, frames)
            else:
                data = await asyncio.get_running_loop().run_in_executor(
                    None, _encode_payload, payload, frames
                )
            try:
                body = await self._call(
                    "POST", "chat/completions", data, deadline=deadline, formatted=level < FORMAT_NONE
                )
            except _FormatRejected:
                if level >= FORMAT_NONE:
                    raise RequestRejected("the server rejected the request") from None
                self._format_refused(level)
                level += 1
                continue
            if level < self._format_level:
                self._format_accepted(level)
            return body

    def _first_format_level(self) -> int:
        """Return the format to ask for first: the known-good one, or now and then the strongest again."""
        if self._format_level == FORMAT_JSON_SCHEMA or time.monotonic() < self._format_retry_at:
            return self._format_level
        # The refusal may have been passing (a router that sent one request to another server): try again,
        # and make the next trial wait twice as long in case it was not.
        self._format_retry_s = min(self._format_retry_s * 2, _FORMAT_RETRY_MAX_S)
        self._format_retry_at = time.monotonic() + self._format_retry_s
        return FORMAT_JSON_SCHEMA

    def _format_refused(self, level: int) -> None:
        """Step down below a refused format, unless this was a trial of a format already known refused."""
        if level < self._format_level:
            return
        self._format_level = level + 1
        self._format_retry_at = time.monotonic() + self._format_retry_s
        _LOGGER.info(
            "Server at %s refused response_format %s; using %s, trying %s again in %.0f s",
            self._base_url,
            _FORMAT_NAMES[level],
            _FORMAT_NAMES[level + 1],
            _FORMAT_NAMES[FORMAT_JSON_SCHEMA],
            self._format_retry_s,
        )

    def _format_accepted(self, level: int) -> None:
        """Remember that a stronger format works again."""
        self._format_level = level
        if level == FORMAT_JSON_SCHEMA:
            self._format_retry_s = self._format_retry_first_s
        _LOGGER.info("Server at %s accepts response_format %s again", self._base_url, _FORMAT_NAMES[level])

    def _build_payload(self, request: VisionRequest, level: int) -> tuple[dict[str, Any], tuple[bytes, ...]]:
        """Return the chat payload with image placeholders, and the frames to fill them."""
        # Placeholders for the images, filled with data URLs when encoding (off the loop for large ones).
        content = request.user_content(lambda _frame: {"type": "image_url"})
        payload: dict[str, Any] = {
            "model": self._model,
            "messages": [
                {"role": "system", "content": request.system_prompt},
                {"role": "user", "content": content},
            ],
            "temperature": 0,
            "max_tokens": request.max_tokens,
            "stream": False,
        }
        schema = request.json_schema
        if schema is not None and level == FORMAT_JSON_SCHEMA:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "miloco_reply", "schema": schema},
            }
        elif schema is not None and level == FORMAT_JSON_OBJECT_WITH_SCHEMA:
            payload["response_format"] = {"type": "json_object", "schema": schema}
        elif schema is not None and level == FORMAT_JSON_OBJECT:
            payload["response_format"] = {"type": "json_object"}
        return payload, tuple(request.frames)

    async def _call(
        self, method: str, path: str, data: bytes | None, *, deadline: float, formatted: bool = False
    ) -> Any:
        """Make one API call with at most the policy's retries; return the decoded JSON body."""
        url = f"{self._base_url}/{path}"
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self._authorization:
            headers["Authorization"] = self._authorization
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BackendTimeout(f"no answer within {self._timeout_s:g} s")
            try:
                status, retry_after, raw = await self._send(method, url, headers, data, remaining)
            except ServerUnreachable as err:
                if attempt:
                    # An earlier attempt reached the server: the request did leave, whatever happens now.
                    raise CannotConnect(str(err)) from None
                raise
            except _Dropped as err:
                if attempt >= self._max_retries:
                    raise CannotConnect(str(err)) from None
                wait = 0.0
            else:
                if 200 <= status < 300:
                    return self._decode_json(raw)
                failure = self._classify(status, retry_after, raw, formatted=formatted)
                short_wait = self._retry_wait(failure, attempt, deadline)
                if short_wait is None:
                    raise failure
                wait = short_wait
            attempt += 1
            self._stats.retries += 1
            _LOGGER.debug("Retrying %s %s in %.2f s (attempt %d)", method, path, wait, attempt + 1)
            if wait:
                await asyncio.sleep(wait)

    def _retry_wait(self, failure: BackendError, attempt: int, deadline: float) -> float | None:
        """Return how long to wait before retrying a failed status, or None when it is not worth a retry."""
        if not isinstance(failure, RateLimited) or attempt >= self._max_retries:
            return None
        wait = failure.retry_after
        # Only a short wait the server asked for: without a hint, a busy server is not less busy at once.
        if wait is None or wait > self._max_retry_wait_s or time.monotonic() + wait >= deadline:
            return None
        return wait

    async def _send(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None, timeout_s: float
    ) -> tuple[int, str | None, bytes]:
        """Send one HTTP request and read its body to the end (at most MAX_REPLY_BYTES)."""
        answered = False
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as resp:
                answered = True
                if 200 <= resp.status < 300:
                    raw = await _read_to_end(resp, MAX_REPLY_BYTES)
                else:
                    # An error body is only read for its message; a huge one is not a reason to fail.
                    raw = await _read_to_end(resp, _ERROR_TEXT_BYTES, truncate=True)
                return resp.status, resp.headers.get("Retry-After"), raw
        except TimeoutError as err:
            raise BackendTimeout(f"no answer within {self._timeout_s:g} s") from err
        except aiohttp.ClientConnectorError as err:
            # Name the kind of failure only: aiohttp's text can include the full URL.
            raise ServerUnreachable(f"cannot reach the server ({type(err).__name__})") from None
        except aiohttp.ClientConnectionError as err:
            if not answered:
                raise _Dropped(f"the server closed the connection ({type(err).__name__})") from None
            raise CannotConnect(f"the connection broke during the reply ({type(err).__name__})") from None
        except aiohttp.ClientError as err:
            raise CannotConnect(f"HTTP error ({type(err).__name__})") from None

    def _classify(self, status: int, retry_after: str | None, raw: bytes, *, formatted: bool) -> BackendError:
        """Return the error a failed status means."""
        text = self._error_text(raw)
        excerpt = text[:_ERROR_EXCERPT_CHARS]
        refusal = self._refusal(status, text, excerpt, formatted=formatted)
        if refusal is not None:
            return refusal
        wait = parse_retry_after(retry_after)
        if status == 503:
            return ServerUnavailable(f"the server is unavailable (HTTP {status})", retry_after=wait)
        if status == 429:
            return RateLimited(f"the server is busy (HTTP {status})", retry_after=wait)
        if status >= 500:
            return ServerError(f"the server failed (HTTP {status}): {excerpt}", retry_after=wait)
        return RequestRejected(f"the server refused the request (HTTP {status}): {excerpt}", retry_after=wait)

    def _refusal(self, status: int, text: str, excerpt: str, *, formatted: bool) -> BackendError | None:
        """Return the error for a refusal of this request itself (resending it unchanged cannot help)."""
        if status in (401, 403):
            return InvalidAuth(f"the server refused the credentials (HTTP {status})")
        if _NO_VISION.search(text):
            return ModelRejectsImages(f"the model does not accept images (HTTP {status}): {excerpt}")
        if status == 404 or (status in (400, 422) and _MODEL_MISSING.search(text)):
            return ModelNotFound(f"the server does not serve model {self._model!r} (HTTP {status})")
        if status == 413 or _CONTEXT_EXCEEDED.search(text):
            return RequestTooLarge(f"the request is too large for the model (HTTP {status}): {excerpt}")
        if status in (400, 422) or status >= 500:
            return _optional_part_refused(status, text, excerpt, formatted=formatted)
        return None

    def _decode_json(self, raw: bytes) -> Any:
        """Decode a JSON body or raise BadReply."""
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as err:
            # ValueError covers bad UTF-8 and integers too long to convert; RecursionError a megabyte of
            # nested brackets. Neither is JSON we can use.
            raise BadReply("the server's reply is not JSON") from err

    def _error_text(self, raw: bytes) -> str:
        """Return the key-free message (and type) of an error body, whitespace collapsed, to classify it."""
        text = raw[:_ERROR_TEXT_BYTES].decode("utf-8", errors="replace")
        try:
            decoded: Any = json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            text = _error_message(decoded) or text
        if self._api_key:
            # Some servers echo the offending key back in their error messages.
            text = text.replace(self._api_key, "***")
        return " ".join(text.split())


class _FormatRejected(BackendError):
    """The server refused the requested response_format (or could not compile its schema)."""

    reason = "server_error"


def _optional_part_refused(status: int, text: str, excerpt: str, *, formatted: bool) -> BackendError | None:
    """Return the refusal of a part of the request we can do without: log-probabilities, then the format."""
    # Log-probabilities first: when a server names both, dropping them costs less than structured output.
    if _LOGPROBS_REFUSED.search(text):
        # Worded as any refusal: to a request that did not ask for them, it is just that.
        return _LogprobsRejected(f"the server refused the request (HTTP {status}): {excerpt}")
    if formatted and _FORMAT_REFUSED.search(text):
        return _FormatRejected(excerpt)
    return None


class _LogprobsRejected(RequestRejected):
    """The server refused to return log-probabilities (a RequestRejected wherever they were not asked)."""


class _Dropped(CannotConnect):
    """The connection closed before any byte of a reply arrived; one more attempt at once may work."""


async def _read_to_end(resp: aiohttp.ClientResponse, limit: int, *, truncate: bool = False) -> bytes:
    """Read the body until the server ends it; over the limit, cut it (truncate) or raise BadReply."""
    if not truncate and resp.content_length is not None and resp.content_length > limit:
        raise BadReply(f"the reply is larger than {limit} bytes")
    body = bytearray()
    # read(n) returns what has arrived so far, which over a real network is one segment at a time.
    while chunk := await resp.content.read(_READ_CHUNK_BYTES):
        body += chunk
        if len(body) > limit:
            if truncate:
                return bytes(body[:limit])
            raise BadReply(f"the reply is larger than {limit} bytes")
    return bytes(body)


def _ask_logprobs(payload: dict[str, Any], top_logprobs: int | None) -> None:
    """Ask for each generated token's log-probability and its top alternatives (OpenAI's parameters)."""
    if top_logprobs is not None:
        payload["logprobs"] = True
        payload["top_logprobs"] = top_logprobs


def reply_from_body(body: Any, *, default_model: str, started: float) -> VisionReply:
    """Return the reply a chat-completions body holds; raise BadReply for any other shape."""
    content = reply_content(body)
    model = body.get("model")
    usage = body.get("usage")
    return VisionReply(
        text=content,
        model=model if isinstance(model, str) and model else default_model,
        latency_s=time.monotonic() - started,
        usage=TokenUsage(
            prompt_tokens=_count_or_none(usage, "prompt_tokens"),
            completion_tokens=_count_or_none(usage, "completion_tokens"),
        ),
    )


def reply_content(body: Any) -> str:
    """Return the text of a chat-completions body's first choice; raise BadReply for any other shape."""
    choices = body.get("choices") if isinstance(body, Mapping) else None
    if not isinstance(choices, list) or not choices:
        raise BadReply("the reply has no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, Mapping) else None
    if not isinstance(message, Mapping):
        raise BadReply("the reply has no message")
    content = message.get("content")
    if isinstance(content, list):
        # Some servers return content parts even for text-only replies.
        content = _joined_text_parts(content)
    if not isinstance(content, str) or not content.strip():
        raise BadReply("the reply is empty")
    if len(content) > MAX_CONTENT_CHARS:
        raise BadReply("the reply is too long")
    return content


def _joined_text_parts(parts: list[Any]) -> str:
    """Join the text parts of a content list; a text part whose text is not a string is BadReply."""
    texts: list[str] = []
    for part in parts:
        if not isinstance(part, Mapping) or part.get("type") != "text":
            continue
        text = part.get("text")
        if not isinstance(text, str):
            raise BadReply("a text part of the reply holds no text")
        texts.append(text)
    return "".join(texts)


def _error_message(body: Any) -> str | None:
    """Pull the human message (with its type, when given) out of the common error body shapes."""
    if not isinstance(body, Mapping):
        return None
    error = body.get("error", body)
    if isinstance(error, Mapping):
        message = error.get("message") or error.get("detail")
        if not isinstance(message, str):
            return None
        kind = error.get("type")
        return f"{message} ({kind})" if isinstance(kind, str) and kind and kind != "error" else message
    if isinstance(error, str):
        return error
    detail = body.get("detail")
    return str(detail) if detail is not None else None


def _count_or_none(usage: Any, key: str) -> int | None:
    """Return usage[key] when it is a non-negative int."""
    if isinstance(usage, Mapping):
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None
