"""The benchmark's meter keeps its per-frame samples compact: its own growth must not read as the integration's.

At 32 cameras the stage and lag samples were lists of float tuples, about 1.2 MB a minute, and the memory
target's RSS slope counted them as the integration's growth.
"""

from __future__ import annotations

import asyncio
import tracemalloc

from benchmarks.costmodel import CostModel
from benchmarks.meter import LagTicker, Meter

SAMPLES = 20_000
# Two floats a stage sample and one a tick are 16 and 8 bytes; a list of tuples took about 112 and 32.
MAX_BYTES_PER_STAGE_SAMPLE = 24
MAX_BYTES_PER_TICK = 12


def test_stage_samples_take_two_floats_each() -> None:
    meter = Meter(CostModel(fixed_s=0.1, per_image_token_s=0.0, per_output_token_s=0.0))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(SAMPLES):
            meter.record_stage("capture", index / 1e6)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < SAMPLES * MAX_BYTES_PER_STAGE_SAMPLE, grown / SAMPLES
    # What the report reads back: the durations that ended within the window, in order.
    assert meter.stage_times("capture", 0.0, float("inf"))[:3] == [0.0, 1e-6, 2e-6]
    assert meter.stage_times("capture", 0.0, 0.0) == []
    assert meter.stage_times("parse", 0.0, float("inf")) == []


async def test_lag_ticks_take_one_float_each() -> None:
    ticker = LagTicker(interval_s=0.001)
    ticker.start()
    await asyncio.sleep(0.05)
    lags = await ticker.stop()
    assert len(lags) > 0
    assert all(lag >= 0 for lag in lags)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(SAMPLES):
            ticker.lags.append(index / 1e6)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < SAMPLES * MAX_BYTES_PER_TICK, grown / SAMPLES
