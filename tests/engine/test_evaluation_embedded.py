"""The evaluation end to end on the tiny random-weight model through the embedded backend.

Its answers mean nothing; the run must still be complete and every number valid.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custom_components.miloco.engine.evaluation.cli import main

from .eval_clips import CLIPS, write_clip_set

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
CLASSES = [
    "thumbs_up",
    "v_sign",
    "open_palm",
    "ok",
    "shaka",
    "wave",
    "watch_tv",
    "reading",
    "phone",
    "esports",
    "workout",
]


def test_tiny_model_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip_set = write_clip_set(tmp_path / "set")
    out = tmp_path / "report.json"
    argv = [
        "run",
        str(clip_set),
        "--model-path",
        str(FIXTURES / "tiny-qwen25vl.gguf"),
        "--mmproj-path",
        str(FIXTURES / "tiny-qwen25vl-mmproj.gguf"),
        # One thread: on a busy machine, llama.cpp's threads spin waiting for each other.
        "--threads",
        "1",
        "--context",
        "4096",
        "--setting",
        "frames=6,detail=low",
        "--json",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["backend"]["kind"] == "embedded"
    assert report["backend"]["model"] == "tiny-qwen25vl"
    (entry,) = report["settings"]
    assert list(entry["per_class"]) == CLASSES
    for row in entry["per_class"].values():
        assert row["tp"] + row["fp"] + row["fn"] + row["tn"] == len(CLIPS)
        # Every class has a clip that shows it, so recall and F1 are always defined.
        assert row["recall"] is not None
        assert row["f1"] is not None
        for score in ("precision", "recall", "f1"):
            assert row[score] is None or 0 <= row[score] <= 1
    for average in entry["averages"].values():
        assert all(value is None or 0 <= value <= 1 for value in average.values())
    cost = entry["cost"]
    assert cost["failed_checks"] == 0
    assert 0 < cost["image_tokens_per_clip"] <= 256
    assert cost["completion_tokens_per_clip"] > 0
    assert 0 < cost["latency_s"]["p50"] <= cost["latency_s"]["p95"]
    assert all(clip["frames_sent"] == 6 and clip["image_tokens"] > 0 for clip in entry["clips"])
    markdown = capsys.readouterr().out
    assert "Backend: embedded `tiny-qwen25vl`." in markdown
    assert markdown.count("\n| ") >= len(CLASSES)
