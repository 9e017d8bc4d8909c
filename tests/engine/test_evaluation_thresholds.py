"""scripts/eval sets the thresholds: a scripted model of known P(yes) per clip, the report against a hand count."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.model_server import FakeModelServer, Reply, yes_no_logprobs

from .eval_clips import _CONDITIONS, ScriptedModel, write_clip_set
from .test_evaluation_scripted import run_eval

# P(yes) the model gives each clip (c0 … c7), by class. Truth: thumbs_up in c0 and c7, wave in c5.
P_YES: dict[str, tuple[float, ...]] = {
    "thumbs_up": (0.9, 0.2, 0.6, 0.1, 0.3, 0.6, 0.05, 0.7),
    "wave": (0.55, 0.8, 0.1, 0.4, 0.1, 0.8, 0.1, 0.1),
}


@dataclass
class Probable(ScriptedModel):
    """The scripted model, answering each per-condition question with the P(yes) of P_YES."""

    def __call__(self, body: dict[str, Any]) -> Reply:
        """Answer with log-probabilities: "yes" at P ≥ 0.5, as a model at temperature 0 would."""
        super().__call__(body)
        seen = self.seen[-1]
        index = [clip.name for clip in self.clips].index(seen.clip)
        return yes_no_logprobs({"result": P_YES[_CONDITIONS[seen.question]][index]})


async def test_the_report_gives_each_curve_and_its_best_f1_threshold(
    model_server: FakeModelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_server.responder = Probable()
    clip_set = write_clip_set(tmp_path / "set")
    code, report = await run_eval(
        model_server, clip_set, tmp_path, "--setting", "mode=per_condition", "--classes", "thumbs_up,wave"
    )
    assert code == 0
    (entry,) = report["settings"]
    thresholds = entry["thresholds"]
    assert list(thresholds) == ["thumbs_up", "wave", "all"]

    # thumbs_up, highest P first: 0.9 ✓, 0.7 ✓, 0.6 ✗✗, 0.3 ✗, 0.2 ✗, 0.1 ✗, 0.05 ✗ (2 clips show it).
    thumbs = thresholds["thumbs_up"]
    points = [(p["threshold"], p["tp"], p["fp"], p["fn"]) for p in thumbs["points"]]
    assert [t for t, *_ in points] == pytest.approx([0.9, 0.7, 0.6, 0.3, 0.2, 0.1, 0.05])
    assert [counts for _, *counts in points] == [
        [1, 0, 1],
        [2, 0, 0],
        [2, 2, 0],
        [2, 3, 0],
        [2, 4, 0],
        [2, 5, 0],
        [2, 6, 0],
    ]
    assert [p["precision"] for p in thumbs["points"][:3]] == [1.0, 1.0, 0.5]
    assert [p["recall"] for p in thumbs["points"][:3]] == [0.5, 1.0, 1.0]
    # AP = ½·1 + ½·1; the best F1 (1.0) at 0.7, entered as 70 %.
    assert thumbs["average_precision"] == 1.0
    assert thumbs["best_f1"]["threshold"] == pytest.approx(0.7)
    assert (thumbs["best_f1"]["f1"], thumbs["best_f1"]["form_percent"]) == (1.0, 70)

    # wave: 0.8 ✓✗ (together: one threshold cannot part them), 0.55 ✗, 0.4 ✗, 0.1 ✗✗✗✗ (1 clip shows it).
    wave = thresholds["wave"]
    assert [(p["tp"], p["fp"]) for p in wave["points"]] == [(1, 1), (1, 2), (1, 3), (1, 7)]
    assert wave["average_precision"] == 0.5
    assert wave["best_f1"]["f1"] == pytest.approx(2 / 3)
    assert wave["best_f1"]["form_percent"] == 80

    # Pooled (3 positives): 0.9 ✓ → F1 ½; 0.8 ✓✗ → ⅔; 0.7 ✓ → 6/7, the best; 0.6 ✗✗ → ⅔ …
    pooled = thresholds["all"]
    assert [p["f1"] for p in pooled["points"][:4]] == pytest.approx([1 / 2, 2 / 3, 6 / 7, 2 / 3])
    # AP = ⅓·1 + ⅓·⅔ + ⅓·¾ = 29/36.
    assert pooled["average_precision"] == pytest.approx(29 / 36)
    assert pooled["best_f1"]["form_percent"] == 70

    # The model's own yes/no (P ≥ 0.5) is what the counts score, as before.
    rows = entry["per_class"]
    assert (rows["thumbs_up"]["tp"], rows["thumbs_up"]["fp"]) == (2, 2)
    assert (rows["wave"]["tp"], rows["wave"]["fp"]) == (1, 2)

    # The curves are PNG files in the report's folder, named in the report.
    for key in ("thumbs_up", "wave", "all"):
        plot = tmp_path / thresholds[key]["plot"]
        assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    markdown = capsys.readouterr().out
    assert "## Thresholds: per_condition · 6 fr · medium" in markdown
    assert (
        "| thumbs_up | 1.000 | 0.7000 | 100.0 | 100.0 | 100.0 | [pr-1-thumbs_up.png](pr-1-thumbs_up.png) |"
        in markdown
    )
    assert "label_threshold: 70\n" in markdown
    assert "thumbs_up: 70\nwave: 80\n" in markdown


async def test_the_combined_mode_has_no_curves(model_server: FakeModelServer, tmp_path: Path) -> None:
    model_server.responder = ScriptedModel()
    code, report = await run_eval(model_server, write_clip_set(tmp_path / "set"), tmp_path)
    assert code == 0
    assert report["settings"][0]["thresholds"] == {}
