"""Frame preparation per check, side by side: the window resized at every check against each frame once.

One camera's stream of 1280×720 frames at 2 fps, a check every 2 s on the last 6 frames (windows overlap),
medium detail. For every check both pipelines run on the same frames, one right after the other in the
same thread, so that they see the same load:

- **per window** (until issue 13): every captured frame's gate thumbnail decoded from its bytes, then at
  each check `prepare_window` decodes and resizes all six frames again;
- **per frame**: every captured frame decoded once into its thumbnail and every size a window position may
  need (`prepare_capture`), and a check only picks (`pick_window`).

CPU time is the thread's (`time.thread_time`), so other processes on the machine slow it less than wall
time; both are reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import time
from typing import Any, Final

from benchmarks.meter import percentile
from custom_components.miloco.engine.frames import (
    DETAIL_BUDGETS,
    FramePlan,
    FrameVersions,
    pick_window,
    prepare_window,
)
from custom_components.miloco.engine.gate import thumbnail
from custom_components.miloco.engine.window import prepare_capture

FPS: Final = 2
INTERVAL_S: Final = 2.0
WINDOW: Final = 6
DETAIL: Final = "medium"


def measure(jpegs: Sequence[bytes], checks: int) -> dict[str, Any]:
    """Return per-check figures of both pipelines over `checks` checks of a stream looping over `jpegs`."""
    plan = FramePlan(frames=WINDOW, budget=DETAIL_BUDGETS[DETAIL])
    per_interval = round(FPS * INTERVAL_S)
    stream = [jpegs[i % len(jpegs)] for i in range(WINDOW + per_interval * checks)]
    # Warm both paths (imports, allocator) outside the measurement.
    prepare_window(stream[:WINDOW], plan.budget)
    versions = _capture_each(stream[:WINDOW], plan)
    samples: dict[str, list[float]] = {key: [] for key in _KEYS}
    for check in range(checks):
        first_new = WINDOW + check * per_interval
        new_frames = stream[first_new : first_new + per_interval]
        window = stream[first_new + per_interval - WINDOW : first_new + per_interval]
        # Before: a thumbnail decode per frame, then the whole window at the check.
        _, capture_cpu, _ = _timed(_thumbnail_each, new_frames)
        _, check_cpu, check_wall = _timed(prepare_window, window, plan.budget)
        _add(samples, "window", capture_cpu / len(new_frames), check_cpu, check_wall)
        # After: one decode per frame into everything, then a pick at the check.
        made, capture_cpu, _ = _timed(_capture_each, new_frames, plan)
        versions = [*versions, *made][-WINDOW:]
        picked, check_cpu, check_wall = _timed(pick_window, versions, plan.budget)
        if picked is None:
            raise RuntimeError("the prepared frames could not serve their window")
        _add(samples, "frame", capture_cpu / len(new_frames), check_cpu, check_wall)
    return {
        "checks": checks,
        "fps": FPS,
        "interval_s": INTERVAL_S,
        "window": WINDOW,
        "detail": DETAIL,
        # Decodes per check by construction: the new frames' thumbnails plus the window (before), the new
        # frames only (after).
        "decodes_per_check": {"window": per_interval + WINDOW, "frame": per_interval},
        "ms": {key: _summary(values) for key, values in samples.items()},
    }


_KEYS: Final = tuple(
    f"{pipeline}_{figure}"
    for pipeline in ("window", "frame")
    for figure in ("check_cpu", "check_wall", "capture_cpu_per_frame", "total_cpu_per_check")
)


def _thumbnail_each(jpegs: Sequence[bytes]) -> None:
    """Make each frame's gate thumbnail from its bytes (the capture job before issue 13)."""
    for data in jpegs:
        thumbnail(data)


def _capture_each(jpegs: Sequence[bytes], plan: FramePlan) -> list[FrameVersions]:
    """Prepare each frame once, as the capture job does now; return the prepared versions."""
    return [prepare_capture(data, plan)[1] for data in jpegs]


def _add(
    samples: dict[str, list[float]], pipeline: str, per_frame: float, check_cpu: float, wall: float
) -> None:
    """Record one check's figures of one pipeline, in seconds (the capture's CPU per frame and the check's)."""
    frames = round(FPS * INTERVAL_S)
    samples[f"{pipeline}_check_cpu"].append(check_cpu)
    samples[f"{pipeline}_check_wall"].append(wall)
    samples[f"{pipeline}_capture_cpu_per_frame"].append(per_frame)
    samples[f"{pipeline}_total_cpu_per_check"].append(per_frame * frames + check_cpu)


def _timed[**P, R](work: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> tuple[R, float, float]:
    """Return what `work` returned, the thread CPU time and the wall time it took."""
    cpu, wall = time.thread_time(), time.perf_counter()
    result = work(*args, **kwargs)
    return result, time.thread_time() - cpu, time.perf_counter() - wall


def _summary(seconds: list[float]) -> dict[str, float | None]:
    """Return p50, p95 and mean in milliseconds."""
    if not seconds:
        return {"p50": None, "p95": None, "mean": None}
    return {
        "p50": round((percentile(seconds, 50) or 0.0) * 1000, 3),
        "p95": round((percentile(seconds, 95) or 0.0) * 1000, 3),
        "mean": round(sum(seconds) / len(seconds) * 1000, 3),
    }


def render(micro: dict[str, Any] | None) -> list[str]:
    """Return the results.md section for the measurement (nothing when it did not run)."""
    if not micro:
        return []
    ms = micro["ms"]

    def cell(key: str) -> str:
        figure = ms[key]
        if figure["p50"] is None:
            return "–"
        return f"{figure['p50']:.2f} / {figure['p95']:.2f}"

    lines = [
        "## Frame preparation: per window against per frame (one camera, same frames, same run)",
        "",
        f"A check every {micro['interval_s']:g} s on the last {micro['window']} frames at {micro['fps']} fps "
        f"({micro['detail']} detail), {micro['checks']} checks; both pipelines on each check's frames, one after "
        "the other in one thread. Milliseconds, p50 / p95.",
        "",
        "| pipeline | decodes / check | on the check's path: CPU | wall | at capture: CPU / frame "
        "| all image CPU / check |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "window": "per window (`thumbnail` per frame, `prepare_window` per check)",
        "frame": "per frame (`prepare_capture` per frame, `pick_window` per check)",
    }
    for pipeline, name in names.items():
        lines.append(
            f"| {name} | {micro['decodes_per_check'][pipeline]} | {cell(f'{pipeline}_check_cpu')} "
            f"| {cell(f'{pipeline}_check_wall')} | {cell(f'{pipeline}_capture_cpu_per_frame')} "
            f"| {cell(f'{pipeline}_total_cpu_per_check')} |"
        )
    lines += [
        "",
        "The check's path is what a check waits for before its request can go out; capture work happens "
        "between checks, as frames arrive. A scene still for a whole window gets only its thumbnail at capture "
        "(the watcher skips the model sizes until something moves), so a static room does not pay the per-frame "
        "column.",
        "",
    ]
    return lines
