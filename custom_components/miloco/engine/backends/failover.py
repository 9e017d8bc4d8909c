"""An ordered list of model servers used as one backend: the first healthy one answers, the others wait.

Rules, in the words of the fallback a home needs ("use the desktop, or the mini PC when it sleeps"):

- Each request goes to the first healthy server in the list, through that server's own concurrency limit.
- A server that fails with a fault of the server (unreachable, timeout, 5xx, model not found) is marked
  down. The request that met the fault fails, unless the server never received it (connection refused,
  name not resolved): only then is it sent to the next healthy server. A request is never sent to two
  servers, so a GPU never repeats another's work.
- A server that refuses its key (401/403) did no work either: it is taken out of rotation, the request goes
  to the next server, and the auth listeners hear which server refused, so the user can be asked for its
  key. Such a server is probed only every `auth_probe_interval_s` (a key does not start working by itself,
  but a server's admin may restore it). The caller sees InvalidAuth only when every server refuses its key.
- Failures of the request (bad reply, request too large, 429) are the caller's to handle and change nothing
  here: another server would say the same.
- Servers marked down are probed in the background (GET /models, never a chat request) with a doubling
  back-off; a server that answers is healthy again, so the preferred server takes over once it is back.
- With every server down, a request fails at once with CannotConnect carrying the time to the next probe in
  `retry_after`, rather than waiting on a server known to be dead.
- Only the request itself is timed out: waiting for one of the server's slots is not the server's fault. A
  request whose server was marked down while it waited for a slot goes on to the next server (it sent nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
import contextlib
from dataclasses import asdict, dataclass
import logging
import time
from typing import TYPE_CHECKING, Any, Final

from .base import BackendStats, VisionBackend, VisionReply, VisionRequest
from .errors import (
    BackendClosed,
    BackendError,
    BackendTimeout,
    CannotConnect,
    InvalidAuth,
    ModelNotFound,
    RequestRejected,
    ServerError,
    ServerUnavailable,
    ServerUnreachable,
)
from .openai_compat import OpenAICompatBackend, redact_url

_LOGGER = logging.getLogger(__name__)

PROBE_INTERVAL_S: Final = 5.0
MAX_PROBE_INTERVAL_S: Final = 60.0
# A server refusing its key waits for a new one (a reauth reloads the entry and probes it at once). This rare
# probe, one model list, notices a key restored on the server's side without anyone editing the entry.
AUTH_PROBE_INTERVAL_S: Final = 300.0


def is_server_fault(err: BackendError) -> bool:
    """Return True for failures that say the server cannot serve now, rather than that the request is bad."""
    if isinstance(err, RequestRejected):
        return False
    return isinstance(err, CannotConnect | BackendTimeout | ServerError | ServerUnavailable | ModelNotFound)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerStatus:
    """What a diagnostic sensor shows about one server of the list (secret-free)."""

    index: int
    base_url: str
    model: str
    healthy: bool
    active: bool
    consecutive_failures: int
    last_error: str | None
    next_probe_in_s: float | None
    key_refused: bool


class _Server:
    """One server of the list with its own slots, health and probe schedule."""

    def __init__(self, index: int, backend: OpenAICompatBackend) -> None:
        """Start healthy: a server is trusted until it fails."""
        self.index = index
        self.backend = backend
        self.slots = asyncio.Semaphore(backend.max_concurrency)
        self.healthy = True
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.next_probe_at = 0.0
        # Set when the server refuses its key, cleared only when it answers with it again.
        self.key_refused = False

    def mark_key_refused(self, err: InvalidAuth, *, now: float, probe_interval_s: float) -> None:
        """Take the server out of rotation until its key works: probed rarely, not with a growing back-off."""
        self.healthy = False
        self.key_refused = True
        self.last_error = err.reason
        self.next_probe_at = now + probe_interval_s

    def mark_down(
        self, err: BackendError, *, now: float, first_interval_s: float, max_interval_s: float
    ) -> None:
        """Take the server out of rotation and schedule its next probe with a doubling back-off."""
        self.healthy = False
        self.consecutive_failures += 1
        self.last_error = err.reason
        # The exponent is capped: a server down for days must not overflow the float.
        backoff = min(first_interval_s * 2.0 ** min(self.consecutive_failures - 1, 30), max_interval_s)
        # A server's own Retry-After is a better guess than ours, within our bounds.
        if err.retry_after is not None:
            backoff = min(max(backoff, err.retry_after), max_interval_s)
        self.next_probe_at = now + backoff

    def mark_answering(self) -> None:
        """Put the server back in rotation after it answered a request."""
        self.healthy = True
        self.consecutive_failures = 0
        self.last_error = None


class FailoverBackend:
    """A VisionBackend over an ordered list of OpenAI-compatible servers, the first healthy one serving."""

    def __init__(
        self,
        backends: Sequence[OpenAICompatBackend],
        *,
        probe_interval_s: float = PROBE_INTERVAL_S,
        max_probe_interval_s: float = MAX_PROBE_INTERVAL_S,
        auth_probe_interval_s: float = AUTH_PROBE_INTERVAL_S,
        start_task: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]] | None = None,
    ) -> None:
        """Keep the servers in order of preference; nothing is sent until a call is made.

        start_task runs the background prober (Home Assistant passes its background-task helper so the
        task belongs to the entry); by default it is a plain asyncio task.
        """
        if not backends:
            raise ValueError("a failover backend needs at least one server")
        self._servers = [_Server(index, backend) for index, backend in enumerate(backends)]
        self._probe_interval_s = max(0.01, probe_interval_s)
        self._max_probe_interval_s = max(self._probe_interval_s, max_probe_interval_s)
        self._auth_probe_interval_s = max(0.01, auth_probe_interval_s)
        self._stats = BackendStats()
        self._closed = False
        self._wake_prober = asyncio.Event()
        self._prober: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[], None]] = []
        self._auth_listeners: list[Callable[[int, bool], None]] = []
        self._start_task = start_task or (lambda coro, name: asyncio.create_task(coro, name=name))
        self._reported_active: int | None = 0

    @property
    def model(self) -> str:
        """Return the model of the server that serves now (the preferred one when none does)."""
        return self._servers[self.active_index if self.active_index is not None else 0].backend.model

    @property
    def max_concurrency(self) -> int:
        """Return the most requests any one server takes at once; each server keeps its own limit."""
        return max(server.backend.max_concurrency for server in self._servers)

    @property
    def active_max_concurrency(self) -> int:
        """Return the limit of the server that serves now (the preferred one's when none does)."""
        active = self.active_index
        return self._servers[active if active is not None else 0].backend.max_concurrency

    @property
    def stats(self) -> BackendStats:
        """Return the running counters over all servers."""
        return self._stats

    @property
    def logprobs_support(self) -> str:
        """Return whether the server that serves now (the preferred one when none does) gives log-probabilities."""
        serving = self.active_index
        return self._servers[serving if serving is not None else 0].backend.logprobs_support

    @property
    def active_index(self) -> int | None:
        """Return the position of the server that serves now, or None when every server is down."""
        return next((server.index for server in self._servers if server.healthy), None)

    def servers(self) -> list[ServerStatus]:
        """Return each server's state, in order of preference."""
        now = time.monotonic()
        active = self.active_index
        return [
            ServerStatus(
                index=server.index,
                base_url=redact_url(server.backend.base_url),
                model=server.backend.model,
                healthy=server.healthy,
                active=server.index == active,
                consecutive_failures=server.consecutive_failures,
                last_error=server.last_error,
                next_probe_in_s=None if server.healthy else max(0.0, server.next_probe_at - now),
                key_refused=server.key_refused,
            )
            for server in self._servers
        ]

    def diagnostics(self) -> dict[str, Any]:
        """Return secret-free facts about every server and which one serves."""
        return {
            "kind": "failover",
            "active_index": self.active_index,
            "servers": [
                {**asdict(status), "backend": server.backend.diagnostics()}
                for status, server in zip(self.servers(), self._servers, strict=True)
            ],
            "stats": self._stats.as_dict(),
        }

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call listener whenever the active server changes; return a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def add_auth_listener(self, listener: Callable[[int, bool], None]) -> Callable[[], None]:
        """Call listener(index, refused) when a server starts or stops refusing its key; return its remover."""
        self._auth_listeners.append(listener)
        return lambda: self._auth_listeners.remove(listener)

    async def async_start(self) -> None:
        """Check every server at once; succeed when any answers, else raise the preferred one's error.

        InvalidAuth is raised only when every server refuses its key; a server that refuses it while another
        answers is reported to the auth listeners.
        """
        results = await asyncio.gather(
            *(self._probe(server) for server in self._servers), return_exceptions=True
        )
        errors: list[BackendError] = []
        for server, result in zip(self._servers, results, strict=True):
            if isinstance(result, BaseException):
                err = result if isinstance(result, BackendError) else BackendError(type(result).__name__)
                self._mark_down(server, err)
                errors.append(err)
        if len(errors) == len(self._servers):
            raise next((err for err in errors if not isinstance(err, InvalidAuth)), errors[0])
        self._ensure_prober()
        self._changed()

    async def async_close(self) -> None:
        """Stop probing and serving; the servers' HTTP session is left open for its owner.

        A caller cancelled while the prober winds down stays cancelled (only the prober's own end is quiet).
        """
        self._closed = True
        prober, self._prober = self._prober, None
        try:
            if prober is not None:
                prober.cancel()
                try:
                    await prober
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise
        finally:
            for server in self._servers:
                await server.backend.async_close()

    async def async_complete(self, request: VisionRequest) -> VisionReply:
        """Answer through the first healthy server; see the module docstring for what a failure does."""
        if self._closed:
            raise BackendClosed("backend is closed")
        return await self._stats.count(self._complete(request))

    async def _complete(self, request: VisionRequest) -> VisionReply:
        """Send the request to one server, moving on only while servers prove they did no work on it."""
        for server in self._servers:
            if not server.healthy:
                continue
            try:
                reply = await self._complete_on(server, request)
            except _SkippedServer:
                # Marked down while this request waited for its slot: it sent nothing there.
                continue
            except (ServerUnreachable, InvalidAuth) as err:
                # The request never reached this server, or was refused before any work: the next one may
                # take it without repeating work.
                self._server_failed(server, err)
                self._stats.retries += 1
                continue
            except BackendError as err:
                if is_server_fault(err):
                    self._server_failed(server, err)
                raise
            if server.consecutive_failures:
                server.mark_answering()
            return reply
        if all(server.key_refused for server in self._servers):
            raise InvalidAuth("every model server refuses its key")
        raise CannotConnect("no model server is answering", retry_after=self._time_to_next_probe())

    async def _complete_on(self, server: _Server, request: VisionRequest) -> VisionReply:
        """Take one of the server's slots, then ask it within the server's timeout (the slot wait is not timed)."""
        async with server.slots:
            if not server.healthy:
                raise _SkippedServer
            timeout_s = server.backend.timeout_s
            try:
                async with asyncio.timeout(timeout_s):
                    return await server.backend.async_complete(request)
            except TimeoutError as err:
                raise BackendTimeout(f"no answer within {timeout_s:g} s") from err

    def _server_failed(self, server: _Server, err: BackendError) -> None:
        """Take a server that failed a request out of rotation (once per outage) and log the switch."""
        if not server.healthy:
            # Another request already found it down; its probe is scheduled.
            return
        self._mark_down(server, err)
        following = self.active_index
        _LOGGER.warning(
            "Model server %d (%s) %s; %s",
            server.index + 1,
            redact_url(server.backend.base_url),
            "refuses its API key" if server.key_refused else f"failed ({err.reason})",
            "no other server answers" if following is None else f"using server {following + 1}",
        )
        self._ensure_prober()
        self._changed()

    def _mark_down(self, server: _Server, err: BackendError) -> None:
        """Mark a server down with the next probe scheduled, and wake the prober to see the new schedule."""
        now = time.monotonic()
        if isinstance(err, InvalidAuth):
            was_refused = server.key_refused
            server.mark_key_refused(err, now=now, probe_interval_s=self._auth_probe_interval_s)
            if not was_refused:
                self._notify(self._auth_listeners, server.index, True)
        else:
            server.mark_down(
                err,
                now=now,
                first_interval_s=self._probe_interval_s,
                max_interval_s=self._max_probe_interval_s,
            )
        self._wake_prober.set()

    def _ensure_prober(self) -> None:
        """Start the background prober unless it runs (or the backend is closed)."""
        if self._prober is None and not self._closed:
            self._prober = self._start_task(self._probe_loop(), "miloco failover prober")

    def _time_to_next_probe(self) -> float | None:
        """Return the seconds until the next server is probed, or None when none is scheduled."""
        waiting = [server.next_probe_at for server in self._servers if not server.healthy]
        return max(0.0, min(waiting) - time.monotonic()) if waiting else None

    async def _probe_loop(self) -> None:
        """Probe the servers that are down when each is due, until closed."""
        while not self._closed:
            wait = self._time_to_next_probe()
            self._wake_prober.clear()
            if wait is None or wait > 0:
                # Sleep until the next probe is due, or until another server fails (it may be due sooner).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake_prober.wait()
                continue
            now = time.monotonic()
            due = [server for server in self._servers if not server.healthy and server.next_probe_at <= now]
            await asyncio.gather(*(self._probe_in_background(server) for server in due))

    async def _probe_in_background(self, server: _Server) -> None:
        """Probe one server that is down, and put it back or push its next probe out."""
        try:
            await self._probe(server)
        except BackendError as err:
            self._mark_down(server, err)
            return
        except Exception as err:  # the prober must outlive any surprise; the log keeps it
            _LOGGER.exception("Unexpected error probing model server %d", server.index + 1)
            self._mark_down(server, BackendError(type(err).__name__))
            return
        _LOGGER.info(
            "Model server %d (%s) answers again", server.index + 1, redact_url(server.backend.base_url)
        )
        if server.key_refused:
            server.key_refused = False
            self._notify(self._auth_listeners, server.index, False)
        self._changed()

    async def _probe(self, server: _Server) -> None:
        """Ask a server for its models (never a chat request); mark it healthy or raise why it cannot serve."""
        models = await server.backend.async_list_models()
        if models and server.backend.model not in models:
            raise ModelNotFound(f"server {server.index + 1} does not serve model {server.backend.model!r}")
        server.healthy = True

    def _changed(self) -> None:
        """Tell the listeners when the active server is another one than last told."""
        active = self.active_index
        if active == self._reported_active:
            return
        self._reported_active = active
        self._notify(self._listeners)

    @staticmethod
    def _notify(listeners: Sequence[Callable[..., None]], *args: object) -> None:
        """Call each listener; one that fails is logged, and neither the request nor the prober ends with it."""
        for listener in list(listeners):
            try:
                listener(*args)
            except Exception:
                _LOGGER.exception("A failover listener failed")


class _SkippedServer(Exception):
    """The server was marked down while a request waited for its slot; the request goes to the next one."""


if TYPE_CHECKING:
    # mypy proves here that the failover backend fulfils the VisionBackend protocol.
    def _as_vision_backend(backend: FailoverBackend) -> VisionBackend:
        return backend
