"""A backend for any OpenAI-compatible chat-completions server (llama.cpp, vLLM, Ollama, LM Studio)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
import json
import logging
import re
import time
from typing import Any, Final

import aiohttp
from yarl import URL

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
    ServerError,
)

_LOGGER = logging.getLogger(__name__)

# A perception reply is a few hundred bytes; a megabyte is already a misbehaving server.
MAX_REPLY_BYTES: Final = 1 << 20
MAX_CONTENT_CHARS: Final = 65536
# How much of a server's error text we keep in our own messages (scrubbed of the key).
_ERROR_EXCERPT_CHARS: Final = 160
_ERROR_TEXT_BYTES: Final = 8192

# Ways to ask for structured output, from most to least specific. Servers differ: OpenAI and vLLM
# take `json_schema`; llama-cpp-python's server only `json_object` with a `schema`; some only
# plain `json_object`; the last level asks for nothing and relies on the prompt and the parser.
FORMAT_JSON_SCHEMA: Final = 0
FORMAT_JSON_OBJECT_WITH_SCHEMA: Final = 1
FORMAT_JSON_OBJECT: Final = 2
FORMAT_NONE: Final = 3
_FORMAT_NAMES: Final = ("json_schema", "json_object+schema", "json_object", "none")

# How servers say "this model cannot see": llama.cpp ("image input is not supported"), vLLM
# ("not a multimodal model", "At most 0 image(s)"), OpenAI ("image_url is only supported by
# certain models"), Ollama and LM Studio ("does not support images").
_NO_VISION = re.compile(
    r"image input is not supported|does(?: not|n't) support (?:image|vision)|not a multimodal model"
    r"|at most 0 image|image_url is only supported|vision is not supported|images? (?:are|is) not supported"
    r"|no mmproj|multimodal (?:input )?is not supported",
    re.IGNORECASE,
)
# How servers refuse a response_format they do not know. llama-cpp-python's server answers OpenAI's
# json_schema form with HTTP 500 and a pydantic message ("Input should be 'text' or 'json_object'").
_FORMAT_REFUSED = re.compile(r"response_format|json_schema|'text' or 'json_object'", re.IGNORECASE)
_MODEL_MISSING = re.compile(
    r"model\b.{0,80}\b(?:not found|does not exist|not loaded|unknown)|unknown model|no such model",
    re.IGNORECASE | re.DOTALL,
)


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


def _parse_retry_after(value: str | None) -> float | None:
    """Return the wait a Retry-After header asks for, in seconds (delta or HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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


class OpenAICompatBackend:
    """Talks to an OpenAI-compatible server through an injected aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_concurrency: int = 2,
        max_retries: int = 2,
        max_retry_wait_s: float = 10.0,
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
        self._max_retry_wait_s = max_retry_wait_s
        self._format_level = FORMAT_JSON_SCHEMA
        self._closed = False
        self._stats = BackendStats()

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
        started = time.monotonic()
        deadline = started + self._timeout_s
        self._stats.requests += 1
        try:
            body = await self._complete_with_format_fallback(request, deadline)
            reply = self._reply_from_body(body, started)
        except BackendError as err:
            self._stats.failures += 1
            self._stats.last_error = err.reason
            raise
        self._stats.last_latency_s = reply.latency_s
        self._stats.last_error = None
        return reply

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
            "stats": {
                "requests": self._stats.requests,
                "failures": self._stats.failures,
                "retries": self._stats.retries,
                "last_latency_s": self._stats.last_latency_s,
                "last_error": self._stats.last_error,
            },
        }

    async def _complete_with_format_fallback(self, request: VisionRequest, deadline: float) -> Any:
        """Post the request, stepping down the structured-output ladder when the server refuses a form."""
        while True:
            level = self._format_level if request.json_schema is not None else FORMAT_NONE
            payload, frames = self._build_payload(request, level)
            data = await asyncio.get_running_loop().run_in_executor(None, _encode_payload, payload, frames)
            try:
                return await self._call("POST", "chat/completions", data, deadline=deadline)
            except _FormatRejected:
                if level >= FORMAT_NONE:
                    raise ServerError("the server rejected the request") from None
                self._format_level = level + 1
                _LOGGER.info(
                    "Server at %s refused response_format %s; using %s from now on",
                    self._base_url,
                    _FORMAT_NAMES[level],
                    _FORMAT_NAMES[level + 1],
                )

    def _build_payload(self, request: VisionRequest, level: int) -> tuple[dict[str, Any], tuple[bytes, ...]]:
        """Return the chat payload with image placeholders, and the frames to fill them."""
        content: list[dict[str, Any]] = []
        if request.lead_in:
            content.append({"type": "text", "text": request.lead_in})
        content.extend({"type": "image_url"} for _ in request.frames)
        content.append({"type": "text", "text": request.user_text()})
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

    def _reply_from_body(self, body: Any, started: float) -> VisionReply:
        """Extract the reply text and usage from a chat-completions body."""
        try:
            message = body["choices"][0]["message"]
            content = message["content"]
        except (KeyError, IndexError, TypeError) as err:
            raise BadReply("the reply has no message content") from err
        if isinstance(content, list):
            # Some servers return content parts even for text-only replies.
            content = "".join(
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
        if not isinstance(content, str) or not content.strip():
            raise BadReply("the reply is empty")
        if len(content) > MAX_CONTENT_CHARS:
            raise BadReply("the reply is too long")
        usage = body.get("usage") if isinstance(body, dict) else None
        return VisionReply(
            text=content,
            model=str(body.get("model") or self._model),
            latency_s=time.monotonic() - started,
            usage=TokenUsage(
                prompt_tokens=_int_or_none(usage, "prompt_tokens"),
                completion_tokens=_int_or_none(usage, "completion_tokens"),
            ),
        )

    async def _call(self, method: str, path: str, data: bytes | None, *, deadline: float) -> Any:
        """Make one API call with bounded retries; return the decoded JSON body."""
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
            except CannotConnect:
                if attempt >= self._max_retries:
                    raise
                wait = _backoff(attempt)
            else:
                if 200 <= status < 300:
                    return self._decode_json(raw)
                wait = self._wait_before_retry(status, retry_after, raw, attempt)
            if time.monotonic() + wait >= deadline:
                raise BackendTimeout(f"no answer within {self._timeout_s:g} s")
            attempt += 1
            self._stats.retries += 1
            _LOGGER.debug("Retrying %s %s in %.1f s (attempt %d)", method, path, wait, attempt + 1)
            await asyncio.sleep(wait)

    async def _send(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None, timeout_s: float
    ) -> tuple[int, str | None, bytes]:
        """Send one HTTP request and read at most MAX_REPLY_BYTES of its body."""
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as resp:
                raw = await resp.content.read(MAX_REPLY_BYTES + 1)
                if len(raw) > MAX_REPLY_BYTES:
                    raise BadReply("the reply is larger than 1 MiB")
                return resp.status, resp.headers.get("Retry-After"), raw
        except TimeoutError as err:
            raise BackendTimeout(f"no answer within {self._timeout_s:g} s") from err
        except aiohttp.ClientConnectionError as err:
            # Name the kind of failure only: aiohttp's text can include the full URL.
            raise CannotConnect(f"cannot reach the server ({type(err).__name__})") from None
        except aiohttp.ClientError as err:
            raise CannotConnect(f"HTTP error ({type(err).__name__})") from None

    def _wait_before_retry(self, status: int, retry_after: str | None, raw: bytes, attempt: int) -> float:
        """Classify a failed status: raise the matching error, or return how long to wait before a retry."""
        text = self._error_text(raw)
        excerpt = text[:_ERROR_EXCERPT_CHARS]
        if status in (401, 403):
            raise InvalidAuth(f"the server refused the credentials (HTTP {status})")
        if _NO_VISION.search(text):
            raise ModelRejectsImages(f"the model does not accept images (HTTP {status}): {excerpt}")
        if status == 404 or (status in (400, 422) and _MODEL_MISSING.search(text)):
            raise ModelNotFound(f"the server does not serve model {self._model!r} (HTTP {status})")
        if status in (400, 422) or (status >= 500 and _FORMAT_REFUSED.search(text)):
            raise _FormatRejected(excerpt)
        exhausted = attempt >= self._max_retries
        if status in (429, 503):
            wait = _parse_retry_after(retry_after)
            if exhausted or (wait is not None and wait > self._max_retry_wait_s):
                raise RateLimited(f"the server is busy (HTTP {status})", retry_after=wait)
            return wait if wait is not None else _backoff(attempt)
        if status >= 500 and not exhausted:
            return _backoff(attempt)
        raise ServerError(f"the server failed (HTTP {status}): {excerpt}")

    def _decode_json(self, raw: bytes) -> Any:
        """Decode a JSON body or raise BadReply."""
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            # RecursionError: a megabyte of nested brackets is not JSON we can use either.
            raise BadReply("the server's reply is not JSON") from err

    def _error_text(self, raw: bytes) -> str:
        """Return the key-free message of an error body, whitespace collapsed, for classification."""
        text = raw[:_ERROR_TEXT_BYTES].decode("utf-8", errors="replace")
        try:
            decoded: Any = json.loads(text)
        except json.JSONDecodeError:
            pass
        else:
            text = _error_message(decoded) or text
        if self._api_key:
            # Some servers echo the offending key back in their error messages.
            text = text.replace(self._api_key, "***")
        return " ".join(text.split())


class _FormatRejected(BackendError):
    """The server rejected the request as malformed; maybe only the response_format."""

    reason = "server_error"


def _error_message(body: Any) -> str | None:
    """Pull the human message out of the common error body shapes."""
    if not isinstance(body, Mapping):
        return None
    error = body.get("error", body)
    if isinstance(error, Mapping):
        message = error.get("message") or error.get("detail")
        return message if isinstance(message, str) else None
    if isinstance(error, str):
        return error
    detail = body.get("detail")
    return str(detail) if detail is not None else None


def _backoff(attempt: int) -> float:
    """Return the wait before retry number attempt+1 when the server gave no Retry-After."""
    return 0.5 * 2.0**attempt


def _int_or_none(usage: Any, key: str) -> int | None:
    """Return usage[key] when it is an int."""
    if isinstance(usage, Mapping):
        value = usage.get(key)
        if isinstance(value, int):
            return value
    return None
