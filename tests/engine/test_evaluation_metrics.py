"""Scores computed exactly, percentiles, and the --setting syntax."""

from __future__ import annotations

from fractions import Fraction

import pytest

from custom_components.miloco.engine.evaluation.metrics import (
    Confusion,
    confusions,
    macro,
    micro,
    percentile,
    scores,
)
from custom_components.miloco.engine.evaluation.settings import Setting, parse_setting
from custom_components.miloco.engine.window import FrameWindow


def test_confusions_count_every_clip_once_per_class() -> None:
    pairs = [
        (frozenset({"ok"}), frozenset({"ok"})),
        (frozenset({"ok"}), frozenset()),
        (frozenset(), frozenset({"ok", "wave"})),
        (frozenset(), frozenset()),
    ]
    counts = confusions(pairs, ["ok", "wave", "shaka"])
    assert counts["ok"] == Confusion(tp=1, fp=1, fn=1, tn=1)
    assert counts["wave"] == Confusion(fp=1, tn=3)
    assert counts["shaka"] == Confusion(tn=4)


def test_scores_are_exact_and_undefined_where_nothing_is_to_find() -> None:
    result = scores(Confusion(tp=1, fp=2, fn=3))
    assert (result.precision, result.recall, result.f1) == (Fraction(1, 3), Fraction(1, 4), Fraction(2, 7))
    nothing = scores(Confusion(tn=5))
    assert (nothing.precision, nothing.recall, nothing.f1) == (None, None, None)
    missed = scores(Confusion(fn=2, tn=3))
    assert (missed.precision, missed.recall, missed.f1) == (None, Fraction(0), Fraction(0))


def test_micro_pools_counts_and_macro_averages_defined_scores() -> None:
    counts = [Confusion(tp=2, fp=2), Confusion(tp=1, fn=1), Confusion(tn=4)]
    pooled = micro(counts)
    assert (pooled.precision, pooled.recall, pooled.f1) == (Fraction(3, 5), Fraction(3, 4), Fraction(2, 3))
    averaged = macro(counts)
    # The third class (nothing to find, nothing claimed) is left out of every mean.
    assert averaged.precision == (Fraction(1, 2) + 1) / 2
    assert averaged.recall == (1 + Fraction(1, 2)) / 2
    assert averaged.f1 == (Fraction(2, 3) + Fraction(2, 3)) / 2
    assert macro([]).f1 is None


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([float(value) for value in range(1, 21)], 95) == pytest.approx(19.05)
    assert percentile([1.0, 2.0], 100) == 2.0


def test_setting_defaults_are_the_integrations() -> None:
    assert parse_setting("") == Setting()
    assert Setting().describe() == "mode=combined,frames=6,detail=medium,thinking=off"
    assert (Setting().budget, FrameWindow.for_checks_of(Setting().frames).capacity) == (512, 14)


def test_setting_syntax() -> None:
    setting = parse_setting(" mode = per_condition , frames=3, budget=700, thinking=ON, name=tight ")
    assert setting == Setting(
        mode="per_condition", frames=3, detail=None, budget=700, thinking=True, name="tight"
    )
    assert setting.describe() == "mode=per_condition,frames=3,budget=700,thinking=on"
    assert setting.label == "tight"
    assert parse_setting("detail=high").label == "combined · 6 fr · high"
    assert parse_setting("detail=high").budget == 1024
    assert parse_setting("thinking=1,detail=low").label == "combined · 6 fr · low · think"
