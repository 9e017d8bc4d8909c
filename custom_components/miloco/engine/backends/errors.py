"""The small error tree of the backends; callers translate these once at their boundary."""

from __future__ import annotations

import math
from typing import Final

# The longest back-off a server's Retry-After may ask of us; a larger hint (or a date far ahead) is cut
# to this, so one odd header cannot silence a camera for days.
MAX_RETRY_AFTER_S: Final = 3600.0


class BackendError(Exception):
    """A model backend could not answer."""

    # A stable key that the HA side maps to a translated message.
    reason = "unknown"

    def __init__(self, *args: object, retry_after: float | None = None) -> None:
        """Keep the server's hint of how long to wait before the next request (seconds), if it gave one."""
        super().__init__(*args)
        self.retry_after = bounded_retry_after(retry_after)


def bounded_retry_after(seconds: float | None) -> float | None:
    """Return the wait as a finite number of seconds in [0, MAX_RETRY_AFTER_S], or None when unusable."""
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, float(seconds)), MAX_RETRY_AFTER_S)


class CannotConnect(BackendError):
    """The server could not be reached."""

    reason = "cannot_connect"


class ServerUnreachable(CannotConnect):
    """No connection could be made (refused, no route, name not resolved): the request never left."""


class InvalidAuth(BackendError):
    """The server refused the credentials (401/403)."""

    reason = "invalid_auth"


class ModelNotFound(BackendError):
    """The server does not serve the requested model."""

    reason = "model_not_found"


class ModelRejectsImages(BackendError):
    """The model or server does not accept image input."""

    reason = "no_vision"


class BackendTimeout(BackendError):
    """The model did not answer in time."""

    reason = "timeout"


class RateLimited(BackendError):
    """The server asked us to slow down for longer than we are willing to wait."""

    reason = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        """Keep the server's Retry-After hint for the caller's backoff."""
        super().__init__(message, retry_after=retry_after)


class ServerUnavailable(RateLimited):
    """The server answered 503: it is loading, overloaded or shutting down."""


class ServerError(BackendError):
    """The server failed (5xx) or rejected the request in a way we cannot adapt to."""

    reason = "server_error"


class RequestRejected(ServerError):
    """The server answered but refused this request (a 4xx other than auth, model or size): it is alive."""


class RequestTooLarge(BackendError):
    """The request does not fit the model's context (or the server's body limit); resending it cannot help."""

    reason = "request_too_large"


class BadReply(BackendError):
    """The server's reply was malformed, oversized or not understood."""

    reason = "bad_reply"


class ModelLoadError(BackendError):
    """An embedded model could not be loaded."""

    reason = "load_failed"


class RuntimeMissing(BackendError):
    """The embedded runtime (llama-cpp-python) is not installed or cannot run here."""

    reason = "llama_cpp_missing"


class RuntimeCrashed(RuntimeMissing):
    """Importing the embedded runtime killed or hung a child process (e.g. SIGILL from another CPU's build)."""

    reason = "llama_cpp_crashed"


class BackendClosed(BackendError):
    """The backend was closed; no more requests are served."""

    reason = "closed"
