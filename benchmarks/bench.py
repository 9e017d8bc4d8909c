"""The benchmark: Home Assistant in-process, K cameras × R rules, ours against two simulated baselines.

Run it with scripts/bench (which finds the project's oldest-HA venv), or `python -m benchmarks.bench` from
the repository root in a venv with Home Assistant and pytest-homeassistant-custom-component.

How it runs: one real Home Assistant (`homeassistant.core.HomeAssistant`, created by the HA test harness's
`async_test_home_assistant` helper, with in-memory registries and a temporary config directory, outside
pytest and without asyncio's debug mode) on HA's own event-loop policy. 32 camera entities serve
pre-encoded 1280×720 JPEG scenes by the clock. A simulated OpenAI-compatible model runs in a separate
process on loopback and answers after a cost-model delay (benchmarks/model_sim.py). Every phase runs ONE
policy on a set of cameras, in real time: a warm-up, then a measured window; per-hour figures are scaled
from the window. "ours" is the integration itself, set up as a config entry with camera and rule
subentries ("ours-tick": the same with a check at most every 2 s, the fixed tick of earlier versions);
"reference" and "naive" are simulations (benchmarks/baselines.py) running as asyncio tasks in
the same Home Assistant, fed by the same camera entities.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
import contextlib
import cProfile
from dataclasses import dataclass, field, replace
import datetime as dt
import gc
import json
import logging
import os
from pathlib import Path
import platform
import pstats
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Any, Final

from homeassistant import loader, runner
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import frame
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from pytest_homeassistant_custom_component.common import async_test_home_assistant

from benchmarks import limits, prepare_micro, real_hass_wave, report
from benchmarks.baselines import BASELINE_EVENT, BaselineCamera
from benchmarks.conditions import RULE_CONDITIONS
from benchmarks.costmodel import CostModel
from benchmarks.llama_compare import async_compare
from benchmarks.meter import GcPauses, LagTicker, Meter, ResourceSampler, percentile, slope_per_minute
from benchmarks.ours import FIXED_TICK_S, OURS_CHECK_INTERVAL_S, RULE_KINDS, Ours
from benchmarks.scaling import ScalingPlan, async_scaling
from benchmarks.scenes import (
    SCENARIOS,
    BenchCamera,
    Scene,
    Showing,
    async_add_cameras,
    build_scenes,
    camera_entity_id,
)
from benchmarks.work_conserving import WAVE_SCENARIOS, compare, wave_target
from custom_components.miloco import frame_intake as frame_intake_module
from custom_components.miloco.engine.backends.openai_compat import OpenAICompatBackend
from custom_components.miloco.settings import CHECK_INTERVAL, HEARTBEAT

REPO: Final = Path(__file__).resolve().parent.parent
POLICIES: Final = ("ours", "ours-tick", "reference", "naive")
# The scenario table runs these on every scene, and ours-tick too where the scene keeps changing (WAVE_SCENARIOS).
EVERY_SCENE_POLICIES: Final = ("ours", "reference", "naive")
FIGURES: Final = (
    "requests_per_camera_hour",
    "requests_per_check",
    "image_tokens_per_request",
    "image_tokens_per_check",
    "image_tokens_per_camera_hour",
    "latency_minus_model_ms",
    "check_overhead_ms",
    "loop_lag_ms",
    "cpu_s_per_camera_hour",
    "memory",
)
# Camera j of a group starts this far into its scene's loop (spreads the episodes over the cameras).
OFFSET_STEP_S: Final = 7.25
# An episode shown less than this before the end of the window is not counted as missed.
GRACE_S: Final = 4.0
# An event more than this after an episode's first frame does not answer it.
MATCH_WINDOW_S: Final = 12.0
SCHEMA_VERSION: Final = 1
# "Memory flat": thresholds of the target.
# A 45 s window resolves RSS growth to about ±2 MB/min; tracemalloc only says where the growth is.
MEMORY_SLOPE_FLAT: Final = 2.0
# Frames are rendered ahead for the warm-up, the window and this much more (set-up, draining).
PRERENDER_MARGIN_S: Final = 8.0
# At most this long after a window for the checks that started in it to finish.
DRAIN_S: Final = 20.0

_LOGGER = logging.getLogger("benchmarks")


@dataclass(frozen=True, slots=True)
class Group:
    """Cameras showing one scenario, each with the same number of rules."""

    scenario: str
    cameras: int
    rules: int


@dataclass(frozen=True, slots=True)
class PhaseSpec:
    """One policy on a set of camera groups, for a warm-up and a measured window."""

    name: str
    policy: str
    groups: tuple[Group, ...]
    warmup_s: float
    duration_s: float
    profile: bool = False
    tracemalloc: bool = False
    # A variant of ours, kept out of the scenario table and the sweeps (its own sections show it).
    variant: str | None = None
    # A model server of the phase's own that answers every request in this many seconds (else the cost model).
    model_s: float | None = None
    # One entry per camera with this many requests at once (a camera alone on its server), else one entry.
    slots: int | None = None
    spare_slots: bool | None = None
    # Frames a camera at rest skips (frame_intake.REST_STRIDE); None keeps the integration's.
    rest_stride: int | None = None

    @property
    def cameras(self) -> int:
        """Return the number of cameras the phase watches."""
        return sum(group.cameras for group in self.groups)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run measures."""

    mode: str
    phases: tuple[PhaseSpec, ...]
    matrix_cameras: int
    matrix_rules: int
    target_cameras: int
    target_rules: int
    llama_rules: tuple[int, ...]
    llama_repeats: int
    # Run the phases at the same time on separate cameras (a smoke test's shortcut: counts stay per
    # policy, but CPU, lag and memory are then the sum of all of them).
    concurrent: bool = False
    # Past one server: 1, 2 and 4 one-slot servers behind HAProxy, and a failover (benchmarks/scaling.py).
    scaling: ScalingPlan | None = None
    # Checks of the frame-preparation micro-benchmark (benchmarks/prepare_micro.py); 0 skips it.
    prepare_checks: int = 0
    # Seconds of each slot setting of the busy wave in a real Home Assistant (benchmarks/real_hass_wave.py); 0 skips.
    real_hass_wave_s: float = 0.0
    # Seconds of each run of the resting cameras' wake-ups (benchmarks/wakeups.py, a process of its own); 0 skips.
    wakeups_s: float = 0.0


@dataclass(slots=True)
class Settings:
    """The run's parameters."""

    plan: Plan
    cost: CostModel
    max_concurrent: int = 16
    server_slots: int = 0
    llama: bool = True
    out_dir: Path = field(default_factory=lambda: REPO / "benchmarks")
    command: str = ""


def default_plan(
    warmup_s: float = 3.0,
    duration_s: float = 16.0,
    target_s: float = 45.0,
    wave_s: float = 40.0,
    scale_s: float = 20.0,
) -> Plan:
    """Return the default run (about 26 minutes on two cores).

    - idle: Home Assistant with the cameras and nothing watching them (the CPU and lag floor);
    - the scenario table: every scenario × policy at 4 cameras × 5 rules, one phase each; where the scene
      keeps changing (busy, gestures) ours and ours-tick (the fixed 2 s tick) side by side, measured for
      `wave_s` so that their latency percentiles rest on a dozen episodes or more;
    - a mixed home: one camera per scenario (ours), where cameras take turns at the backend;
    - requests per check against R: busy room, 4 cameras, R = 1 and 10, ours and reference (short windows:
      the figure is a count);
    - scale: ours in the busy room at 1, 16 and 32 cameras × 5 rules (32 × 5 measured longest), the
      reference at 32 × 5, and ours at 32 × 5 once more under tracemalloc for the allocation growth.
    """
    phases: list[PhaseSpec] = [PhaseSpec("idle", "idle", (), 1.0, 5.0)]
    phases += [
        PhaseSpec(f"{scenario}-{policy}-4x5", policy, (Group(scenario, 4, 5),), warmup_s, seconds)
        for scenario in SCENARIOS
        for policy, seconds in _matrix_policies(scenario, duration_s, wave_s)
    ]
    mixed = tuple(Group(scenario, 1, 5) for scenario in SCENARIOS)
    phases.append(PhaseSpec("mixed-ours-4x5", "ours", mixed, warmup_s, duration_s))
    phases += [
        PhaseSpec(f"busy-{policy}-4x{rules}", policy, (Group("busy", 4, rules),), warmup_s, 8.0)
        for policy in ("ours", "reference")
        for rules in (1, 10)
    ]
    phases += [
        PhaseSpec(f"busy-ours-{cameras}x5", "ours", (Group("busy", cameras, 5),), warmup_s, 12.0)
        for cameras in (1, 16)
    ]
    phases.append(PhaseSpec("busy-ours-32x5", "ours", (Group("busy", 32, 5),), warmup_s, target_s))
    phases.append(PhaseSpec("busy-reference-32x5", "reference", (Group("busy", 32, 5),), warmup_s, 12.0))
    phases.append(PhaseSpec("busy-ours-64x5", "ours", (Group("busy", 64, 5),), warmup_s, scale_s))
    phases += variant_phases(warmup_s, duration_s, wave_s)
    phases.append(
        PhaseSpec(
            # A longer warm-up: the registries' delayed saves (10 s) cache storage fragments once.
            "busy-ours-32x5-tracemalloc",
            "ours",
            (Group("busy", 32, 5),),
            12.0,
            20.0,
            tracemalloc=True,
        )
    )
    return Plan(
        "default",
        tuple(phases),
        4,
        5,
        32,
        5,
        (1, 5, 10),
        3,
        scaling=ScalingPlan(),
        prepare_checks=60,
        real_hass_wave_s=REAL_HASS_WAVE_S,
        wakeups_s=WAKEUPS_S,
    )


# The busy-wave phases: cameras alone on a server of one or two slots, with the cost model's server and one
# that takes 1.5 s per request (a 7B model on a home GPU); spare slots on (they need a second slot to act).
WAVE_MODEL_S: Final = 1.5
WAVE_CAMERAS: Final = 8
# Seconds of the still room's phases (limits.STILL_CAMERAS cameras each): one heartbeat period, so that each
# camera's heartbeat check (the default, once a minute) falls in the window once, as it does each minute of
# an hour. A still room's CPU per camera-hour includes what its heartbeat costs.
STILL_S: Final = HEARTBEAT.default
# The still room is measured at rest: after the first check and the window of frames prepared for the next.
STILL_WARMUP_S: Final = 6.0
# Six episodes a camera, 24 a slot setting, in the real Home Assistant's busy wave.
REAL_HASS_WAVE_S: Final = 72.0
# Each of the four runs of the resting cameras' wake-ups (spread or on the rest grid).
WAKEUPS_S: Final = 8.0


def variant_phases(warmup_s: float, duration_s: float, wave_s: float) -> list[PhaseSpec]:
    """Return the phases of ours' variants: the still room (ours, before resting, the reference), the busy wave."""
    cameras = limits.STILL_CAMERAS
    still = (Group("static", cameras, 5),)
    # Twice each, in the order ours, reference, reference, ours: the machine's speed drifts over minutes (a
    # shared host), and this order cancels a steady drift from the comparison.
    phases = [
        PhaseSpec(
            f"static-{policy}-{cameras}x5{suffix}", policy, still, STILL_WARMUP_S, STILL_S, variant="still"
        )
        for policy, suffix in (("ours", ""), ("reference", ""), ("reference", "-2"), ("ours", "-2"))
    ]
    phases.append(
        PhaseSpec(
            f"static-ours-every-frame-{cameras}x5",
            "ours",
            still,
            STILL_WARMUP_S,
            STILL_S,
            variant="every-frame",
            rest_stride=1,
        )
    )
    phases.append(
        PhaseSpec(
            "gestures-ours-every-frame-4x5",
            "ours",
            (Group("gestures", 4, 5),),
            warmup_s,
            wave_s,
            variant="every-frame",
            rest_stride=1,
        )
    )
    for model_s, model in ((None, "cost"), (WAVE_MODEL_S, "1.5s")):
        phases += [
            PhaseSpec(
                f"busy-ours-{model}-{slots}slot-{WAVE_CAMERAS}x5",
                "ours",
                (Group("busy", WAVE_CAMERAS, 5),),
                warmup_s,
                wave_s,
                variant=f"wave-{model}-{slots}",
                model_s=model_s,
                slots=slots,
                spare_slots=True,
            )
            for slots in (1, 2)
        ]
    return phases


def _matrix_policies(scenario: str, duration_s: float, wave_s: float) -> list[tuple[str, float]]:
    """Return the policies the scenario table runs on a scenario, with their measured seconds."""
    if scenario not in WAVE_SCENARIOS:
        return [(policy, duration_s) for policy in EVERY_SCENE_POLICIES]
    return [(policy, wave_s if policy in OURS_CHECK_INTERVAL_S else duration_s) for policy in POLICIES]


def quick_plan(warmup_s: float = 3.0, duration_s: float = 5.0) -> Plan:
    """Return the quick run (about a minute): one phase per policy, one camera per scenario.

    Each phase watches five cameras at once: one per scenario with 3 rules, and a second busy room with 1
    rule (requests per check against R). The scenario rows share their phase's CPU, lag and memory.
    """
    groups = (*(Group(scenario, 1, 3) for scenario in SCENARIOS), Group("busy", 1, 1))
    phases = [PhaseSpec("idle", "idle", (), 0.5, 2.0)]
    phases += [PhaseSpec(f"mixed-{policy}", policy, groups, warmup_s, duration_s) for policy in POLICIES]
    return Plan("quick", tuple(phases), 1, 3, 1, 3, (1, 3), 1, prepare_checks=8)


# --- the simulated model server ----------------------------------------------------------------------


class ModelServer:
    """benchmarks/model_sim.py in a process of its own."""

    def __init__(self, cost: CostModel, slots: int) -> None:
        """Prepare; start() starts it."""
        self.cost = cost
        self.slots = slots
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """Return the root URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it listens."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "benchmarks.model_sim",
                "--fixed-ms",
                str(self.cost.fixed_s * 1000),
                "--image-token-ms",
                str(self.cost.per_image_token_s * 1000),
                "--output-token-ms",
                str(self.cost.per_output_token_s * 1000),
                "--slots",
                str(self.slots),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            env=env,
            text=True,
        )
        line = self._process.stdout.readline() if self._process.stdout is not None else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the simulated model server did not start: {line!r}")
        self.port = int(line.split()[1])

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash or a power cut would; stop() then only reaps it."""
        if self._process is not None:
            self._process.kill()

    def stop(self) -> None:
        """Stop the server (closing its standard input ends it)."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


# --- one phase ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Assigned:
    """A camera taking part in a phase."""

    entity_id: str
    group: int
    rules: int
    showing: Showing


@dataclass(slots=True)
class Context:
    """What every phase shares."""

    hass: HomeAssistant
    cameras: list[BenchCamera]
    scenes: dict[str, Any]
    server: ModelServer
    settings: Settings


class _Baselines:
    """The reference or naive pipeline on a set of cameras."""

    def __init__(self, hass: HomeAssistant, policy: str, server_url: str, meter: Meter) -> None:
        self.hass = hass
        self.policy = policy
        self.meter = meter
        self.backend = OpenAICompatBackend(
            async_get_clientsession(hass), base_url=server_url, model=f"bench-{policy}", max_concurrency=1024
        )
        self.cameras: list[BaselineCamera] = []
        self._unlisten: Callable[[], None] | None = None

    def start(self, cameras: list[tuple[str, int]]) -> None:
        self._unlisten = self.hass.bus.async_listen(BASELINE_EVENT, self._on_event)
        for entity_id, rules in cameras:
            watcher = BaselineCamera(
                self.hass,
                self.policy,
                entity_id,
                conditions=list(RULE_CONDITIONS[:rules]),
                backend=self.backend,
                meter=self.meter,
            )
            watcher.start()
            self.cameras.append(watcher)

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
        for watcher in self.cameras:
            await watcher.stop()

    def counters(self) -> dict[str, tuple[int, int]]:
        return {
            watcher.entity_id: (watcher.stats.evaluations, watcher.stats.gate_skips)
            for watcher in self.cameras
        }

    @callback
    def _on_event(self, event: Event) -> None:
        if event.data.get("policy") != self.policy:
            return
        kind = RULE_KINDS.get(int(event.data.get("rule", 0)), "other")
        self.meter.record_event(str(event.data["camera_entity_id"]), kind, float(event.data["model_s"]))


class _OursEntries:
    """Ours with one entry per camera, each alone on its slots, the entries started at random moments."""

    def __init__(self, entries: list[Ours], stagger_s: float) -> None:
        self.entries = entries
        self._stagger_s = stagger_s
        # Seeded: the same run meets the check cycles at the same (random) phases.
        self._random = random.Random(20)  # noqa: S311 - a benchmark's phases, not a secret

    async def async_start(self, watched: list[tuple[str, int]]) -> None:
        for ours, camera in zip(self.entries, watched, strict=True):
            await asyncio.sleep(self._random.uniform(0, self._stagger_s))
            await ours.async_start([camera])

    def counters(self) -> dict[str, Any]:
        return {camera: counter for ours in self.entries for camera, counter in ours.counters().items()}

    async def async_stop(self) -> None:
        for ours in self.entries:
            await ours.async_stop()


async def run_phase(ctx: Context, spec: PhaseSpec, first_camera: int = 0) -> dict[str, Any]:
    """Run one phase on the cameras from number `first_camera` on, and return its figures."""
    server_url = ctx.server.url
    own_server: ModelServer | None = None
    cost = ctx.settings.cost
    if spec.model_s is not None:
        cost = CostModel.fixed(spec.model_s)
        own_server = ModelServer(cost, 0)
        await asyncio.get_running_loop().run_in_executor(None, own_server.start)
        server_url = own_server.url
    stride = frame_intake_module.REST_STRIDE
    if spec.rest_stride is not None:
        frame_intake_module.REST_STRIDE = spec.rest_stride  # type: ignore[misc]
    try:
        return await _run_phase(ctx, spec, first_camera, server_url, Meter(cost))
    finally:
        frame_intake_module.REST_STRIDE = stride  # type: ignore[misc]
        if own_server is not None:
            await asyncio.get_running_loop().run_in_executor(None, own_server.stop)


def _ours(
    ctx: Context, spec: PhaseSpec, server_url: str, meter: Meter, cameras: int
) -> Ours | _OursEntries | None:
    """Return the integration as the phase runs it (one entry, or one per camera), or None for a baseline."""
    if spec.policy not in OURS_CHECK_INTERVAL_S:
        return None

    def entry(max_concurrent: int) -> Ours:
        return Ours(
            ctx.hass,
            server_url,
            meter,
            max_concurrent,
            check_interval_s=OURS_CHECK_INTERVAL_S[spec.policy],
            spare_slots=spec.spare_slots,
        )

    if spec.slots is None:
        return entry(ctx.settings.max_concurrent)
    return _OursEntries([entry(spec.slots) for _ in range(cameras)], spec.model_s or 1.0)


async def _run_phase(
    ctx: Context, spec: PhaseSpec, first_camera: int, server_url: str, meter: Meter
) -> dict[str, Any]:
    """Run one phase against the model at `server_url`, metered by `meter`."""
    assigned: list[Assigned] = []
    for index, group in enumerate(spec.groups):
        scene = ctx.scenes[group.scenario]
        for j in range(group.cameras):
            number = first_camera + len(assigned)
            showing = ctx.cameras[number].show(scene, (j * OFFSET_STEP_S) % scene.period_s)
            assigned.append(Assigned(camera_entity_id(number), index, group.rules, showing))
    watched = [(a.entity_id, a.rules) for a in assigned]
    # Render what the phase will show before it starts (rendering on the event loop would be measured).
    shown_s = spec.warmup_s + spec.duration_s + PRERENDER_MARGIN_S
    await asyncio.get_running_loop().run_in_executor(
        None, _prerender, [(a.showing.scene, a.showing.offset_s, shown_s) for a in assigned]
    )
    for a in assigned:
        a.showing.started = time.monotonic()
    if spec.tracemalloc:
        tracemalloc.start(1)
    started = time.monotonic()
    ours = _ours(ctx, spec, server_url, meter, len(watched))
    baselines: _Baselines | None = None
    if ours is not None:
        await ours.async_start(watched)
    elif spec.policy in ("reference", "naive"):
        baselines = _Baselines(ctx.hass, spec.policy, server_url, meter)
        baselines.start(watched)
    setup_s = time.monotonic() - started
    try:
        await asyncio.sleep(spec.warmup_s)
        before = ours.counters() if ours else baselines.counters() if baselines else {}
        window, process, extra = await _measure(spec)
        after = ours.counters() if ours else baselines.counters() if baselines else {}
        # Let the checks and requests that started in the window finish, so that they are counted.
        await _drain(meter, window[1])
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        if ours is not None:
            await ours.async_stop()
        if baselines is not None:
            await baselines.stop()
        for a in assigned:
            ctx.cameras[int(a.entity_id.rsplit("_", 1)[1])].showing = None
    m0, m1 = window
    process["cpu_s_per_camera_hour"] = (
        round(process["cpu_cores"] * 3600 / spec.cameras, 1) if spec.cameras else None
    )
    groups = []
    for index, group in enumerate(spec.groups):
        members = [a for a in assigned if a.group == index]
        figures = _group_figures(spec.policy, members, meter, window, before=before, after=after)
        groups.append({"scenario": group.scenario, "cameras": group.cameras, "rules": group.rules, **figures})
    result: dict[str, Any] = {
        "stages_ms": {stage: _summary(meter.stage_times(stage, m0, m1)) for stage in sorted(meter.stages)},
        "name": spec.name,
        "policy": spec.policy,
        "variant": spec.variant,
        "cameras": spec.cameras,
        "warmup_s": spec.warmup_s,
        "duration_s": round(m1 - m0, 3),
        "setup_s": round(setup_s, 2),
        "process": process,
        "groups": groups,
    }
    result.update(extra)
    return result


async def _drain(meter: Meter, end: float) -> None:
    """Wait (at most DRAIN_S) until the checks and requests that started before `end` have finished."""
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        if not meter.busy_before(end):
            return
        await asyncio.sleep(0.05)


def _prerender(jobs: list[tuple[Any, float, float]]) -> None:
    """Render the frames each camera will show: (scene, from scene time, for this many seconds)."""
    for scene, offset, seconds in jobs:
        scene.prerender(offset, offset + seconds)


async def _measure(spec: PhaseSpec) -> tuple[tuple[float, float], dict[str, Any], dict[str, Any]]:
    """Measure the process over the phase's window: CPU, loop lag, memory (and a profile, if asked)."""
    ticker, sampler, collections = LagTicker(), ResourceSampler(), GcPauses()
    profiler = cProfile.Profile() if spec.profile else None
    load_before = os.getloadavg()
    if spec.tracemalloc:
        # Tracing started before the set-up (run_phase): everything the entry holds is traced.
        first = tracemalloc.take_snapshot()
        types_before = _object_types()
    ticker.start()
    sampler.start()
    collections.start()
    m0, cpu0, loop0 = time.monotonic(), time.process_time(), time.thread_time()
    if profiler is not None:
        profiler.enable()
    await asyncio.sleep(spec.duration_s)
    if profiler is not None:
        profiler.disable()
    m1, cpu1, loop1 = time.monotonic(), time.process_time(), time.thread_time()
    pauses = collections.stop()
    lags = await ticker.stop()
    samples = await sampler.stop()
    extra: dict[str, Any] = {}
    if profiler is not None:
        extra["profile"] = _top_functions(profiler)
        if dump := os.environ.get("MILOCO_BENCH_PSTATS"):
            # For a closer look (pstats, snakeviz): the whole profile, not just its top rows.
            profiler.dump_stats(f"{dump}.{spec.name}")
    if spec.tracemalloc:
        extra["tracemalloc"] = _allocation_growth(first, tracemalloc.take_snapshot())
        extra["tracemalloc"]["object_growth"] = _type_growth(types_before, _object_types())
        tracemalloc.stop()
    rss = [(t, value / 2**20) for t, value, _ in samples]
    blocks = [(t, float(value)) for t, _, value in samples]
    middle = (m0 + m1) / 2
    process = {
        # Cores' worth of CPU the whole process used (the simulated model server runs elsewhere).
        "cpu_cores": round((cpu1 - cpu0) / (m1 - m0), 4),
        # The event loop's own thread: how busy the loop itself is (the rest is executor and C threads).
        "loop_thread_cpu_share": round((loop1 - loop0) / (m1 - m0), 3),
        "loop_lag_ms": {
            "p50": _ms(percentile(lags, 50)),
            "p99": _ms(percentile(lags, 99)),
            "max": _ms(max(lags, default=0.0)),
            "ticks": len(lags),
        },
        "memory": {
            "peak_rss_mb": round(max(value for _, value in rss), 1),
            "start_rss_mb": round(rss[0][1], 1),
            "end_rss_mb": round(rss[-1][1], 1),
            "growth_mb": round(rss[-1][1] - rss[0][1], 2),
            "slope_mb_per_min": _round(slope_per_minute(rss), 2),
            # Thread arenas and caches fill early on; the second half shows whether growth goes on.
            "second_half_slope_mb_per_min": _round(slope_per_minute([s for s in rss if s[0] >= middle]), 2),
            "blocks_growth": int(blocks[-1][1] - blocks[0][1]),
        },
        "gc": {
            "collections": len(pauses),
            "total_ms": _ms(sum(seconds for _, seconds in pauses)),
            "max_ms": _ms(max((seconds for _, seconds in pauses), default=0.0)),
            "full": sum(1 for generation, _ in pauses if generation == 2),
        },
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    return (m0, m1), process, extra


def _object_types() -> Counter[str]:
    """Return how many objects the garbage collector tracks, by type."""
    return Counter(f"{type(obj).__module__}.{type(obj).__qualname__}" for obj in gc.get_objects())


def _type_growth(before: Counter[str], after: Counter[str], count: int = 8) -> list[dict[str, Any]]:
    """Return the object types whose numbers grew most."""
    growth = after.copy()
    growth.subtract(before)
    ours = [
        (name, diff) for name, diff in growth.most_common() if diff > 0 and not name.startswith("benchmarks.")
    ]
    return [{"type": name, "count_diff": diff} for name, diff in ours[:count]]


def _allocation_growth(first: tracemalloc.Snapshot, last: tracemalloc.Snapshot) -> dict[str, Any]:
    """Return how much the traced allocations grew, without the benchmark's own, and where most."""
    ignore = (
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, f"{REPO / 'benchmarks'}/*"),
    )
    diff = last.filter_traces(ignore).compare_to(first.filter_traces(ignore), "lineno")
    growth = sum(stat.size_diff for stat in diff)
    # The benchmark's own records (the meter's samples) grow with the window too, and count in the RSS.
    own = (tracemalloc.Filter(True, f"{REPO / 'benchmarks'}/*"),)
    own_growth = sum(
        stat.size_diff for stat in last.filter_traces(own).compare_to(first.filter_traces(own), "lineno")
    )
    top = sorted(diff, key=lambda stat: stat.size_diff, reverse=True)[:8]
    return {
        "growth_kb": round(growth / 1024, 1),
        "benchmark_growth_kb": round(own_growth / 1024, 1),
        "top": [
            {
                "where": f"{_short_path(stat.traceback[0].filename)}:{stat.traceback[0].lineno}",
                "growth_kb": round(stat.size_diff / 1024, 1),
                "count_diff": stat.count_diff,
            }
            for stat in top
        ],
    }


def _top_functions(profiler: cProfile.Profile, count: int = 25) -> list[dict[str, Any]]:
    """Return the hot spots by own time (cProfile sees every thread on Python 3.12+)."""
    stats = pstats.Stats(profiler)
    rows = []
    for (path, line, name), (_calls, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "where": f"{_short_path(path)}:{line}({name})",
                "calls": ncalls,
                "own_s": round(tottime, 4),
                "cumulative_s": round(cumtime, 4),
            }
        )
    rows.sort(key=lambda row: row["own_s"], reverse=True)
    return rows[:count]


def _short_path(path: str) -> str:
    for marker in ("site-packages/", str(REPO) + "/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _group_figures(
    policy: str,
    members: list[Assigned],
    meter: Meter,
    window: tuple[float, float],
    *,
    before: dict[str, Any],
    after: dict[str, Any],
) -> dict[str, Any]:
    """Return the figures of one group of cameras over the window [m0, m1)."""
    m0, m1 = window
    cameras = {a.entity_id for a in members}
    hours = len(members) * (m1 - m0) / 3600
    requests = [r for r in meter.requests if r.camera in cameras and m0 <= r.started < m1]
    checks = [c for c in meter.checks if c.camera in cameras and m0 <= c.started < m1]
    tokens = sum(r.image_tokens for r in requests)
    latency, detection, visible = _latency(members, meter, m0, m1)
    overhead = [(c.ended - c.started - c.model_s) * 1000 for c in checks]
    # Per check from each check's own requests (a check may start in the window and ask after it).
    check_requests = sum(c.requests for c in checks)
    check_tokens = sum(c.image_tokens for c in checks)
    figures: dict[str, Any] = {
        "requests": len(requests),
        "checks": len(checks),
        "requests_per_camera_hour": round(len(requests) / hours, 1),
        "requests_per_check": _round(check_requests / len(checks), 3) if checks else None,
        "image_tokens_per_request": _round(tokens / len(requests), 1) if requests else None,
        "image_tokens_per_check": _round(check_tokens / len(checks), 1) if checks else None,
        "image_tokens_per_camera_hour": round(tokens / hours),
        "latency_minus_model_ms": {
            "p50": _ms(percentile(latency, 50)),
            "p90": _ms(percentile(latency, 90)),
            "p95": _ms(percentile(latency, 95)),
            "n": len(latency),
        },
        # The same from the moment the episode's first frame became the camera's current one: includes the
        # wait for the camera's next capture (longer for a camera at rest, which takes fewer frames).
        "visible_latency_minus_model_ms": {
            "p50": _ms(percentile(visible, 50)),
            "p90": _ms(percentile(visible, 90)),
            "p95": _ms(percentile(visible, 95)),
            "mean": _ms(sum(visible) / len(visible)) if visible else None,
            "n": len(visible),
        },
        "detection": detection,
        "check_overhead_ms": {
            "p50": _round(percentile(overhead, 50), 2),
            "p95": _round(percentile(overhead, 95), 2),
            "max": _round(max(overhead, default=None) if overhead else None, 2),
            "n": len(overhead),
        },
        "model_s_per_check": _round(sum(c.model_s for c in checks) / len(checks), 3) if checks else None,
        "heartbeat_requests_per_camera_hour": 0.0,
    }
    if policy in OURS_CHECK_INTERVAL_S:
        gate = sum(after[c].skipped_by_gate - before[c].skipped_by_gate for c in cameras if c in after)
        busy = sum(after[c].skipped_busy - before[c].skipped_busy for c in cameras if c in after)
        figures["skipped_by_gate"] = gate
        figures["skipped_busy"] = busy
        # The heartbeat (default 60 s) re-checks a static scene once a minute; the windows are shorter
        # than that, so it is added here by arithmetic, not measured.
        figures["heartbeat_requests_per_camera_hour"] = 3600 / HEARTBEAT.default
    elif policy in ("reference", "naive"):
        figures["skipped_by_gate"] = sum(after[c][1] - before[c][1] for c in cameras if c in after)
        figures["skipped_busy"] = 0
    return figures


def _latency(
    members: list[Assigned], meter: Meter, m0: float, m1: float
) -> tuple[list[float], dict[str, int], list[float]]:
    """Match events to episodes; return latencies minus model time, counts, and the same from first visible."""
    samples: list[float] = []
    visible: list[float] = []
    shown = detected = extra = 0
    for member in members:
        episodes = sorted(
            (first, key[0], key) for key, first in member.showing.first_shown.items() if first < m1
        )
        events = sorted(
            (e for e in meter.events if e.camera == member.entity_id and m0 <= e.at < m1), key=lambda e: e.at
        )
        matched: set[tuple[str, int, int]] = set()
        for event in events:
            candidates = [
                (first, key) for first, kind, key in episodes if kind == event.kind and first <= event.at
            ]
            if not candidates:
                extra += 1
                continue
            first, key = candidates[-1]
            if key in matched or event.at - first > MATCH_WINDOW_S:
                extra += 1
                continue
            matched.add(key)
            if first >= m0:
                samples.append(event.at - first - event.model_s)
                began = member.showing.first_visible.get(key, first)
                visible.append(event.at - began - event.model_s)
        counted = [
            key
            for first, kind, key in episodes
            if m0 <= first <= m1 - GRACE_S and kind in RULE_KINDS.values() and _asked(kind, member.rules)
        ]
        shown += len(counted)
        detected += sum(1 for key in counted if key in matched)
    return samples, {"episodes": shown, "detected": detected, "unmatched_events": extra}, visible


def _asked(kind: str, rules: int) -> bool:
    """Return whether a camera with `rules` rules has a rule for this kind of episode."""
    return any(RULE_KINDS.get(index) == kind for index in range(1, rules + 1))


def _summary(seconds: list[float]) -> dict[str, Any]:
    """Return p50, p95 and max of durations, in milliseconds."""
    return {
        "p50": _ms(percentile(seconds, 50)),
        "p95": _ms(percentile(seconds, 95)),
        "max": _ms(max(seconds, default=0.0)) if seconds else None,
        "n": len(seconds),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# --- the run --------------------------------------------------------------------------------------------


async def async_run(settings: Settings, *, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the plan and return the results (the caller writes them)."""
    plan = settings.plan
    started = time.monotonic()
    machine = machine_info()
    loop = asyncio.get_running_loop()
    needed = tuple(
        sorted(
            {group.scenario for phase in plan.phases for group in phase.groups}
            | ({"busy"} if plan.scaling else set())
        )
    )
    scenes = build_scenes(needed)
    prepare, wakeups = await _micro_benchmarks(plan, scenes, progress)
    server = ModelServer(settings.cost, settings.server_slots)
    await loop.run_in_executor(None, server.start)
    phases: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="miloco-bench-") as config_dir:
            async with async_test_home_assistant(config_dir=config_dir) as hass:
                hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
                frame.async_setup(hass)
                try:
                    sizes = [phase.cameras for phase in plan.phases]
                    count = sum(sizes) if plan.concurrent else max(sizes, default=1)
                    count = max(count, plan.scaling.cameras if plan.scaling else 0)
                    cameras = await async_add_cameras(hass, max(count, 1))
                    ctx = Context(hass, cameras, scenes, server, settings)
                    phases = await _run_phases(ctx, plan, progress)
                    server_totals = await _server_totals(hass, server.url)
                    scaling: dict[str, Any] | None = None
                    if plan.scaling is not None:
                        scaling = await async_scaling(
                            hass,
                            cameras,
                            scenes["busy"],
                            plan.scaling,
                            start_server=ModelServer,
                            progress=progress,
                        )
                finally:
                    await hass.async_stop(force=True)
    finally:
        await loop.run_in_executor(None, server.stop)
    real_hass: dict[str, Any] | None = None
    if plan.real_hass_wave_s:
        real_hass = await _real_hass_wave(
            scenes.get("busy") or build_scenes(("busy",))["busy"], plan, progress
        )
    llama: dict[str, Any] = {"skipped": "--no-llama"}
    if settings.llama:
        progress("llama.cpp server: combined versus per-condition requests")
        with tempfile.TemporaryDirectory(prefix="miloco-bench-llama-") as log_dir:
            llama = await async_compare(
                build_scenes(("gestures",))["gestures"],
                plan.llama_rules,
                Path(log_dir),
                repeats=plan.llama_repeats,
            )
    results = assemble(settings, machine, phases, llama, real_hass)
    results["prepare_micro"] = prepare
    results["wakeups"] = wakeups
    results["server_totals"] = server_totals
    results["scaling"] = scaling
    results["run_seconds"] = round(time.monotonic() - started, 1)
    return results


async def _real_hass_wave(scene: Scene, plan: Plan, progress: Callable[[str], None]) -> dict[str, Any]:
    """Run the busy wave with a 1.5 s model in a real Home Assistant process, on its own model server."""
    loop = asyncio.get_running_loop()
    server = ModelServer(CostModel.fixed(WAVE_MODEL_S), 0)
    await loop.run_in_executor(None, server.start)
    try:
        return await real_hass_wave.measure(
            scene,
            server.url,
            conditions=RULE_CONDITIONS[:5],
            window_s=plan.real_hass_wave_s,
            offset_step_s=OFFSET_STEP_S,
            match_window_s=MATCH_WINDOW_S,
            grace_s=GRACE_S,
            progress=progress,
        )
    finally:
        await loop.run_in_executor(None, server.stop)


async def _micro_benchmarks(
    plan: Plan, scenes: dict[str, Scene], progress: Callable[[str], None]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Run the frame-preparation and wake-up micro-benchmarks the plan asks for, before anything else runs."""
    prepare: dict[str, Any] | None = None
    if plan.prepare_checks:
        # On the busy room's frames (every frame differs).
        progress("frame preparation: per window against per frame")
        busy = scenes.get("busy") or build_scenes(("busy",))["busy"]
        prepare = await asyncio.get_running_loop().run_in_executor(
            None, _measure_prepare, busy, plan.prepare_checks
        )
    wakeups: dict[str, Any] | None = None
    if plan.wakeups_s:
        progress("resting cameras' wake-ups: clocks spread against the rest grid")
        wakeups = await _measure_wakeups(plan.wakeups_s)
    return prepare, wakeups


async def _measure_wakeups(seconds: float) -> dict[str, Any]:
    """Return benchmarks/wakeups.py's figures, measured in a process of its own (nothing else counted)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.wakeups",
        str(seconds),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"benchmarks.wakeups exited with {process.returncode}")
    figures: dict[str, Any] = json.loads(out)
    return figures


def _measure_prepare(scene: Scene, checks: int) -> dict[str, Any]:
    """Return the frame-preparation micro-benchmark on a scene's frames at 2 fps (every other slot)."""
    jpegs = [scene.frame(slot).jpeg for slot in range(0, scene.slots, 2)]
    return prepare_micro.measure(jpegs, checks)


async def _run_phases(ctx: Context, plan: Plan, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Run the plan's phases one after the other (or all at once, on separate cameras)."""
    if plan.concurrent:
        firsts = [sum(phase.cameras for phase in plan.phases[:i]) for i in range(len(plan.phases))]
        progress(f"phases {', '.join(phase.name for phase in plan.phases)} at once")
        return list(
            await asyncio.gather(
                *(run_phase(ctx, spec, first) for spec, first in zip(plan.phases, firsts, strict=True))
            )
        )
    results = []
    for spec in plan.phases:
        progress(f"phase {spec.name}: {spec.cameras} cameras, {spec.duration_s:g} s measured")
        results.append(await run_phase(ctx, spec))
    return results


async def _server_totals(hass: HomeAssistant, url: str) -> dict[str, Any]:
    async with async_get_clientsession(hass).get(f"{url}/bench/stats") as response:
        body: dict[str, Any] = await response.json()
        return body


def assemble(
    settings: Settings,
    machine: dict[str, Any],
    phases: list[dict[str, Any]],
    llama: dict[str, Any],
    real_hass: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the results document: the phases, the matrix, the sweeps, the ratios and the targets."""
    plan = settings.plan
    matrix: dict[str, dict[str, Any]] = {scenario: {} for scenario in SCENARIOS}
    sweeps: list[dict[str, Any]] = []
    idle = next((phase["process"] for phase in phases if phase["policy"] == "idle"), None)
    idle_cores = idle["cpu_cores"] if idle else 0.0
    for phase in phases:
        process = phase["process"]
        for group in phase["groups"]:
            row = {
                **group,
                **{key: process[key] for key in ("loop_lag_ms", "memory", "cpu_s_per_camera_hour")},
            }
            # Net of what Home Assistant (and the benchmark's own ticker) uses with nothing watching.
            row["cpu_s_per_camera_hour_net"] = round(
                (process["cpu_cores"] - idle_cores) * 3600 / phase["cameras"], 1
            )
            row["loop_thread_cpu_share"] = process["loop_thread_cpu_share"]
            row["stages_ms"] = phase["stages_ms"]
            row["phase"] = phase["name"]
            row["phase_cameras"] = phase["cameras"]
            row["shared_phase"] = len(phase["groups"]) > 1
            row["tracemalloc"] = "tracemalloc" in phase
            row["policy"] = phase["policy"]
            row["variant"] = phase.get("variant")
            sweeps.append(row)
            if row["tracemalloc"] or row["variant"]:
                continue
            if group["cameras"] == plan.matrix_cameras and group["rules"] == plan.matrix_rules:
                matrix[group["scenario"]].setdefault(phase["policy"], row)
    results: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "mode": plan.mode,
        "command": settings.command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine,
        "settings": {
            "cost_model": settings.cost.as_dict(),
            "max_concurrent": settings.max_concurrent,
            "server_slots": settings.server_slots,
            "frame": "1280x720 JPEG (quality 85, sensor noise sigma 2)",
            "capture_fps": 2,
            "matrix": f"{plan.matrix_cameras} cameras x {plan.matrix_rules} rules per scenario",
            "heartbeat_s": HEARTBEAT.default,
            # ours: the least time between the starts of two checks of a camera; ours-tick: the fixed tick.
            "check_interval_s": CHECK_INTERVAL.default,
            "fixed_tick_s": FIXED_TICK_S,
        },
        "policies": list(POLICIES),
        "scenarios": list(SCENARIOS),
        "figures": list(FIGURES),
        "idle": idle,
        "concurrent_phases": plan.concurrent,
        "matrix": matrix,
        "ratios": ratios(matrix),
        "work_conserving": compare(matrix),
        "runs": sweeps,
        "phases": phases,
        "llama": llama,
        "real_hass_wave": real_hass,
    }
    results["limits"] = {
        "still_room": limits.still_room(results),
        "busy_wave": limits.busy_wave(results),
        "real_hass_wave": limits.real_hass_wave(results),
        "scale": limits.scale(results),
    }
    results["targets"] = targets(results, plan)
    return results


RATIO_FIGURES: Final = (
    "requests_per_camera_hour",
    "image_tokens_per_request",
    "image_tokens_per_check",
    "image_tokens_per_camera_hour",
    "cpu_s_per_camera_hour",
)


def ratios(matrix: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Return ours ÷ baseline for the main figures, per scenario."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for scenario, row in matrix.items():
        ours = row.get("ours")
        if ours is None:
            continue
        out[scenario] = {}
        for baseline in ("reference", "naive"):
            other = row.get(baseline)
            if other is None:
                continue
            out[scenario][f"vs_{baseline}"] = {
                figure: _ratio(ours.get(figure), other.get(figure)) for figure in RATIO_FIGURES
            }
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 4)


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the runs that the sweep tables show: own phases (all of them in a quick run), no tracemalloc."""
    quick = results["mode"] == "quick"
    return [
        row
        for row in results["runs"]
        if not row["tracemalloc"] and not row.get("variant") and (quick or not row["shared_phase"])
    ]


def _find(
    results: dict[str, Any], policy: str, scenario: str, cameras: int, rules: int
) -> dict[str, Any] | None:
    return next(
        (
            row
            for row in table_rows(results)
            if row["policy"] == policy
            and row["scenario"] == scenario
            and row["cameras"] == cameras
            and row["rules"] == rules
        ),
        None,
    )


def targets(results: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    """Return each target of issues 5 and 13 with what was measured and whether it is met."""
    out: list[dict[str, Any]] = []
    per_check = {
        policy: {
            f"{row['cameras']}x{row['rules']}": row["requests_per_check"]
            for row in table_rows(results)
            if row["policy"] == policy and row["scenario"] == "busy" and row["requests_per_check"] is not None
        }
        for policy in ("ours", "reference")
    }
    out.append(
        {
            "id": "requests_per_check_independent_of_rules",
            "target": "ours: 1 request per check whatever R; the reference needs R",
            "measured": per_check,
            "met": bool(per_check["ours"])
            and all(value == 1 for value in per_check["ours"].values())
            and all(value == int(key.split("x")[1]) for key, value in per_check["reference"].items()),
        }
    )
    busy = results["matrix"].get("busy", {})
    ours_tokens = (busy.get("ours") or {}).get("image_tokens_per_check")
    reference_tokens = (busy.get("reference") or {}).get("image_tokens_per_request")
    saving = 1 - ours_tokens / reference_tokens if ours_tokens and reference_tokens else None
    out.append(
        {
            "id": "image_tokens_per_check_vs_reference",
            "target": ">= 30% fewer image tokens per check than the reference's window (same 6 frames), uncropped",
            "measured": {
                "ours_per_check": ours_tokens,
                "reference_per_window": reference_tokens,
                "saving": _round(saving, 4),
            },
            "met": saving is not None and saving >= 0.30,
        }
    )
    static = (results["matrix"].get("static", {}).get("ours")) or {}
    out.append(
        {
            "id": "static_room_no_requests",
            "target": "zero requests for a static room",
            "measured": {
                "gate_opened_requests_per_camera_hour": static.get("requests_per_camera_hour"),
                "heartbeat_requests_per_camera_hour": static.get("heartbeat_requests_per_camera_hour"),
            },
            "met": static.get("requests") == 0,
            "note": "the gate sent nothing; the default 60 s heartbeat still re-checks a static scene once a "
            "minute (set it to 0 to disable)",
        }
    )
    out.append(wave_target(results["matrix"]))
    big = _find(results, "ours", "busy", plan.target_cameras, plan.target_rules) or {}
    overhead = (big.get("check_overhead_ms") or {}).get("p95")
    lag = big.get("loop_lag_ms") or {}
    memory = big.get("memory") or {}
    scale = f"{plan.target_cameras} cameras x {plan.target_rules} rules, busy room, 2 fps"
    out.append(
        {
            "id": "overhead_p95_under_20ms",
            "target": f"integration overhead p95 < 20 ms per check at {scale}",
            "measured": big.get("check_overhead_ms"),
            "met": overhead is not None and overhead < 20,
        }
    )
    out.append(
        {
            "id": "loop_lag_under_10ms",
            "target": f"event-loop lag < 10 ms (p99) at {scale}",
            "measured": lag,
            "met": lag.get("p99") is not None and lag["p99"] < 10,
        }
    )
    slope = memory.get("second_half_slope_mb_per_min")
    traced = next(
        (row.get("tracemalloc") for row in results["phases"] if row.get("tracemalloc")),
        None,
    )
    measured = {
        "rss_growth_mb": memory.get("growth_mb"),
        "rss_second_half_slope_mb_per_min": slope,
        "traced_python_growth_kb": traced["growth_kb"] if traced else None,
    }
    flat = slope is not None and abs(slope) <= MEMORY_SLOPE_FLAT
    out.append(
        {
            "id": "memory_flat",
            "target": f"memory flat over the run at {scale}",
            "measured": measured,
            "met": flat,
            "note": f"flat: RSS slope over the second half of the window within ±{MEMORY_SLOPE_FLAT:g} MB/min, "
            "about what the window resolves (a slower leak needs a longer run: --target-duration 600); the "
            "tracemalloc phase shows where the traced Python allocations grew, for diagnosis",
        }
    )
    if plan.mode == "default":
        out += limits.targets(results, MEMORY_SLOPE_FLAT)
    return out


def machine_info() -> dict[str, Any]:
    """Return the CPU, cores, Python and Home Assistant versions, and the commit."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, as every script here
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],  # noqa: S607
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if dirty:
            commit += " (with uncommitted changes)"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "home_assistant": HA_VERSION,
        "platform": platform.platform(),
        "commit": commit,
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def write_results(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write results.json and results.md into `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    md_path.write_text(report.render(results), encoding="utf-8")
    return json_path, md_path


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """Return an event loop made as Home Assistant makes its own (its executor, no debug mode)."""
    create = getattr(runner, "create_event_loop", None)
    if create is not None:
        # Home Assistant 2026.x: asyncio's loop policies are deprecated.
        loop: asyncio.AbstractEventLoop = create(False)
        return loop
    return runner.HassEventLoopPolicy(False).new_event_loop()  # type: ignore[attr-defined]


def run(settings: Settings, *, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the benchmark on Home Assistant's own event-loop policy, without asyncio debug mode."""
    loop = _new_event_loop()
    try:
        return loop.run_until_complete(async_run(settings, progress=progress))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def parse_args(argv: Sequence[str]) -> Settings:
    """Return the settings the command line asks for."""
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: one camera per scenario, ~1 min")
    parser.add_argument("--warmup", type=float, help="seconds before each measured window")
    parser.add_argument("--duration", type=float, help="measured seconds per phase")
    parser.add_argument("--target-duration", type=float, help="measured seconds of the 32x5 phase")
    parser.add_argument(
        "--wave-duration",
        type=float,
        help="measured seconds of the busy and gestures phases of ours and ours-tick (default 40)",
    )
    parser.add_argument("--model-fixed-ms", type=float, default=50.0)
    parser.add_argument("--model-image-token-ms", type=float, default=0.3)
    parser.add_argument("--model-output-token-ms", type=float, default=10.0)
    parser.add_argument(
        "--server-slots", type=int, default=0, help="requests the model serves at once (0: any)"
    )
    parser.add_argument("--max-concurrent", type=int, default=16, help="our entry's max concurrent requests")
    parser.add_argument("--no-llama", action="store_true", help="skip the llama.cpp server comparison")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="",
        help="cProfile the 32x5 phase, or the phase named (not the default results)",
    )
    parser.add_argument(
        "--only",
        help="comma-separated phase names to run (for development; prepare-micro: the micro-benchmark)",
    )
    parser.add_argument("--out", type=Path, help="directory for results.json and results.md")
    args = parser.parse_args(argv)
    timing = {
        key: value for key, value in (("warmup_s", args.warmup), ("duration_s", args.duration)) if value
    }
    if args.quick:
        plan = quick_plan(**timing)
    else:
        if args.target_duration:
            timing["target_s"] = args.target_duration
        if args.wave_duration:
            timing["wave_s"] = args.wave_duration
        plan = default_plan(**timing)
    phases = plan.phases
    if args.only:
        wanted = set(args.only.split(","))
        phases = tuple(phase for phase in phases if phase.name in wanted or phase.policy == "idle")
        if "scaling" not in wanted:
            plan = replace(plan, scaling=None)
        if "prepare-micro" not in wanted:
            plan = replace(plan, prepare_checks=0)
        if "wakeups" not in wanted:
            plan = replace(plan, wakeups_s=0.0)
        elif not plan.wakeups_s:
            plan = replace(plan, wakeups_s=WAKEUPS_S)
        if "real-hass-wave" not in wanted:
            plan = replace(plan, real_hass_wave_s=0.0)
        elif not plan.real_hass_wave_s:
            plan = replace(plan, real_hass_wave_s=REAL_HASS_WAVE_S)
    if args.profile is not None:
        target = args.profile or f"busy-ours-{plan.target_cameras}x{plan.target_rules}"
        phases = tuple(replace(phase, profile=phase.name == target) for phase in phases)
    plan = replace(plan, phases=phases)
    default_out = (
        REPO / "benchmarks" if plan.mode == "default" and not args.only and args.profile is None else None
    )
    out = args.out or default_out or Path(tempfile.gettempdir()) / f"miloco-bench-{plan.mode}"
    return Settings(
        plan=plan,
        cost=CostModel(
            fixed_s=args.model_fixed_ms / 1000,
            per_image_token_s=args.model_image_token_ms / 1000,
            per_output_token_s=args.model_output_token_ms / 1000,
        ),
        max_concurrent=args.max_concurrent,
        server_slots=args.server_slots,
        llama=not args.no_llama,
        out_dir=out,
        command=os.environ.get("MILOCO_BENCH_COMMAND") or " ".join(["python -m benchmarks.bench", *argv]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line; write results.json and results.md."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[bench {time.monotonic() - started:6.1f} s] {message}", flush=True)

    results = run(settings, progress=progress)
    json_path, md_path = write_results(results, settings.out_dir)
    progress(f"wrote {json_path} and {md_path}")
    for target in results["targets"]:
        verdict = "not measured" if target["met"] is None else "met" if target["met"] else "MISSED"
        progress(f"target {target['id']}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
