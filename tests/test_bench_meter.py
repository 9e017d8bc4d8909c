"""The benchmark's meter keeps its per-frame samples compact: its own growth must not read as the integration's.

At 32 cameras the stage and lag samples were lists of float tuples, about 1.2 MB a minute, and the memory
target's RSS slope counted them as the integration's growth.
"""

from __future__ import annotations

import asyncio
import tracemalloc

from benchmarks.costmodel import CostModel
from benchmarks.meter import CheckRecord, LagTicker, Meter, RecordLog, RequestRecord

SAMPLES = 20_000
# Two floats a stage sample and one a tick are 16 and 8 bytes; a list of tuples took about 112 and 32.
MAX_BYTES_PER_STAGE_SAMPLE = 24
MAX_BYTES_PER_TICK = 12
# Six fields of 8 bytes (4 for the camera's index); as objects a request record took about 250.
MAX_BYTES_PER_RECORD = 64


def test_stage_samples_take_two_floats_each() -> None:
    meter = Meter(CostModel.fixed(0.1))
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


def test_records_are_kept_as_columns_and_read_back_whole() -> None:
    log: RecordLog[RequestRecord] = RecordLog(RequestRecord)
    cameras = [f"camera.bench_{index:02d}" for index in range(32)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(SAMPLES):
            log.append(RequestRecord(cameras[index % 32], index / 7, index / 7 + 0.6, 0.59, 506 + index, 6))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < SAMPLES * MAX_BYTES_PER_RECORD, grown / SAMPLES
    assert len(log) == SAMPLES
    records = list(log)
    assert records[0] == RequestRecord("camera.bench_00", 0.0, 0.6, 0.59, 506, 6)
    assert records[-1].camera == cameras[(SAMPLES - 1) % 32]
    assert records[-1].image_tokens == 506 + SAMPLES - 1
    assert isinstance(records[-1].image_tokens, int)
    assert isinstance(records[-1].started, float)


def test_a_check_counts_its_requests_in_the_meter() -> None:
    meter = Meter(CostModel.fixed(0.5))
    check = meter.begin_check("camera.bench_00")
    check.requests.append(RequestRecord("camera.bench_00", 1.0, 1.5, 0.5, 400, 6))
    check.requests.append(RequestRecord("camera.bench_00", 1.5, 2.0, 0.5, 100, 2))
    meter.end_check(check)
    (record,) = meter.checks
    assert isinstance(record, CheckRecord)
    assert (record.camera, record.model_s, record.requests, record.image_tokens) == (
        "camera.bench_00",
        1.0,
        2,
        500,
    )
