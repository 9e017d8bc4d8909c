"""Scores: confusion counts per class, precision, recall and F1 (exact fractions), averages and percentiles."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
import math


@dataclass(frozen=True, slots=True, kw_only=True)
class Confusion:
    """How often one class was found (TP), imagined (FP), missed (FN) and rightly left out (TN)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Confusion) -> Confusion:
        """Return the counts of both together (micro averaging)."""
        return Confusion(
            tp=self.tp + other.tp, fp=self.fp + other.fp, fn=self.fn + other.fn, tn=self.tn + other.tn
        )

    @property
    def support(self) -> int:
        """Return how many clips truly show the class."""
        return self.tp + self.fn


@dataclass(frozen=True, slots=True, kw_only=True)
class Scores:
    """Precision, recall and F1; None where undefined (nothing predicted, nothing to find)."""

    precision: Fraction | None
    recall: Fraction | None
    f1: Fraction | None


def confusions(
    pairs: Iterable[tuple[frozenset[str], frozenset[str]]], classes: Sequence[str]
) -> dict[str, Confusion]:
    """Return each class's counts over (truth, predicted) pairs, one pair per clip."""
    counts = {key: [0, 0, 0, 0] for key in classes}
    for truth, predicted in pairs:
        for key, cell in counts.items():
            # Index: 0 TP, 1 FP, 2 FN, 3 TN.
            cell[(0 if key in predicted else 2) if key in truth else (1 if key in predicted else 3)] += 1
    return {key: Confusion(tp=c[0], fp=c[1], fn=c[2], tn=c[3]) for key, c in counts.items()}


def scores(confusion: Confusion) -> Scores:
    """Return a class's scores; F1 is 2TP / (2TP + FP + FN), the harmonic mean of precision and recall."""
    tp, fp, fn = confusion.tp, confusion.fp, confusion.fn
    return Scores(
        precision=_ratio(tp, tp + fp), recall=_ratio(tp, tp + fn), f1=_ratio(2 * tp, 2 * tp + fp + fn)
    )


def micro(counts: Iterable[Confusion]) -> Scores:
    """Return the scores of all classes' counts pooled."""
    return scores(sum(counts, Confusion()))


def macro(counts: Iterable[Confusion]) -> Scores:
    """Return the mean of each score over the classes where it is defined."""
    each = [scores(confusion) for confusion in counts]
    return Scores(
        precision=_mean(s.precision for s in each),
        recall=_mean(s.recall for s in each),
        f1=_mean(s.f1 for s in each),
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the q-th percentile (0–100), interpolating linearly between ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ratio(numerator: int, denominator: int) -> Fraction | None:
    """Return numerator/denominator exactly, or None when the denominator is 0."""
    return Fraction(numerator, denominator) if denominator else None


def _mean(values: Iterable[Fraction | None]) -> Fraction | None:
    """Return the exact mean of the defined values, or None when there are none."""
    defined = [value for value in values if value is not None]
    return sum(defined, Fraction(0)) / len(defined) if defined else None
