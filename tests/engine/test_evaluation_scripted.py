"""The evaluation end to end against the loopback server scripted per clip: every count is known in advance."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from custom_components.miloco.engine.evaluation.cli import main
from custom_components.miloco.engine.labels import ACTIVITIES, GESTURES
from custom_components.miloco.engine.prompt import CheckSpec, combined_system_prompt, condition_system_prompt
from tests.model_server import FakeModelServer

from .eval_clips import CLIPS, EXPECTED_COUNTS, ScriptedModel, SyntheticClip, write_clip_set

ALL_GESTURES = tuple(label.key for label in GESTURES)
ALL_ACTIVITIES = tuple(label.key for label in ACTIVITIES)


async def run_eval(
    server: FakeModelServer, clip_set: Path, tmp_path: Path, *extra: str
) -> tuple[int, dict[str, Any]]:
    """Run the command line in a thread (it runs its own event loop) and return its status and JSON report."""
    out = tmp_path / "report.json"
    argv = ["run", str(clip_set), "--url", server.url, "--json", str(out), "--quiet", *extra]
    code = await asyncio.to_thread(main, argv)
    return code, json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}


@pytest.fixture
def clip_set(tmp_path: Path) -> Path:
    return write_clip_set(tmp_path / "set")


def counts_of(entry: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {key: (row["tp"], row["fp"], row["fn"], row["tn"]) for key, row in entry["per_class"].items()}


async def test_combined_mode_scores_exactly(
    model_server: FakeModelServer, clip_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ScriptedModel()
    model_server.responder = model
    code, report = await run_eval(model_server, clip_set, tmp_path)
    assert code == 0
    (entry,) = report["settings"]
    assert entry["setting"] == "mode=combined,frames=6,detail=medium,thinking=off"
    assert counts_of(entry) == EXPECTED_COUNTS
    rows = entry["per_class"]
    assert (rows["ok"]["precision"], rows["ok"]["recall"], rows["ok"]["f1"]) == (1 / 2, 1.0, 2 / 3)
    assert (rows["shaka"]["precision"], rows["shaka"]["recall"], rows["shaka"]["f1"]) == (None, 0.0, 0.0)
    assert (rows["v_sign"]["precision"], rows["v_sign"]["f1"]) == (0.0, 0.0)
    assert rows["thumbs_up"]["f1"] == 1.0
    assert rows["workout"]["f1"] == 2 / 3
    averages = entry["averages"]
    # Micro: 10 TP, 4 FP, 5 FN over all classes; macro: the mean over classes where a score is defined.
    assert averages["micro"] == {"precision": 10 / 14, "recall": 10 / 15, "f1": 20 / 29}
    assert averages["macro"] == {"precision": 7 / 10, "recall": 8 / 11, "f1": 22 / 33}
    assert averages["macro_gestures"]["f1"] == 11 / 18
    assert averages["macro_activities"]["f1"] == 11 / 15
    assert report["reference"]["f1"]["thumbs_up"] == 0.905
    assert report["reference"]["f1"]["wave"] is None
    assert report["clip_set"]["support"] == {key: tp + fn for key, (tp, _, fn, _) in EXPECTED_COUNTS.items()}

    # One request per clip, with the integration's own prompt, six frames, thinking off.
    assert [seen.clip for seen in model.seen] == [clip.name for clip in CLIPS]
    spec = CheckSpec(gestures=ALL_GESTURES, activities=ALL_ACTIVITIES, fps=2)
    assert {seen.system_prompt for seen in model.seen} == {combined_system_prompt(spec, 6)}
    assert all(len(seen.frame_indices) == 6 and not seen.thinking for seen in model.seen)
    # The watcher's window: 10 frames at 2 fps, 6 evenly over the last 3 s (frame 6 is the one left out).
    assert model.seen[0].frame_indices == [3, 4, 5, 7, 8, 9]

    cost = entry["cost"]
    assert cost["checks"] == 8
    assert cost["failed_checks"] == 0
    assert cost["requests_per_clip"] == 1
    assert 0 < cost["image_tokens_per_clip"] <= 512
    assert cost["prompt_tokens_per_clip"] == 110
    assert 0 < cost["latency_s"]["p50"] <= cost["latency_s"]["p95"] <= cost["latency_s"]["max"]
    assert entry["clips"][0]["reason"] == "scripted answer for c0-thumbs-tv"

    out = capsys.readouterr()
    assert out.err == ""
    assert "| Thumbs Up `thumbs_up` | 2 | 100.0 | 90.5 |" in out.out
    assert "| **macro, all** |  | 66.7 |" in out.out


async def test_settings_side_by_side_per_condition_with_thinking(
    model_server: FakeModelServer, clip_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ScriptedModel()
    model_server.responder = model
    code, report = await run_eval(
        model_server,
        clip_set,
        tmp_path,
        "--setting",
        "mode=combined,frames=6,detail=medium",
        "--setting",
        "mode=per_condition,frames=4,detail=low,thinking=on,name=trained protocol",
    )
    assert code == 0
    combined, per_condition = report["settings"]
    assert per_condition["label"] == "trained protocol"
    # The scripted model says the same in both protocols (boxed after a chain of thought in the second).
    assert counts_of(combined) == counts_of(per_condition) == EXPECTED_COUNTS
    assert per_condition["averages"] == combined["averages"]

    asked = model.seen[len(CLIPS) :]
    assert len(asked) == 11 * len(CLIPS)
    assert all(seen.thinking and len(seen.frame_indices) == 4 for seen in asked)
    spec = CheckSpec(gestures=ALL_GESTURES, activities=ALL_ACTIVITIES, fps=2, thinking=True)
    assert {seen.system_prompt for seen in asked} == {condition_system_prompt(spec, 4)}
    assert per_condition["cost"]["requests_per_clip"] == 11
    tokens = per_condition["cost"]["image_tokens_per_clip"]
    assert tokens % 11 == 0
    assert 0 < tokens / 11 <= 256

    markdown = capsys.readouterr().out
    assert (
        "| class | clips | combined · 6 fr · medium | trained protocol | MiMo-VL-Miloco-7B (report) |"
        in markdown
    )
    assert "| trained protocol | `mode=per_condition,frames=4,detail=low,thinking=on` |" in markdown
    assert "## Counts: trained protocol" in markdown


async def test_an_unreadable_reply_fails_the_check_which_then_sees_nothing(
    model_server: FakeModelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clips = (
        SyntheticClip(name="good", gestures=("ok",), said=("ok",)),
        SyntheticClip(name="mumbles", gestures=("ok",), activities=("reading",), said=None),
    )
    model_server.responder = ScriptedModel(clips)
    code, report = await run_eval(
        model_server, write_clip_set(tmp_path / "set", clips), tmp_path, "--classes", "ok,reading,thumbs_up"
    )
    assert code == 0
    (entry,) = report["settings"]
    assert list(entry["per_class"]) == ["thumbs_up", "ok", "reading"]
    assert counts_of(entry) == {"thumbs_up": (0, 0, 0, 2), "ok": (1, 0, 1, 0), "reading": (0, 0, 1, 1)}
    assert entry["per_class"]["thumbs_up"]["f1"] is None
    assert entry["cost"]["failed_checks"] == 1
    assert entry["clips"][1]["error"].startswith("unreadable reply: ")
    out = capsys.readouterr()
    assert "- `mumbles`: check failed (unreadable reply: " in out.out
    assert out.err.startswith("scripts/eval: warning: 1 of 2 checks failed")


async def test_budget_setting_and_api_key(
    model_server: FakeModelServer, clip_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_server.responder = ScriptedModel()
    model_server.api_key = "sk-test"
    monkeypatch.setenv("EVAL_TEST_KEY", "sk-test")
    code, report = await run_eval(
        model_server,
        clip_set,
        tmp_path,
        "--api-key-env",
        "EVAL_TEST_KEY",
        "--model",
        "mimo-vl-miloco-7b",
        "--setting",
        "budget=120,frames=2",
    )
    assert code == 0
    (entry,) = report["settings"]
    assert (entry["detail"], entry["budget_tokens"], entry["label"]) == (
        None,
        120,
        "combined · 2 fr · 120 tok",
    )
    assert all(clip["frames_sent"] == 2 for clip in entry["clips"])
    assert 0 < entry["cost"]["image_tokens_per_clip"] <= 120
    assert report["backend"] == {
        "kind": "remote",
        "model": "mimo-vl-miloco-7b",
        "url": f"{model_server.url}/v1",
    }
    assert "sk-test" not in json.dumps(report)
