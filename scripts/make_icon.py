"""Draw the integration's brand icon (a friendly camera-lens eye with a spark) and write the PNG files."""

from __future__ import annotations

import io
import math
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

REPO = Path(__file__).resolve().parent.parent
BRAND = REPO / "custom_components" / "miloco" / "brand"
# Home Assistant's brands convention: icon.png at 256 px and icon@2x.png at 512 px.
OUTPUTS = {"icon.png": 256, "icon@2x.png": 512}

# Drawn this many times larger, then shrunk with LANCZOS: Pillow's shapes have no anti-aliasing of their own.
SUPERSAMPLE = 4
# Every coordinate below is on a 256-unit grid, whatever the output size.
GRID = 256

Color = tuple[int, int, int, int]
INK: Color = (27, 43, 75, 255)
SCLERA: Color = (244, 248, 255, 255)
IRIS_TOP: Color = (34, 197, 170, 255)
IRIS_BOTTOM: Color = (47, 107, 255, 255)
PUPIL: Color = (15, 27, 51, 255)
GLINT: Color = (255, 255, 255, 255)
SPARK: Color = (255, 182, 39, 255)

EYE_CENTER = (124.0, 148.0)
EYE_HALF_WIDTH = 112.0
EYE_HALF_HEIGHT = 72.0
EYE_STROKE = 11.0
IRIS_RADIUS = 54.0
IRIS_RING = 8.0
APERTURE_RADIUS = 22.0
APERTURE_BLADES = 6


class _Canvas:
    """An RGBA canvas addressed in grid units."""

    def __init__(self, size: int) -> None:
        """Start a transparent canvas that is SUPERSAMPLE times the output size."""
        self.pixels = size * SUPERSAMPLE
        self.scale = self.pixels / GRID
        self.image = Image.new("RGBA", (self.pixels, self.pixels), (0, 0, 0, 0))

    def mask(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        """Return a blank coverage mask and a drawer for it."""
        layer = Image.new("L", self.image.size, 0)
        return layer, ImageDraw.Draw(layer)

    def circle(self, draw: ImageDraw.ImageDraw, center: tuple[float, float], radius: float) -> None:
        """Fill a circle on a mask."""
        x, y = center
        s = self.scale
        draw.ellipse(((x - radius) * s, (y - radius) * s, (x + radius) * s, (y + radius) * s), fill=255)

    def polygon(self, draw: ImageDraw.ImageDraw, points: list[tuple[float, float]]) -> None:
        """Fill a polygon on a mask."""
        draw.polygon([(x * self.scale, y * self.scale) for x, y in points], fill=255)

    def paint(self, color: Color, coverage: Image.Image) -> None:
        """Composite a flat colour through a coverage mask."""
        self.paint_image(Image.new("RGBA", self.image.size, color), coverage)

    def paint_image(self, source: Image.Image, coverage: Image.Image) -> None:
        """Composite an image through a coverage mask."""
        layer = source.copy()
        layer.putalpha(ImageChops.multiply(source.getchannel("A"), coverage))
        self.image = Image.alpha_composite(self.image, layer)

    def vertical_gradient(self, top: Color, bottom: Color, y0: float, y1: float) -> Image.Image:
        """Return a full-canvas image blending top→bottom between grid rows y0 and y1."""
        ramp = Image.linear_gradient("L").resize(
            (self.pixels, round((y1 - y0) * self.scale)), Image.Resampling.BICUBIC
        )
        blend = Image.new("L", self.image.size, 0)
        blend.paste(255, (0, round(y1 * self.scale), self.pixels, self.pixels))
        blend.paste(ramp, (0, round(y0 * self.scale)))
        return Image.composite(
            Image.new("RGBA", self.image.size, bottom), Image.new("RGBA", self.image.size, top), blend
        )

    def finish(self, size: int) -> Image.Image:
        """Return the canvas shrunk to the output size."""
        return self.image.resize((size, size), Image.Resampling.LANCZOS)


def _almond(canvas: _Canvas, half_width: float, half_height: float) -> Image.Image:
    """Return the mask of an eye shape: the lens where two large circles overlap."""
    cx, cy = EYE_CENTER
    # The circle through both corners and the top (or bottom) of the eye.
    radius = (half_width**2 + half_height**2) / (2 * half_height)
    upper, draw_upper = canvas.mask()
    canvas.circle(draw_upper, (cx, cy + radius - half_height), radius)
    lower, draw_lower = canvas.mask()
    canvas.circle(draw_lower, (cx, cy - radius + half_height), radius)
    return ImageChops.multiply(upper, lower)


def _disc(canvas: _Canvas, center: tuple[float, float], radius: float) -> Image.Image:
    """Return the mask of one circle."""
    layer, draw = canvas.mask()
    canvas.circle(draw, center, radius)
    return layer


def _aperture(canvas: _Canvas) -> Image.Image:
    """Return the mask of the lens aperture: a softly turned hexagon, like iris blades."""
    cx, cy = EYE_CENTER
    points = [
        (
            cx + APERTURE_RADIUS * math.cos(math.radians(15 + 360 * i / APERTURE_BLADES)),
            cy + APERTURE_RADIUS * math.sin(math.radians(15 + 360 * i / APERTURE_BLADES)),
        )
        for i in range(APERTURE_BLADES)
    ]
    layer, draw = canvas.mask()
    canvas.polygon(draw, points)
    return layer


def _spark(canvas: _Canvas, center: tuple[float, float], radius: float) -> Image.Image:
    """Return the mask of a four-pointed sparkle with concave sides."""
    cx, cy = center
    # A superellipse with exponent above 2 pinches its sides inwards; 2.6 keeps the points friendly.
    exponent = 2.6
    points = []
    for step in range(360):
        angle = math.radians(step)
        cos, sin = math.cos(angle), math.sin(angle)
        points.append(
            (
                cx + radius * math.copysign(abs(cos) ** exponent, cos),
                cy + radius * math.copysign(abs(sin) ** exponent, sin),
            )
        )
    layer, draw = canvas.mask()
    canvas.polygon(draw, points)
    return layer


def draw_icon(size: int = 256) -> Image.Image:
    """Return the brand icon as a square RGBA image of the given size on a transparent background."""
    canvas = _Canvas(size)
    cx, cy = EYE_CENTER
    outline = _almond(canvas, EYE_HALF_WIDTH, EYE_HALF_HEIGHT)
    white = _almond(canvas, EYE_HALF_WIDTH - EYE_STROKE * 1.6, EYE_HALF_HEIGHT - EYE_STROKE)
    canvas.paint(INK, outline)
    canvas.paint(SCLERA, white)
    # The iris tucks under the eyelids, as a real eye's does.
    canvas.paint(INK, ImageChops.multiply(_disc(canvas, EYE_CENTER, IRIS_RADIUS), white))
    iris = _disc(canvas, EYE_CENTER, IRIS_RADIUS - IRIS_RING)
    gradient = canvas.vertical_gradient(IRIS_TOP, IRIS_BOTTOM, cy - IRIS_RADIUS, cy + IRIS_RADIUS)
    canvas.paint_image(gradient, ImageChops.multiply(iris, white))
    canvas.paint(PUPIL, _aperture(canvas))
    canvas.paint(GLINT, _disc(canvas, (cx - 19, cy - 20), 9))
    canvas.paint(GLINT, _disc(canvas, (cx + 17, cy + 16), 4))
    canvas.paint(SPARK, _spark(canvas, (212, 48), 34))
    canvas.paint(SPARK, _spark(canvas, (177, 21), 12))
    return canvas.finish(size)


def encode_png(image: Image.Image) -> bytes:
    """Return the image as PNG bytes with no metadata, so that every run writes the same bytes."""
    buffer = io.BytesIO()
    clean = Image.frombytes(image.mode, image.size, image.tobytes())
    clean.save(buffer, format="PNG", optimize=False, compress_level=9)
    return buffer.getvalue()


def render(size: int = 256) -> bytes:
    """Return the PNG bytes of the icon at one size."""
    return encode_png(draw_icon(size))


def main() -> None:
    """Write every icon size into the integration's brand folder."""
    BRAND.mkdir(parents=True, exist_ok=True)
    for name, size in OUTPUTS.items():
        path = BRAND / name
        path.write_bytes(render(size))
        print(f"wrote {path.relative_to(REPO)} ({size}x{size})")


if __name__ == "__main__":
    main()
