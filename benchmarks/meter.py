"""What the benchmark measures while a phase runs: requests, checks, events, loop lag, CPU and memory."""

from __future__ import annotations

from array import array
import asyncio
from collections.abc import Iterator, Sequence
import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
import gc
import math
import os
import sys
import time
from typing import Any

from benchmarks.costmodel import CostModel
from custom_components.miloco.engine.backends.base import VisionReply, VisionRequest

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the q-th percentile (0..100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rss_bytes() -> int:
    """Return the resident set size of this process."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:  # noqa: PTH123 - one tiny read
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        import resource  # noqa: PLC0415 - only where /proc is missing

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass(slots=True)
class RequestRecord:
    """One model request: which camera, when it was sent and answered, and what it cost."""

    camera: str
    started: float
    ended: float
    model_s: float
    image_tokens: int
    images: int


@dataclass(slots=True)
class CheckRecord:
    """One check that asked the model (all of its requests): start, end and the model time within."""

    camera: str
    started: float
    ended: float
    model_s: float
    requests: int
    image_tokens: int


@dataclass(slots=True)
class EventRecord:
    """A rule event in Home Assistant: camera, what it reports, when, and the model time of its request."""

    camera: str
    kind: str
    at: float
    model_s: float


class RecordLog[T]:
    """Records of one dataclass kept as columns (floats, integers, text as indices), read back as records.

    A phase notes tens of requests and checks a second at 32 cameras; as objects (a record and its floats, about
    250 bytes each) they grew the process by most of a megabyte a minute, which the memory slope counted as the
    integration's. As columns they take 8 bytes a field.
    """

    def __init__(self, kind: type[T]) -> None:
        """Keep records of the dataclass `kind`, whose fields are str, int or float."""
        self._kind = kind
        described = fields(kind)  # type: ignore[arg-type]
        self._names = [item.name for item in described]
        self._types = [str(item.type) for item in described]
        self._columns = [array({"float": "d", "int": "q", "str": "I"}[name]) for name in self._types]
        self._texts: list[str] = []
        self._text_index: dict[str, int] = {}

    def append(self, record: T) -> None:
        """Note a record."""
        for column, name, kind in zip(self._columns, self._names, self._types, strict=True):
            value = getattr(record, name)
            column.append(self._intern(value) if kind == "str" else value)

    def __len__(self) -> int:
        """Return how many records were noted."""
        return len(self._columns[0])

    def __iter__(self) -> Iterator[T]:
        """Yield the records, oldest first, as new instances of the dataclass."""
        for values in zip(*self._columns, strict=True):
            yield self._kind(
                *(
                    self._texts[value] if kind == "str" else value
                    for kind, value in zip(self._types, values, strict=True)
                )
            )

    def _intern(self, text: str) -> int:
        index = self._text_index.get(text)
        if index is None:
            index = self._text_index[text] = len(self._texts)
            self._texts.append(text)
        return index


@dataclass(slots=True, eq=False)
class OpenCheck:
    """A check in progress: its camera, start, and the requests it has made so far."""

    camera: str
    started: float
    requests: list[RequestRecord] = field(default_factory=list)


# The check the current task works for: requests made while it is set belong to it (tasks inherit it).
_CURRENT_CHECK: ContextVar[OpenCheck | None] = ContextVar("bench_current_check", default=None)


@dataclass(slots=True)
class Meter:
    """Collects the request, check and event records of one phase."""

    cost: CostModel
    requests: RecordLog[RequestRecord] = field(default_factory=lambda: RecordLog(RequestRecord))
    checks: RecordLog[CheckRecord] = field(default_factory=lambda: RecordLog(CheckRecord))
    events: RecordLog[EventRecord] = field(default_factory=lambda: RecordLog(EventRecord))
    last_model_s: dict[str, float] = field(default_factory=dict)
    pending: dict[int, float] = field(default_factory=dict)
    open_checks: set[OpenCheck] = field(default_factory=set)
    # Per stage, (when it ended, how long it took) pairs, flat: 16 bytes a sample rather than a 112-byte tuple
    # of floats. Stages are timed per frame, and the meter's own growth counts in the process's memory slope.
    stages: dict[str, array[float]] = field(default_factory=dict)

    def record_request(
        self, camera: str, started: float, ended: float, reply: VisionReply, images: int
    ) -> float:
        """Note a request answered; return its model time, recomputed from the usage the server reported."""
        image_tokens = reply.usage.prompt_tokens or 0
        model_s = self.cost.model_time(image_tokens, reply.usage.completion_tokens or 0)
        record = RequestRecord(camera, started, ended, model_s, image_tokens, images)
        self.requests.append(record)
        self.last_model_s[camera] = model_s
        if (check := _CURRENT_CHECK.get()) is not None:
            check.requests.append(record)
        return model_s

    def begin_check(self, camera: str) -> OpenCheck:
        """Start a check of `camera` in the current task: the requests made from here on belong to it."""
        check = OpenCheck(camera, time.monotonic())
        _CURRENT_CHECK.set(check)
        self.open_checks.add(check)
        return check

    def end_check(self, check: OpenCheck, *, concurrent: bool = False) -> None:
        """Close a check; its model time is the sum of its requests' (or the longest, if concurrent)."""
        self.open_checks.discard(check)
        _CURRENT_CHECK.set(None)
        if not check.requests:
            return
        times = [request.model_s for request in check.requests]
        model_s = max(times) if concurrent else sum(times)
        tokens = sum(request.image_tokens for request in check.requests)
        self.checks.append(
            CheckRecord(check.camera, check.started, time.monotonic(), model_s, len(check.requests), tokens)
        )

    def record_event(self, camera: str, kind: str, model_s: float | None = None) -> None:
        """Note a rule event now; without a model time, the camera's last request's is used."""
        if model_s is None:
            model_s = self.last_model_s.get(camera, 0.0)
        self.events.append(EventRecord(camera, kind, time.monotonic(), model_s))

    def record_stage(self, stage: str, seconds: float) -> None:
        """Note how long one stage of a check took, as it ends (one C call: threads never split a pair)."""
        self.stages.setdefault(stage, array("d")).extend((time.monotonic(), seconds))

    def stage_times(self, stage: str, start: float, end: float) -> list[float]:
        """Return the durations of a stage that ended within [start, end)."""
        pairs = self.stages.get(stage, array("d"))
        return [seconds for at, seconds in zip(pairs[::2], pairs[1::2], strict=True) if start <= at < end]

    def busy_before(self, moment: float) -> bool:
        """Return whether a request or check that started before `moment` is still running."""
        return any(started < moment for started in self.pending.values()) or any(
            check.started < moment for check in self.open_checks
        )


class MeteredBackend:
    """Passes requests to a backend and notes each one in the meter, for one camera."""

    def __init__(self, inner: Any, meter: Meter, camera: str) -> None:
        """Wrap `inner` (a VisionBackend) for `camera`."""
        self._inner = inner
        self._meter = meter
        self._camera = camera

    def __getattr__(self, name: str) -> Any:
        """Delegate everything else to the wrapped backend."""
        return getattr(self._inner, name)

    async def async_complete(self, request: VisionRequest) -> VisionReply:
        """Send the request and note it."""
        reply, _model_s = await self.async_complete_metered(request)
        return reply

    async def async_complete_metered(self, request: VisionRequest) -> tuple[VisionReply, float]:
        """Send the request, note it, and return the reply with its model time."""
        started = time.monotonic()
        key = id(request)
        self._meter.pending[key] = started
        try:
            reply: VisionReply = await self._inner.async_complete(request)
        finally:
            self._meter.pending.pop(key, None)
        ended = time.monotonic()
        model_s = self._meter.record_request(self._camera, started, ended, reply, len(request.frames))
        self._meter.record_stage("request_minus_model", ended - started - model_s)
        return reply, model_s


class LagTicker:
    """Measures how late the event loop wakes a coroutine that sleeps a fixed interval."""

    def __init__(self, interval_s: float = 0.01) -> None:
        """Tick every `interval_s`."""
        self.interval_s = interval_s
        # A hundred a second: kept flat (8 bytes each), for the same reason as Meter.stages.
        self.lags: array[float] = array("d")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start ticking."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bench lag ticker")

    async def stop(self) -> array[float]:
        """Stop ticking and return the lags, in seconds."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.lags

    async def _run(self) -> None:
        while True:
            due = time.monotonic() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.lags.append(max(0.0, time.monotonic() - due))


class ResourceSampler:
    """Samples the resident memory and Python's allocated blocks twice a second."""

    def __init__(self, interval_s: float = 0.5) -> None:
        """Sample every `interval_s`."""
        self.interval_s = interval_s
        self.samples: list[tuple[float, int, int]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling (one sample now)."""
        self._sample()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bench resource sampler")

    async def stop(self) -> list[tuple[float, int, int]]:
        """Stop sampling (one sample now) and return (time, RSS bytes, allocated blocks) samples."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample()
        return self.samples

    def _sample(self) -> None:
        self.samples.append((time.monotonic(), rss_bytes(), sys.getallocatedblocks()))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self._sample()


class GcPauses:
    """Records how long each garbage collection takes (they stop every thread that runs Python)."""

    def __init__(self) -> None:
        """Prepare; start() installs the callback."""
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0

    def start(self) -> None:
        """Start recording."""
        gc.callbacks.append(self._callback)

    def stop(self) -> list[tuple[int, float]]:
        """Stop recording; return (generation, seconds) of each collection."""
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._callback)
        return self.pauses

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info.get("generation", -1), time.perf_counter() - self._started))


def slope_per_minute(samples: Sequence[tuple[float, float]]) -> float | None:
    """Return the least-squares slope of (time s, value) samples, per minute."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return cov / var * 60
