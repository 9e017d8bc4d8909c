"""A precision-recall curve drawn as a PNG with Pillow alone: axes, the step-wise curve, the best-F1 point."""

from __future__ import annotations

from dataclasses import dataclass
import io
from typing import Final

from PIL import Image, ImageDraw

from .curves import PRCurve

BACKGROUND: Final = (255, 255, 255)
AXIS: Final = (0, 0, 0)
GRID: Final = (225, 225, 225)
CURVE: Final = (31, 119, 180)
BEST: Final = (214, 39, 40)
_TICKS: Final = (0.0, 0.25, 0.5, 0.75, 1.0)
_MARK_RADIUS: Final = 4
MIN_SIZE: Final = 120


@dataclass(frozen=True, slots=True)
class PlotArea:
    """Where recall 0..1 (left to right) and precision 0..1 (bottom to top) land on the image."""

    width: int
    height: int
    left: int = 44
    right: int = 12
    top: int = 24
    bottom: int = 34

    def pixel(self, recall: float, precision: float) -> tuple[int, int]:
        """Return the pixel of a (recall, precision) point."""
        x = self.left + recall * (self.width - self.left - self.right - 1)
        y = self.height - self.bottom - 1 - precision * (self.height - self.top - self.bottom - 1)
        return round(x), round(y)


def pr_curve_png(curve: PRCurve, *, title: str, width: int = 480, height: int = 360) -> bytes:
    """Return the curve as PNG bytes of the given size (CPU work: run it off the event loop)."""
    if width < MIN_SIZE or height < MIN_SIZE:
        raise ValueError(f"a plot needs at least {MIN_SIZE}×{MIN_SIZE} pixels")
    area = PlotArea(width, height)
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    _axes(draw, area)
    _curve(draw, area, curve)
    average = curve.average_precision
    heading = title if average is None else f"{title}  (AP {float(average):.3f})"
    # Right of the y axis name, which sits above the axis.
    draw.text((area.left + 64, 4), heading, fill=AXIS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _axes(draw: ImageDraw.ImageDraw, area: PlotArea) -> None:
    """Draw the grid, both axes, their ticks with labels, and the axis names."""
    for tick in _TICKS:
        x, y_bottom = area.pixel(tick, 0.0)
        _, y_top = area.pixel(tick, 1.0)
        x_left, y = area.pixel(0.0, tick)
        x_right, _ = area.pixel(1.0, tick)
        draw.line([(x, y_top), (x, y_bottom)], fill=GRID)
        draw.line([(x_left, y), (x_right, y)], fill=GRID)
        draw.line([(x, y_bottom), (x, y_bottom + 3)], fill=AXIS)
        draw.line([(x_left - 3, y), (x_left, y)], fill=AXIS)
        draw.text((x - 8, y_bottom + 5), f"{tick:g}", fill=AXIS)
        draw.text((4, y - 5), f"{tick:g}", fill=AXIS)
    origin = area.pixel(0.0, 0.0)
    draw.line([origin, area.pixel(1.0, 0.0)], fill=AXIS)
    draw.line([origin, area.pixel(0.0, 1.0)], fill=AXIS)
    draw.text((area.width // 2 - 16, area.height - 14), "recall", fill=AXIS)
    draw.text((4, area.top - 14), "precision", fill=AXIS)


def _curve(draw: ImageDraw.ImageDraw, area: PlotArea, curve: PRCurve) -> None:
    """Draw the curve step-wise (the shape average precision measures) and mark the best-F1 threshold."""
    if not curve.positives or not curve.points:
        return
    line: list[tuple[int, int]] = []
    previous_recall = 0.0
    for point in curve.points:
        recall, precision = point.tp / curve.positives, float(point.precision)
        line += [area.pixel(previous_recall, precision), area.pixel(recall, precision)]
        previous_recall = recall
    draw.line(line, fill=CURVE, width=2)
    best = curve.best_f1
    if best is not None:
        x, y = area.pixel(best.tp / curve.positives, float(best.precision))
        r = _MARK_RADIUS
        draw.ellipse((x - r, y - r, x + r, y + r), outline=BEST, width=2)
        label = f"best F1 {float(best.f1):.2f} at {best.threshold:.2f}"
        # Below the mark, kept inside the plot whatever the point's place.
        where = (
            max(area.left, min(x - 60, area.width - 150)),
            min(y + r + 2, area.height - area.bottom - 14),
        )
        draw.text(where, label, fill=BEST)
