"""Precision-recall against the threshold: the curve per class, its area, and the threshold with the best F1.

A clip counts as predicted for a class when its P(yes) is at least the threshold. The thresholds tried are the
distinct probabilities seen, from the highest down: between two of them nothing changes. Counts are exact, so
precision, recall, F1 and the area are Fractions (as in metrics.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
import math


@dataclass(frozen=True, slots=True, kw_only=True)
class CurvePoint:
    """The counts and scores when every clip with P(yes) ≥ threshold is predicted."""

    threshold: float
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> Fraction:
        """Return TP / (TP + FP); every point predicts at least one clip, so it is defined."""
        return Fraction(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> Fraction | None:
        """Return TP / (TP + FN); None when no clip shows the class."""
        return Fraction(self.tp, self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> Fraction:
        """Return 2TP / (2TP + FP + FN), the harmonic mean of precision and recall."""
        return Fraction(2 * self.tp, 2 * self.tp + self.fp + self.fn)


@dataclass(frozen=True, slots=True, kw_only=True)
class PRCurve:
    """One class's precision-recall curve, highest threshold first."""

    points: tuple[CurvePoint, ...]
    positives: int

    @property
    def average_precision(self) -> Fraction | None:
        """Return the area under the curve as average precision, step-wise: Σ (Rₖ − Rₖ₋₁) · Pₖ.

        Each rise in recall is weighted by the precision at that threshold, with no interpolation between
        points (the trapezoidal rule would credit precision that no threshold reaches). None when no clip
        shows the class, where recall is undefined.
        """
        if not self.positives:
            return None
        area = Fraction(0)
        previous_recall = Fraction(0)
        for point in self.points:
            recall = Fraction(point.tp, self.positives)
            area += (recall - previous_recall) * point.precision
            previous_recall = recall
        return area

    @property
    def best_f1(self) -> CurvePoint | None:
        """Return the point with the highest F1; of equal ones the highest threshold. None without any TP.

        Of thresholds that score the same on the clips, the highest predicts the fewest: false alarms are what
        users of vision automations complain about most, and the clips give no reason to accept more of them.
        """
        best: CurvePoint | None = None
        for point in self.points:
            # Points come highest threshold first, so only a strictly better F1 replaces the best.
            if point.tp and (best is None or point.f1 > best.f1):
                best = point
        return best


def pr_curve(pairs: Iterable[tuple[float, bool]]) -> PRCurve:
    """Return the curve of (P(yes), truly shows the class) pairs, one per clip; raise ValueError for a bad P."""
    ordered = sorted(pairs, key=lambda pair: _checked(pair[0]), reverse=True)
    positives = sum(1 for _, truth in ordered if truth)
    points: list[CurvePoint] = []
    tp = fp = 0
    for index, (probability, truth) in enumerate(ordered):
        tp += truth
        fp += not truth
        # Clips with the same probability enter together: a threshold cannot separate them.
        if index + 1 == len(ordered) or ordered[index + 1][0] != probability:
            points.append(CurvePoint(threshold=probability, tp=tp, fp=fp, fn=positives - tp))
    return PRCurve(points=tuple(points), positives=positives)


def pr_curves(pairs_by_class: Mapping[str, Iterable[tuple[float, bool]]]) -> dict[str, PRCurve]:
    """Return each class's curve."""
    return {key: pr_curve(pairs) for key, pairs in pairs_by_class.items()}


def _checked(probability: float) -> float:
    """Return a probability in [0, 1]; raise ValueError for anything else (NaN included)."""
    if not (isinstance(probability, int | float) and math.isfinite(probability) and 0 <= probability <= 1):
        raise ValueError(f"not a probability: {probability!r}")
    return float(probability)
