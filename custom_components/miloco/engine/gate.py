"""Cheap change detection on small grayscale thumbnails, so that a static scene costs no model call."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
import math
from operator import mul
from typing import Final

from PIL import Image, ImageChops, ImageFilter

from .frames import decode, open_image

# 64 cells across: a forearm at living-room distance still covers a dozen cells.
THUMB_WIDTH: Final = 64
_MIN_THUMB_HEIGHT: Final = 16
_MAX_THUMB_HEIGHT: Final = 128
# A slight blur at thumbnail scale: sub-cell jitter (camera vibration, compression blocks) is not a change.
_BLUR: Final = ImageFilter.GaussianBlur(0.7)

# Thumbs are compared after normalising each to zero mean and unit spread, so a global gain or offset
# (auto-exposure, lamp flicker) cancels out. A flat scene's spread is floored so noise is not blown up.
_MIN_SPREAD: Final = 20.0
# The normalised picture is stored in 8 bits at this many levels per spread, centred on 128.
_LEVELS_PER_SPREAD: Final = 32
_LEVELS: Final = range(256)
_SQUARES: Final = tuple(level * level for level in _LEVELS)
# A cell has changed when it moved by more than this many spreads (about 15 grey levels in a typical room).
CELL_FLOOR: Final = 0.3
# Fraction of cells that must change: 0.5% is about a dozen cells of a 64×36 thumb, an object of about
# half a percent of the frame appearing (a forearm raised a few metres away). Noise, JPEG artefacts and
# exposure changes score 0, so the gate can afford to be this sensitive: a missed gesture is not recovered,
# while a needless check costs only compute.
DEFAULT_THRESHOLD: Final = 0.005


@dataclass(frozen=True, slots=True)
class Thumb:
    """A small grayscale picture of a frame: width × height bytes, row by row."""

    width: int
    height: int
    pixels: bytes
    # The brightness-normalised picture, made once where the thumb is made (an executor job), so that
    # comparing thumbs on the event loop is a difference and a histogram (never modified after).
    normalised: Image.Image = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Normalise the pixels once."""
        object.__setattr__(self, "normalised", _normalised(self))


class GateReason(StrEnum):
    """Why the gate opened or stayed shut."""

    FIRST = "first"
    FORCED = "forced"
    CHANGED = "changed"
    STATIC = "static"


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Whether a check should run, with the change score that decided it."""

    changed: bool
    score: float
    reason: GateReason


def thumb_size(width: int, height: int) -> tuple[int, int]:
    """Return the thumbnail size for a frame: THUMB_WIDTH wide, the height keeping the aspect ratio."""
    rows = round(THUMB_WIDTH * height / width)
    return THUMB_WIDTH, min(_MAX_THUMB_HEIGHT, max(_MIN_THUMB_HEIGHT, rows))


def thumbnail(source: Image.Image | bytes, *, full_size: tuple[int, int] | None = None) -> Thumb:
    """Return the blurred grayscale thumbnail of an image or of encoded image bytes.

    From bytes, the JPEG decoder produces only the luminance, at 1/8 scale when the frame is large enough.
    An image the decoder already scaled down (a draft) gives its `full_size`, so that the thumb matches the
    one the frame's bytes would give.
    """
    if isinstance(source, bytes):
        image = open_image(source)
        size = thumb_size(*image.size)
        gray = decode(image, "L", size, resample=Image.Resampling.BOX)
    else:
        full = full_size or source.size
        size = thumb_size(*full)
        # Mimic the JPEG draft's power-of-two reduction, so that both routes give the same thumb: the
        # reduction the bytes route would make, less the one the decoder already made.
        factor = max(1, _draft_factor(full, size) // max(1, round(full[0] / source.width)))
        gray = source.convert("L")
        gray = (gray.reduce(factor) if factor > 1 else gray).resize(size, Image.Resampling.BOX)
    # Box averaging over each cell is the best noise filter a downscale gives; the blur then hides sub-cell
    # jitter.
    small = gray.filter(_BLUR)
    return Thumb(small.width, small.height, small.tobytes())


def _draft_factor(source: tuple[int, int], size: tuple[int, int]) -> int:
    """Return the scale (8, 4, 2 or 1) the JPEG decoder's draft mode picks for this reduction."""
    scale = min(source[0] // size[0], source[1] // size[1])
    return next((factor for factor in (8, 4, 2) if scale >= factor), 1)


def change_score(a: Thumb, b: Thumb) -> float:
    """Return the fraction (0..1) of cells that differ beyond the noise floor, brightness normalised."""
    if (a.width, a.height) != (b.width, b.height):
        return 1.0
    difference = ImageChops.difference(a.normalised, b.normalised)
    floor = int(CELL_FLOOR * _LEVELS_PER_SPREAD)
    return sum(difference.histogram()[floor + 1 :]) / len(a.pixels)


def _normalised(thumb: Thumb) -> Image.Image:
    """Return the thumb shifted to zero mean and scaled to unit spread (floored), as 8-bit levels."""
    image = Image.frombytes("L", (thumb.width, thumb.height), thumb.pixels)
    # Mean and spread from the histogram, and the linear map done by Pillow on a float picture (then clipped
    # and rounded back to 8 bits): every frame of a still room is normalised, so no per-level Python here.
    counts = image.histogram()
    cells = len(thumb.pixels)
    mean = sum(map(mul, counts, _LEVELS)) / cells
    variance = max(0.0, sum(map(mul, counts, _SQUARES)) / cells - mean * mean)
    scale = _LEVELS_PER_SPREAD / max(_MIN_SPREAD, math.sqrt(variance))
    # Half a level more: the conversion back to 8 bits truncates, and this makes it round.
    offset = 128.5 - mean * scale
    return image.convert("F").point(lambda level: level * scale + offset).convert("L")


class ChangeGate:
    """Decide per frame whether the scene changed since the last model check.

    The newest thumb is compared with the thumb of the last check (slow drift accumulates until caught)
    and with the previous frame (fast motion, even motion that ends where it began). A change seen on any
    frame stays latched until a check runs, so a skipped or busy check does not lose it.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        """Create a gate; threshold 0 opens it for every frame."""
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be within 0..1, not {threshold}")
        self._threshold = threshold
        self._reference: Thumb | None = None
        self._previous: Thumb | None = None
        self._since_check = 0.0
        # The checks in flight, oldest first: the newest thumb of each, how far frames seen since moved from
        # it, and whether a check was forced since (that check asked the old rules).
        self._bases: list[_Base] = []
        self._force_pending = False
        self._forced_until = -math.inf

    @property
    def threshold(self) -> float:
        """Return the fraction of changed cells that opens the gate."""
        return self._threshold

    def observe(self, thumb: Thumb, now: float) -> GateDecision:
        """Take the newest frame's thumb and return whether a check should run now."""
        reference, previous = self._reference, self._previous
        self._previous = thumb
        step = change_score(previous, thumb) if previous is not None else 0.0
        score = max(step, change_score(reference, thumb) if reference is not None else 1.0)
        self._since_check = max(self._since_check, score)
        for base in self._bases:
            base.since = max(base.since, step, change_score(base.thumb, thumb))
        if self._force_pending or now <= self._forced_until:
            return GateDecision(True, self._since_check, GateReason.FORCED)
        if reference is None:
            return GateDecision(True, self._since_check, GateReason.FIRST)
        if self._since_check >= self._threshold:
            return GateDecision(True, self._since_check, GateReason.CHANGED)
        return GateDecision(False, self._since_check, GateReason.STATIC)

    @property
    def changed_since_check(self) -> bool:
        """Return True when the frames seen since the last check changed enough for another one (or forced)."""
        return self._force_pending or self._since_check >= self._threshold

    @property
    def changed_since_newest_start(self) -> bool:
        """Return True when a frame newer than the newest check started moved (or a force came after it)."""
        if not self._bases:
            # A check still in flight is older than the last answer applied (or there is none): what moved
            # since that answer's window is what no check has seen.
            return self.changed_since_check
        newest = self._bases[-1]
        return newest.forced or newest.since >= self._threshold

    def check_started(self, thumb: Thumb) -> None:
        """Record that a check of a window ending with this thumb started (its answer comes later)."""
        self._bases.append(_Base(thumb))

    def mark_checked(self, thumb: Thumb) -> None:
        """Record that a model check answered about a window ending with this thumb.

        A change seen while the check ran (even a wave over before it answered) is newer than its window,
        and a check forced meanwhile (a rule changed) wanted more than that check asked: both stay latched,
        so that they ask for the next check. Checks that started before this one are over: their answers
        are older news (the caller applies answers in order).
        """
        index = next((i for i, base in enumerate(self._bases) if base.thumb is thumb), None)
        if index is None:
            # Not a check in flight (the gate was reset meanwhile): its thumb is the new reference.
            self._since_check, self._force_pending = 0.0, False
            self._bases.clear()
        else:
            base = self._bases[index]
            self._since_check, self._force_pending = base.since, base.forced
            del self._bases[: index + 1]
        self._reference = thumb

    def force(self, until: float | None = None) -> None:
        """Open the gate until the next check runs, or (with `until`) for every frame up to that time."""
        if until is None:
            self._force_pending = True
            for base in self._bases:
                base.forced = True
        else:
            self._forced_until = max(self._forced_until, until)

    def reset(self) -> None:
        """Forget every thumb (e.g. after the camera reconnects): the next frame opens the gate."""
        self._reference = None
        self._previous = None
        self._bases.clear()
        self._since_check = 0.0


@dataclass(slots=True)
class _Base:
    """A check in flight: the newest thumb of its window, and what happened since it started."""

    thumb: Thumb
    # How far the frames seen since moved from the thumb (or from each other).
    since: float = 0.0
    # A check was forced since (this one asked the old rules).
    forced: bool = False
