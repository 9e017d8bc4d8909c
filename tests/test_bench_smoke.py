"""The benchmark's quick mode, in-process: it completes, writes valid JSON, and counts what it should.

Only deterministic properties are checked (what was sent, and how often per check), never timings.
"""

from __future__ import annotations

from dataclasses import replace
import json
from pathlib import Path
from typing import Any

from benchmarks.bench import FIGURES, POLICIES, Settings, async_run, default_plan, quick_plan, write_results
from benchmarks.costmodel import CostModel
from benchmarks.ours import FIXED_TICK_S, _stage_modules, build_entry
from benchmarks.report import render
from benchmarks.scenes import SCENARIOS
from benchmarks.work_conserving import WAVE_SCENARIOS, WAVE_TARGET_ID
from custom_components.miloco.const import CONF_CHECK_INTERVAL, SUBENTRY_CAMERA
from custom_components.miloco.settings import CHECK_INTERVAL


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
    stages = {(module, name): getattr(module, name) for module in _stage_modules() for name in dir(module)}
    results = await async_run(settings, progress=lambda _message: None)
    # Two entries of ours ran at once (ours, ours-tick), each timing the integration's stage functions:
    # every one of them is the integration's own again afterwards.
    assert all(getattr(module, name) is function for (module, name), function in stages.items())
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
        WAVE_TARGET_ID,
    }

    # The integration with the fixed 2 s tick ran as a policy of its own, next to ours: its rows, the
    # comparison of both and the target that quotes its request cost are there, from this run's figures.
    assert "ours-tick" in POLICIES
    assert data["settings"]["fixed_tick_s"] == FIXED_TICK_S
    for scenario in WAVE_SCENARIOS:
        compared = data["work_conserving"][scenario]
        tick = data["matrix"][scenario]["ours-tick"]
        assert compared["ours_tick"]["requests_per_camera_hour"] == tick["requests_per_camera_hour"]
        assert (
            compared["ours"]["requests_per_camera_hour"]
            == data["matrix"][scenario]["ours"]["requests_per_camera_hour"]
        )
    busy = data["work_conserving"]["busy"]
    assert busy["ours_tick"]["requests_per_camera_hour"] > 0
    assert busy["requests_ratio"] == round(
        busy["ours"]["requests_per_camera_hour"] / busy["ours_tick"]["requests_per_camera_hour"], 3
    )
    wave = next(target for target in data["targets"] if target["id"] == WAVE_TARGET_ID)
    assert wave["measured"]["request_cost_vs_fixed_tick"] == busy["requests_ratio"]
    assert "## Work-conserving checks against the fixed 2 s tick" in markdown
    assert "| busy | ours, 2 s tick (before) |" in markdown

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


def test_ours_tick_entry_checks_at_most_every_two_seconds() -> None:
    """ours-tick's cameras carry the fixed 2 s tick; ours's keep the camera flow's default."""
    cameras = [("camera.bench_0", 1)]
    tick = build_entry("http://127.0.0.1:1", cameras, 2, FIXED_TICK_S)
    ours = build_entry("http://127.0.0.1:1", cameras, 2)

    def interval(entry: Any) -> Any:
        (camera,) = (sub for sub in entry.subentries.values() if sub.subentry_type == SUBENTRY_CAMERA)
        return camera.data[CONF_CHECK_INTERVAL]

    assert interval(tick) == 2.0
    assert interval(ours) == CHECK_INTERVAL.default


def test_default_plan_runs_both_policies_side_by_side_for_longer() -> None:
    """The default run measures ours and ours-tick on busy and gestures, 40 s each, and nowhere else."""
    phases = {phase.name: phase for phase in default_plan().phases}
    for scenario in WAVE_SCENARIOS:
        for policy in ("ours", "ours-tick"):
            phase = phases[f"{scenario}-{policy}-4x5"]
            assert (phase.policy, phase.duration_s) == (policy, 40.0)
    assert [name for name in phases if "ours-tick" in name] == [
        "gestures-ours-tick-4x5",
        "busy-ours-tick-4x5",
    ]
    added = sum(phase.warmup_s + phase.duration_s for phase in phases.values() if "ours-tick" in phase.name)
    assert added + 2 * (40.0 - 16.0) < 180


def test_report_renders_a_run_from_before_ours_tick() -> None:
    """The committed results.json (no ours-tick phases) still renders, with dashes where they are missing."""
    results = json.loads(
        (Path(__file__).parent.parent / "benchmarks" / "results.json").read_text(encoding="utf-8")
    )
    for row in results["matrix"].values():
        row.pop("ours-tick", None)
    results.pop("work_conserving", None)
    results["targets"] = [target for target in results["targets"] if target["id"] != WAVE_TARGET_ID]
    markdown = render(results)
    section = markdown.split("## Work-conserving checks against the fixed 2 s tick", 1)[1].split("\n## ", 1)[
        0
    ]
    busy = next(line for line in section.splitlines() if line.startswith("| busy |"))
    assert busy.split(" | ")[2:4] == ["–", "–"]
    assert "busy-scene wave → event latency − model time p50 ≤ 750 ms" in markdown
