"""Precision-recall curves, average precision and the best-F1 threshold, against hand computations; the PNG."""

from __future__ import annotations

from fractions import Fraction as F
import io
import math

from PIL import Image
import pytest

from custom_components.miloco.engine.evaluation.curves import CurvePoint, pr_curve, pr_curves
from custom_components.miloco.engine.evaluation.plot import BEST, CURVE, PlotArea, pr_curve_png

# Eight clips of one class: (P(yes), truly shows it). Four positives; two clips share P = 0.8.
CLIPS = [
    (0.95, True),
    (0.9, False),
    (0.8, True),
    (0.8, False),
    (0.6, True),
    (0.4, False),
    (0.3, True),
    (0.1, False),
]


def test_curve_by_hand() -> None:
    curve = pr_curve(reversed(CLIPS))  # the order clips come in does not matter
    # threshold: predicted = clips with P ≥ threshold      TP FP FN   precision  recall  F1 = 2TP/(2TP+FP+FN)
    #   0.95     1 clip                                      1  0  3   1          1/4     2/5
    #   0.9      2                                           1  1  3   1/2        1/4     2/6
    #   0.8      4 (both 0.8 clips enter together)           2  2  2   1/2        1/2     4/8
    #   0.6      5                                           3  2  1   3/5        3/4     6/9
    #   0.4      6                                           3  3  1   1/2        3/4     6/10
    #   0.3      7                                           4  3  0   4/7        1       8/11
    #   0.1      8                                           4  4  0   1/2        1       8/12
    assert curve.positives == 4
    assert [(p.threshold, p.tp, p.fp, p.fn) for p in curve.points] == [
        (0.95, 1, 0, 3),
        (0.9, 1, 1, 3),
        (0.8, 2, 2, 2),
        (0.6, 3, 2, 1),
        (0.4, 3, 3, 1),
        (0.3, 4, 3, 0),
        (0.1, 4, 4, 0),
    ]
    assert [p.precision for p in curve.points] == [F(1), F(1, 2), F(1, 2), F(3, 5), F(1, 2), F(4, 7), F(1, 2)]
    assert [p.recall for p in curve.points] == [F(1, 4), F(1, 4), F(1, 2), F(3, 4), F(3, 4), F(1), F(1)]
    assert [p.f1 for p in curve.points] == [F(2, 5), F(1, 3), F(1, 2), F(2, 3), F(3, 5), F(8, 11), F(2, 3)]
    # Average precision, Σ (Rk − Rk−1)·Pk: 1/4·1 + 0·1/2 + 1/4·1/2 + 1/4·3/5 + 0·1/2 + 1/4·4/7 + 0·1/2
    #   = 70/280 + 35/280 + 42/280 + 40/280 = 187/280.
    assert curve.average_precision == F(187, 280)
    best = curve.best_f1
    assert best is not None
    assert (best.threshold, best.f1) == (0.3, F(8, 11))


def test_equal_f1_picks_the_higher_threshold() -> None:
    # t = 0.9: TP 1, FP 0, FN 1 → F1 2/3;  t = 0.3: TP 2, FP 2, FN 0 → F1 4/6 = 2/3 as well.
    curve = pr_curve([(0.9, True), (0.7, False), (0.5, False), (0.3, True)])
    assert [p.f1 for p in curve.points] == [F(2, 3), F(1, 2), F(2, 5), F(2, 3)]
    best = curve.best_f1
    assert best is not None
    assert best.threshold == 0.9
    # AP: 1/2·1 + 0 + 0 + 1/2·2/4 = 3/4.
    assert curve.average_precision == F(3, 4)


def test_degenerate_inputs() -> None:
    # No clip shows the class: recall, AP and a best threshold are undefined.
    none_positive = pr_curve([(0.7, False), (0.2, False)])
    assert none_positive.average_precision is None
    assert none_positive.best_f1 is None
    assert none_positive.points[0].recall is None
    # Every clip at the same probability: one point, which predicts all of them.
    flat = pr_curve([(0.5, True), (0.5, False)])
    assert flat.points == (CurvePoint(threshold=0.5, tp=1, fp=1, fn=0),)
    assert flat.average_precision == F(1, 2)
    # Nothing at all.
    empty = pr_curve([])
    assert empty.points == () and empty.average_precision is None and empty.best_f1 is None
    # A perfect ranking has AP 1 and its best threshold is the lowest positive's probability.
    perfect = pr_curve([(0.9, True), (0.8, True), (0.2, False)])
    assert perfect.average_precision == 1
    assert perfect.best_f1 is not None and perfect.best_f1.threshold == 0.8


@pytest.mark.parametrize("probability", [math.nan, math.inf, -0.1, 1.5])
def test_bad_probabilities_are_refused(probability: float) -> None:
    with pytest.raises(ValueError, match="not a probability"):
        pr_curve([(0.5, True), (probability, False)])


def test_curves_per_class() -> None:
    curves = pr_curves({"wave": CLIPS, "thumbs_up": [(0.9, True)]})
    assert curves["wave"].average_precision == F(187, 280)
    assert curves["thumbs_up"].average_precision == 1


@pytest.mark.parametrize(("width", "height"), [(480, 360), (200, 150)])
def test_png_of_the_stated_size_with_the_curve_drawn(width: int, height: int) -> None:
    curve = pr_curve(CLIPS)
    png = pr_curve_png(curve, title="wave", width=width, height=height)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == (width, height)
    image.load()
    rgb = image.convert("RGB")
    area = PlotArea(width, height)
    # The first step: precision 1 from recall 0 to 1/4; the last: precision 1/2 at recall 1 (its start).
    assert rgb.getpixel(area.pixel(0.125, 1.0)) == CURVE
    assert rgb.getpixel(area.pixel(0.6, 0.6)) == CURVE
    # Nothing of the curve where no step runs (high precision at full recall).
    assert rgb.getpixel(area.pixel(0.95, 0.95)) != CURVE
    # The best-F1 mark ring: right of the point (recall 1, precision 4/7) by its radius.
    x, y = area.pixel(1.0, 4 / 7)
    assert BEST in {rgb.getpixel((x + dx, y)) for dx in (3, 4, 5) if x + dx < width}
    assert BEST in {rgb.getpixel((x - dx, y)) for dx in (3, 4, 5)}


def test_png_without_positives_has_axes_but_no_curve() -> None:
    png = pr_curve_png(pr_curve([(0.4, False)]), title="none", width=160, height=120)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (160, 120)
    colours = {colour for _, colour in image.getcolors(maxcolors=160 * 120) or []}
    assert CURVE not in colours and BEST not in colours
    assert (0, 0, 0) in colours


def test_png_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        pr_curve_png(pr_curve(CLIPS), title="x", width=60, height=60)
