"""The thresholds a run recommends: each class's precision-recall curve over its clips' P(yes), and the best F1.

A class has a curve when the checks gave its P(yes) (per-condition mode on a server with log-probabilities);
a clip whose check gave none (it failed) counts at P = 0, as a failed check counts as seeing nothing. The
pooled curve, over every class's clips together, gives the one value a camera's default threshold can take.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import math
from typing import Any, Final

from .curves import CurvePoint, PRCurve, pr_curve
from .runner import ClipOutcome

# The key of the pooled curve (every class together): the camera's default threshold.
POOLED: Final = "all"
# The forms take the threshold in whole percent within these bounds (settings.THRESHOLD, LABEL_THRESHOLD).
FORM_MIN_PERCENT: Final = 1
FORM_MAX_PERCENT: Final = 99


def class_curves(outcomes: Sequence[ClipOutcome], classes: Sequence[str]) -> dict[str, PRCurve]:
    """Return the curve of each class some check gave a P(yes) for, then the pooled curve of those classes."""
    curves: dict[str, PRCurve] = {}
    pooled: list[tuple[float, bool]] = []
    for key in classes:
        if not any(key in outcome.probabilities for outcome in outcomes):
            continue
        pairs = [(outcome.probabilities.get(key, 0.0), key in outcome.truth) for outcome in outcomes]
        curves[key] = pr_curve(pairs)
        pooled += pairs
    if curves:
        curves[POOLED] = pr_curve(pooled)
    return curves


def form_percent(threshold: float) -> int:
    """Return the whole percent to enter in a form for a threshold: rounded down, so no clip above it is lost."""
    return min(FORM_MAX_PERCENT, max(FORM_MIN_PERCENT, math.floor(threshold * 100 + 1e-6)))


def curve_entry(curve: PRCurve) -> dict[str, Any]:
    """Return a curve as report data: its points, its area, and the best-F1 threshold with its form value."""
    best = curve.best_f1
    area = curve.average_precision
    return {
        "positives": curve.positives,
        "average_precision": None if area is None else float(area),
        "best_f1": None
        if best is None
        else {**_point(best, curve), "form_percent": form_percent(best.threshold)},
        "points": [_point(point, curve) for point in curve.points],
    }


def _point(point: CurvePoint, curve: PRCurve) -> dict[str, Any]:
    """Return one point's threshold, counts and scores as floats."""
    recall = point.recall
    return {
        "threshold": point.threshold,
        "tp": point.tp,
        "fp": point.fp,
        "fn": point.fn,
        "precision": float(point.precision),
        "recall": None if recall is None else float(recall),
        "f1": float(point.f1),
    }


def form_snippet(thresholds: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Return the lines that say what to enter in the forms: the camera's default, then each class's rule."""
    lines: list[str] = []
    pooled = thresholds.get(POOLED, {}).get("best_f1")
    if pooled is not None:
        lines += [
            "# Camera form → Capture and timing → Sensitivity of gestures, activities and presence (%)",
            f"label_threshold: {pooled['form_percent']}",
        ]
    rules = [
        (key, entry["best_f1"]) for key, entry in thresholds.items() if key != POOLED and entry["best_f1"]
    ]
    if rules:
        lines.append(
            "# Rule form (the rule that looks for the class) → Timing and sensitivity → Sensitivity (%)"
        )
        lines += [f"{key}: {best['form_percent']}" for key, best in rules]
    return lines
