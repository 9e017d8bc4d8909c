"""Past one model server: cameras at a fixed check rate against 1, 2 and 4 servers behind a real router.

Each server is benchmarks/model_sim.py with ONE slot and a fixed service time (the cost model's fixed part
only: a GPU that takes the same time for every check). Debian's HAProxy runs in front of them with the
configuration docs/scaling.md recommends (testkit/router.py writes it: least connections, one request at a
time per server, the rest queued, a failed request retried on another server). One entry points at the
router, with "requests at once" set to the router's total (servers × 1), and watches the busy room on
every camera with the camera flow's defaults (a check due every `check_interval`), so the cameras offer
more checks than four servers can serve; the figures are the checks per second served and the checks skipped because every
slot was taken, against the number of servers. Then, with two servers, the first is killed (SIGKILL) while
it serves a request: how long until every check in flight at that moment had its answer, how long until the
router marked the server down, and how many checks failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
import subprocess
import tempfile
import time
from typing import Any, Final, Protocol

from homeassistant.core import HomeAssistant

from benchmarks.costmodel import CostModel
from benchmarks.meter import Meter, percentile
from benchmarks.ours import Ours, WatcherCounters
from benchmarks.scenes import BenchCamera, Scene, camera_entity_id
from custom_components.miloco.settings import CHECK_INTERVAL
from testkit.router import HAProxyRouter, haproxy_binary

# Camera j starts this far into the busy room's loop (so that the cameras do not show the same frame).
OFFSET_STEP_S: Final = 7.25
# How often the router's stats are read while waiting for it to mark the killed server down.
POLL_S: Final = 0.05
# At most this long to wait for the victim to be serving a request before killing it anyway.
BUSY_WAIT_S: Final = 3.0


class SimServer(Protocol):
    """A simulated model server process (benchmarks.bench.ModelServer: made from a cost model and slots)."""

    port: int

    def start(self) -> None:
        """Start it and wait until it listens."""

    def stop(self) -> None:
        """Stop it gracefully."""

    def kill(self) -> None:
        """Kill it at once, as a crash would."""


@dataclass(frozen=True, slots=True)
class ScalingPlan:
    """What the scaling section measures."""

    servers: tuple[int, ...] = (1, 2, 4)
    cameras: int = 12
    service_s: float = 1.0
    warmup_s: float = 4.0
    duration_s: float = 20.0
    failover_servers: int = 2
    before_kill_s: float = 8.0
    after_kill_s: float = 12.0

    @property
    def offered_checks_per_s(self) -> float:
        """Return the checks per second the cameras ask for (every check is due: the room is busy)."""
        return self.cameras / CHECK_INTERVAL.default


async def async_scaling(
    hass: HomeAssistant,
    cameras: Sequence[BenchCamera],
    scene: Scene,
    plan: ScalingPlan,
    *,
    start_server: Callable[[CostModel, int], SimServer],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Run the throughput rows and the failover run; return the section of the results."""
    try:
        binary = haproxy_binary()
    except RuntimeError as err:
        return {"skipped": str(err)}
    version = await hass.async_add_executor_job(_haproxy_version, binary)
    bench = _Bench(hass, list(cameras[: plan.cameras]), scene, plan, start_server)
    rows = []
    for servers in plan.servers:
        progress(
            f"scaling: {plan.cameras} cameras, {servers} server(s) behind HAProxy, {plan.duration_s:g} s"
        )
        rows.append(await bench.throughput(servers))
    base = rows[0]["checks_per_s"] / rows[0]["servers"] if rows and rows[0]["checks_per_s"] else None
    for row in rows:
        row["speedup_per_server"] = round(row["checks_per_s"] / row["servers"] / base, 3) if base else None
    progress(f"scaling: failover, {plan.failover_servers} servers, the first killed mid-run")
    failover = await bench.failover(plan.failover_servers)
    return {
        "router": version,
        "plan": asdict(plan),
        "offered_checks_per_s": plan.offered_checks_per_s,
        "rows": rows,
        "failover": failover,
    }


class _Bench:
    """Runs one deployment (servers, router, an entry on it) at a time."""

    def __init__(
        self,
        hass: HomeAssistant,
        cameras: list[BenchCamera],
        scene: Scene,
        plan: ScalingPlan,
        start_server: Callable[[CostModel, int], SimServer],
    ) -> None:
        self.hass = hass
        self.cameras = cameras
        self.scene = scene
        self.plan = plan
        self.start_server = start_server
        # Every request costs the same: a GPU busy for service_s, whatever the frames.
        self.cost = CostModel.fixed(plan.service_s)

    async def throughput(self, count: int) -> dict[str, Any]:
        """Serve the cameras with `count` servers; return checks and skips per second."""
        async with (
            self._deployment(count) as (_servers, router),
            self._watching(router, count) as (ours, meter),
        ):
            await asyncio.sleep(self.plan.warmup_s)
            before, served_before = ours.counters(), await self._served(router)
            started = time.monotonic()
            await asyncio.sleep(self.plan.duration_s)
            ended = time.monotonic()
            after, served_after = ours.counters(), await self._served(router)
        seconds = ended - started
        delta = _delta(before, after)
        walls = [check.ended - check.started for check in meter.checks if started <= check.started < ended]
        return {
            "servers": count,
            "max_concurrent": count,
            "seconds": round(seconds, 2),
            "checks": delta.checks,
            "checks_per_s": round(delta.checks / seconds, 3),
            "skipped_busy": delta.skipped_busy,
            "skipped_busy_per_s": round(delta.skipped_busy / seconds, 3),
            "failures": delta.failures,
            # The share of the servers' time spent serving: 1.0 would be every slot busy all the time.
            "utilisation": round(delta.checks * self.plan.service_s / seconds / count, 3),
            # A camera's checks come this far apart on average (every camera is due every check_interval).
            "seconds_between_checks": round(len(self.cameras) * seconds / delta.checks, 2)
            if delta.checks
            else None,
            # From frames chosen to answer applied: the slot is held all along, the server busy for service_s.
            "check_s_p50": _round(percentile(walls, 50), 3),
            "requests_per_server": [served_after[name] - served_before.get(name, 0) for name in served_after],
        }

    async def failover(self, count: int) -> dict[str, Any]:
        """Kill the first of `count` servers while it serves a request; return what it cost."""
        async with (
            self._deployment(count) as (servers, router),
            self._watching(router, count) as (ours, meter),
        ):
            await asyncio.sleep(self.plan.warmup_s)
            window_start, before = time.monotonic(), ours.counters()
            await asyncio.sleep(self.plan.before_kill_s)
            victim_in_flight = await self._wait_until_busy(router, "gpu1")
            open_checks = [(check.camera, check.started) for check in meter.open_checks]
            at_kill = ours.counters()
            killed_at = time.monotonic()
            await self.hass.async_add_executor_job(servers[0].kill)
            down_at = await self._wait_until_down(router, "gpu1", killed_at + self.plan.after_kill_s)
            await asyncio.sleep(max(0.0, killed_at + self.plan.after_kill_s - time.monotonic()))
            ended, after = time.monotonic(), ours.counters()
            served = await self._served(router)
        answered = {(check.camera, check.started): check.ended for check in meter.checks}
        recovered = [answered[key] - killed_at for key in open_checks if key in answered]
        before_kill, after_kill = _delta(before, at_kill), _delta(at_kill, after)
        return {
            "servers": count,
            "killed_after_s": round(killed_at - window_start, 2),
            "in_flight_at_killed_server": victim_in_flight,
            "checks_in_flight": len(open_checks),
            "checks_lost": after_kill.failures,
            "in_flight_checks_answered": len(recovered),
            # From the kill until every check in flight at that moment had its answer (from any server).
            "failover_s": round(max(recovered), 3) if recovered else None,
            "router_marked_down_s": round(down_at - killed_at, 3) if down_at is not None else None,
            "checks_per_s_before": round(before_kill.checks / (killed_at - window_start), 3),
            "checks_per_s_after": round(after_kill.checks / (ended - killed_at), 3),
            "requests_per_server": list(served.values()),
        }

    @contextlib.asynccontextmanager
    async def _deployment(self, count: int) -> AsyncIterator[tuple[list[SimServer], HAProxyRouter]]:
        """Start `count` one-slot servers and HAProxy in front of them; stop everything afterwards."""
        run = self.hass.async_add_executor_job
        servers: list[SimServer] = []
        router: HAProxyRouter | None = None
        with tempfile.TemporaryDirectory(prefix="miloco-bench-router-") as directory:
            try:
                for _ in range(count):
                    server = self.start_server(self.cost, 1)
                    servers.append(server)
                    await run(server.start)
                router = await run(HAProxyRouter, Path(directory), [("127.0.0.1", s.port) for s in servers])
                await run(router.start)
                yield servers, router
            finally:
                if router is not None:
                    await run(router.stop)
                for server in servers:
                    await run(server.stop)

    @contextlib.asynccontextmanager
    async def _watching(self, router: HAProxyRouter, count: int) -> AsyncIterator[tuple[Ours, Meter]]:
        """Show the busy room on the cameras and run an entry on the router allowing `count` at once."""
        meter = Meter(self.cost)
        shown_s = self.plan.warmup_s + max(
            self.plan.duration_s, self.plan.before_kill_s + self.plan.after_kill_s
        )
        offsets = [(index * OFFSET_STEP_S) % self.scene.period_s for index in range(len(self.cameras))]
        await self.hass.async_add_executor_job(_prerender, self.scene, offsets, shown_s + 10)
        for camera, offset in zip(self.cameras, offsets, strict=True):
            camera.show(self.scene, offset)
        ours = Ours(self.hass, router.url, meter, count)
        try:
            await ours.async_start([(camera_entity_id(index), 1) for index in range(len(self.cameras))])
            yield ours, meter
        finally:
            await ours.async_stop()
            for camera in self.cameras:
                camera.showing = None

    async def _served(self, router: HAProxyRouter) -> dict[str, int]:
        """Return how many requests the router has passed to each server so far."""
        stats = await self.hass.async_add_executor_job(router.stats)
        return {name: int(row["stot"] or 0) for name, row in stats.items()}

    async def _wait_until_busy(self, router: HAProxyRouter, server: str) -> int:
        """Wait (a little) until `server` serves a request; return how many it serves."""
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            stats = await self.hass.async_add_executor_job(router.stats)
            current = int(stats[server]["scur"] or 0)
            if current or time.monotonic() > deadline:
                return current
            await asyncio.sleep(POLL_S)

    async def _wait_until_down(self, router: HAProxyRouter, server: str, deadline: float) -> float | None:
        """Return when the router first reported `server` as not up (None: not before the deadline)."""
        while time.monotonic() < deadline:
            stats = await self.hass.async_add_executor_job(router.stats)
            if not stats[server]["status"].startswith("UP"):
                return time.monotonic()
            await asyncio.sleep(POLL_S)
        return None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _haproxy_version(binary: str) -> str:
    """Return "HAProxy 2.6.12-1+deb12u4" from the banner of `haproxy -v`."""
    banner = subprocess.run(  # noqa: S603 - Debian's haproxy
        [binary, "-v"], capture_output=True, text=True, check=False
    ).stdout.split()
    return f"HAProxy {banner[2]}" if len(banner) > 2 else "HAProxy"


def _prerender(scene: Scene, offsets: list[float], seconds: float) -> None:
    for offset in offsets:
        scene.prerender(offset, offset + seconds)


def _delta(before: dict[str, WatcherCounters], after: dict[str, WatcherCounters]) -> WatcherCounters:
    """Return the counters' growth summed over every camera."""
    total = WatcherCounters(0, 0, 0, 0)
    for camera, now in after.items():
        then = before.get(camera, WatcherCounters(0, 0, 0, 0))
        total.checks += now.checks - then.checks
        total.skipped_by_gate += now.skipped_by_gate - then.skipped_by_gate
        total.skipped_busy += now.skipped_busy - then.skipped_busy
        total.failures += now.failures - then.failures
    return total
