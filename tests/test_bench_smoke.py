"""The benchmark's quick mode, in-process: it completes, writes valid JSON, and counts what it should.

Only deterministic properties are checked (what was sent, and how often per check), never timings.
"""

from __future__ import annotations

from dataclasses import replace
import json
from pathlib import Path

from benchmarks.bench import FIGURES, POLICIES, Settings, async_run, quick_plan, write_results
from benchmarks.costmodel import CostModel
from benchmarks.scenes import SCENARIOS


async def test_quick_benchmark_counts_requests_per_check(socket_enabled: None, tmp_path: Path) -> None:
    plan = quick_plan(warmup_s=2.6, duration_s=4.4)
    # The policies at once on separate cameras, no idle phase, a fast simulated model: the figures
    # checked here are counts, which the shortcut does not change.
    phases = tuple(phase for phase in plan.phases if phase.policy != "idle")
    plan = replace(plan, phases=phases, concurrent=True)
    settings = Settings(
        plan=plan,
        cost=CostModel(fixed_s=0.02, per_image_token_s=0.00002, per_output_token_s=0.001),
        llama=False,
        out_dir=tmp_path,
        command="pytest tests/test_bench_smoke.py",
    )
    results = await async_run(settings, progress=lambda _message: None)
    json_path, md_path = write_results(results, tmp_path)
    data = json.loads(json_path.read_text(encoding="utf-8"))
    markdown = md_path.read_text(encoding="utf-8")
    assert markdown.startswith("# Benchmark results")

    # The frame-preparation micro-benchmark ran both pipelines on the same checks: each frame is decoded
    # once (4 new frames a check) instead of once for its thumbnail and again in every window (4 + 6).
    micro = data["prepare_micro"]
    assert micro["checks"] == plan.prepare_checks > 0
    assert micro["decodes_per_check"] == {"window": 10, "frame": 4}
    assert all(figure["p50"] is not None for figure in micro["ms"].values())
    assert "## Frame preparation: per window against per frame" in markdown

    assert data["policies"] == list(POLICIES)
    assert data["scenarios"] == list(SCENARIOS)
    for scenario in SCENARIOS:
        for policy in POLICIES:
            row = data["matrix"][scenario][policy]
            missing = [figure for figure in FIGURES if figure not in row]
            assert not missing, f"{scenario}/{policy} lacks {missing}"
    assert {target["id"] for target in data["targets"]} >= {
        "requests_per_check_independent_of_rules",
        "static_room_no_requests",
    }

    # A static room: the gate sends nothing (the heartbeat is a minute away).
    assert data["matrix"]["static"]["ours"]["requests"] == 0
    # One request per check whatever the number of rules; the reference sends one per rule.
    per_check = {
        (row["policy"], row["rules"]): row["requests_per_check"]
        for row in data["runs"]
        if row["scenario"] == "busy"
    }
    assert per_check[("ours", 1)] == 1
    assert per_check[("ours", 3)] == 1
    assert per_check[("reference", 1)] == 1
    assert per_check[("reference", 3)] == 3
    assert per_check[("naive", 3)] == 3
