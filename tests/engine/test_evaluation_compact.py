"""scripts/eval compares the compact answer format with the full one on the same clips (scripted model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from custom_components.miloco.engine.evaluation.settings import Setting, parse_setting
from custom_components.miloco.engine.prompt import CheckSpec, compact_system_prompt
from tests.model_server import FakeModelServer

from .eval_clips import CLIPS, EXPECTED_COUNTS, ScriptedModel
from .test_evaluation_scripted import ALL_ACTIVITIES, ALL_GESTURES, clip_set, counts_of, run_eval

__all__ = ["clip_set"]


def test_the_answer_setting_is_parsed_and_named() -> None:
    compact = parse_setting("answer=compact")
    assert compact == Setting(answer="compact")
    assert compact.describe() == "mode=combined,answer=compact,frames=6,detail=medium,thinking=off"
    assert compact.label == "combined compact · 6 fr · medium"
    assert compact.check_spec(("wave",), (), 2.0).answer_format == "compact"
    # The default format is not spelled out, so earlier settings and reports read as before.
    assert parse_setting("answer=full") == Setting()
    assert Setting().describe() == "mode=combined,frames=6,detail=medium,thinking=off"
    assert parse_setting(Setting(answer="compact").describe()) == compact


async def test_full_and_compact_side_by_side(
    model_server: FakeModelServer, clip_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ScriptedModel()
    model_server.responder = model
    code, report = await run_eval(
        model_server, clip_set, tmp_path, "--setting", "mode=combined", "--setting", "answer=compact"
    )
    assert code == 0
    full, compact = report["settings"]
    assert compact["setting"] == "mode=combined,answer=compact,frames=6,detail=medium,thinking=off"
    # The scripted model says the same in both formats: every count matches the hand-worked truth.
    assert counts_of(full) == counts_of(compact) == EXPECTED_COUNTS
    assert compact["cost"]["requests_per_clip"] == 1

    # The compact checks really asked in the compact format, with the integration's own prompt.
    asked = model.seen[len(CLIPS) :]
    assert len(asked) == len(CLIPS)
    spec = CheckSpec(gestures=ALL_GESTURES, activities=ALL_ACTIVITIES, fps=2, answer_format="compact")
    assert {seen.system_prompt for seen in asked} == {compact_system_prompt(spec, 6)}
    assert all(seen.question.startswith("Which of the keys hold") for seen in asked)
    compact_bodies = model_server.chat_requests[len(CLIPS) :]
    assert all(
        "holds" in body["response_format"]["json_schema"]["schema"]["properties"] for body in compact_bodies
    )
    assert "| combined compact · 6 fr · medium |" in capsys.readouterr().out
