"""What a resting camera's wake-ups cost: 32 still cameras' frame clocks spread over the period, or on the rest grid.

Each camera does what a watcher at rest does for a frame, and nothing else: sleep until its next frame, then
make the gate's thumbnail of a 1280×720 JPEG in the default executor. Its clock is either its own phase (the
cameras spread over the period, as before) or `engine/frame_clock.next_frame_at` (at rest: a grid shared by
all). Both run in a fresh process of their own (`python -m benchmarks.wakeups`), one after the other and again
in the other order (spread, grid, grid, spread), so that nothing else in the process is counted and a drift of
the machine's speed cancels. CPU per frame: the event loop's thread, and the whole process's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, Final

from benchmarks.scenes import build_scenes
from custom_components.miloco.engine.frame_clock import REST_SLOTS, next_frame_at
from custom_components.miloco.engine.gate import thumbnail
from custom_components.miloco.frame_intake import REST_STRIDE

CAMERAS: Final = 32
FPS: Final = 2.0
ORDER: Final = ("spread", "grid", "grid", "spread")


async def _camera(index: int, clock: str, jpeg: bytes, seconds: float) -> int:
    """Run one resting camera for `seconds`; return how many frames it took."""
    loop = asyncio.get_running_loop()
    period = 1.0 / FPS
    phase = index / CAMERAS
    next_frame = time.monotonic() + phase * period
    end = next_frame + seconds
    frames = 0
    while next_frame < end:
        await asyncio.sleep(max(0.0, next_frame - time.monotonic()))
        await loop.run_in_executor(None, thumbnail, jpeg)
        frames += 1
        # The watcher's own clock; without rest slots it keeps each camera on its phase (as before the grid).
        slots = REST_SLOTS if clock == "grid" else 0
        next_frame = next_frame_at(next_frame, period, stride=REST_STRIDE, phase=phase, rest_slots=slots)
    return frames


async def _run(clock: str, jpeg: bytes, seconds: float) -> dict[str, float]:
    """Return one variant's CPU per frame, in microseconds: the loop thread's and the process's."""
    loop_cpu, process_cpu = time.thread_time(), time.process_time()
    frames = sum(await asyncio.gather(*(_camera(i, clock, jpeg, seconds) for i in range(CAMERAS))))
    return {
        "frames": frames,
        "loop_us_per_frame": round((time.thread_time() - loop_cpu) / frames * 1e6, 1),
        "process_us_per_frame": round((time.process_time() - process_cpu) / frames * 1e6, 1),
    }


def measure(seconds: float) -> dict[str, Any]:
    """Run every variant in ORDER for `seconds` each; return each run and the mean per clock."""
    jpeg = build_scenes(("static",))["static"].frame(0).jpeg
    # Warm the executor's threads and the decoder outside the measurement.
    asyncio.run(_run("spread", jpeg, 1.0))
    runs: list[dict[str, Any]] = [
        {"clock": clock, **asyncio.run(_run(clock, jpeg, seconds))} for clock in ORDER
    ]
    means = {
        clock: {
            key: round(sum(run[key] for run in runs if run["clock"] == clock) / ORDER.count(clock), 1)
            for key in ("loop_us_per_frame", "process_us_per_frame")
        }
        for clock in dict.fromkeys(ORDER)
    }
    return {
        "cameras": CAMERAS,
        "fps": FPS,
        "rest_stride": REST_STRIDE,
        "seconds": seconds,
        "runs": runs,
        "mean": means,
    }


def render(wakeups: dict[str, Any] | None) -> list[str]:
    """Return the results.md section for the measurement (nothing when it did not run)."""
    if not wakeups:
        return []
    mean = wakeups["mean"]
    lines = [
        "## A resting camera's wake-ups: clocks spread, or on the rest grid (same process, same run)",
        "",
        f"{wakeups['cameras']} cameras at rest ({wakeups['fps']:g} fps, one frame in {wakeups['rest_stride']}), each "
        "sleeping until its next frame and then making the gate's thumbnail of a 1280×720 JPEG in the executor, "
        f"nothing else, in a process of their own; {wakeups['seconds']:g} s a run, spread, grid, grid, spread. "
        "Microseconds of CPU per frame (means of the two runs).",
        "",
        "| clocks | event-loop thread | whole process |",
        "|---|---|---|",
    ]
    names = {
        "spread": "each camera on its own phase (spread over the period)",
        "grid": "on the rest grid (`engine/frame_clock.py`)",
    }
    lines += [
        f"| {names[clock]} | {figures['loop_us_per_frame']:g} | {figures['process_us_per_frame']:g} |"
        for clock, figures in mean.items()
    ]
    lines += [
        "",
        "The thumbnail itself is the same work in both; the difference is the event loop and the executor's "
        "threads going to sleep and waking up, once per camera when the clocks are spread, once per grid point "
        "when they share it.",
        "",
    ]
    return lines


if __name__ == "__main__":
    print(json.dumps(measure(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)))
