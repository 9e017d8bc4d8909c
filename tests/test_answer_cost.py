"""Smoke test of benchmarks/answer_cost.py on llama.cpp's C++ llama-server with the tiny model (few checks).

Only what does not depend on the random weights' choices or the machine's load is checked: what was sent,
the replies' bounds, what log-probabilities add, and the schemas' minimal answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.answer_cost import (
    COMBINED_COMPACT,
    COMBINED_FULL,
    MODES,
    PER_CONDITION,
    async_run,
    report_lines,
    summary,
)
from testkit.llama_server import cpp_server_skip_reason


async def test_answer_cost_measures_every_mode_with_and_without_logprobs(
    socket_enabled: None, tmp_path: Path
) -> None:
    if reason := cpp_server_skip_reason():
        pytest.skip(reason)
    result = await async_run(2, tmp_path)
    assert "skipped" not in result, result.get("skipped")
    assert {(row["mode"], row["logprobs"]) for row in result["rows"]} == {
        (mode, logprobs) for mode in MODES for logprobs in (False, True)
    }
    assert len(result["rows"]) == 2 * 2 * len(MODES)
    for row in result["rows"]:
        # One combined request, or one per condition of the typical camera (6 + 5 gestures and activities,
        # presence, 5 rules); never more tokens than the integration's bound.
        assert row["requests"] == (17 if row["mode"] == PER_CONDITION else 1)
        assert 0 < row["completion_tokens"] <= result["max_tokens"][row["mode"]]
    entries = summary(result)
    for mode in MODES:
        on = next(entry for entry in entries if entry["mode"] == mode and entry["logprobs"])
        off = next(entry for entry in entries if entry["mode"] == mode and not entry["logprobs"])
        # Each generated token then carries its alternatives: the reply grows by far more than its text.
        assert on["reply_bytes"]["median"] > 2 * off["reply_bytes"]["median"]

    minimal = result["minimal_tokens"]
    # The compact answer's structure is the shortest when little holds, and grows with what holds.
    nothing, everything = minimal["nothing holds"], minimal["everything holds"]
    assert nothing[COMBINED_COMPACT] < nothing[COMBINED_FULL] < nothing[PER_CONDITION]
    assert (
        nothing[COMBINED_COMPACT]
        < minimal["a typical scene"][COMBINED_COMPACT]
        < everything[COMBINED_COMPACT]
    )
    # A per-condition reply is the same length whichever way it answers ("yes" and "no" are one token each).
    assert nothing[PER_CONDITION] == everything[PER_CONDITION]

    text = "\n".join(report_lines(result))
    assert all(f"| {mode} |" in text for mode in MODES)
    assert "llama-server" in text
