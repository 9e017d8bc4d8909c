"""Frame decoding, resizing and encoding, and the image-token arithmetic that sizes each frame.

Everything here is synchronous CPU work: callers on an event loop run it in an executor.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
import io
import math
from typing import Final

from PIL import Image

# Qwen2.5-VL cuts images into 14-px patches and merges 2×2 of them: one image token per 28×28 px.
PATCH_PX: Final = 28
# Each side at least two merged patches (56 px), Qwen2.5-VL's own floor.
MIN_CELLS: Final = 2
# Qwen2.5-VL's min_pixels: smaller images are scaled up to this area before patching.
_MIN_PIXELS: Final = 56 * 56
# Qwen2.5-VL's smart_resize refuses images whose long side is 200 or more times the short one.
MAX_ASPECT: Final = 199

# The oldest and newest frames get this many times the area of a middle frame, as in the pipeline the model
# was tuned with (448² against 224²): the newest shows the current state, the oldest anchors the motion.
END_WEIGHT: Final = 4

# Image tokens per check for each detail preset.
DETAIL_BUDGETS: Final[Mapping[str, int]] = {"low": 256, "medium": 512, "high": 1024}
DEFAULT_DETAIL: Final = "medium"

DEFAULT_JPEG_QUALITY: Final = 85
_RESAMPLE: Final = Image.Resampling.BICUBIC
# A captured frame's sizes are made from a picture the decoder already scaled by a power of two, so each
# resize shrinks by less than 2×: there the triangle filter is within a grey level of bicubic (both about
# 0.6 from a full-resolution Lanczos resize) at two thirds of its cost, on every frame of every camera.
_VERSION_RESAMPLE: Final = Image.Resampling.BILINEAR


class FrameDecodeError(ValueError):
    """The bytes are not an image Pillow can decode."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedFrame:
    """A frame re-encoded at its planned size, ready to send."""

    jpeg: bytes
    width: int
    height: int
    tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FramePlan:
    """What a camera's checks send: how many frames a window holds, within how many image tokens."""

    frames: int
    budget: int

    def __post_init__(self) -> None:
        """Refuse a plan no window can follow."""
        if self.frames < 1 or self.budget < min_budget(1.0, self.frames):
            raise ValueError(f"no window of {self.frames} frames fits {self.budget} tokens")

    def sizes(self, source: tuple[int, int]) -> tuple[tuple[int, int], ...]:
        """Return each window position's size, oldest first, for frames of this source size."""
        return _planned_sizes(source, self.frames, self.budget)


# A camera's frames keep their size, so every frame of it asks the same plan: worked out once, not per frame.
@lru_cache(maxsize=64)
def _planned_sizes(source: tuple[int, int], frames: int, budget: int) -> tuple[tuple[int, int], ...]:
    """Return plan_sizes for a source size, cached (the planner's search is pure Python)."""
    return tuple(plan_sizes(source[0] / source[1], frames, budget, source=source))


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameVersions:
    """One captured frame re-encoded at every size a window position may ask of it, made once.

    Windows overlap, and a frame is the newest of one window and a middle frame of the next: preparing
    each size once, where the frame is captured, leaves a check nothing to do but pick.
    """

    plan: FramePlan
    # The size of each window position, oldest first, for this frame's source size.
    sizes: tuple[tuple[int, int], ...]
    by_size: Mapping[tuple[int, int], PreparedFrame]

    def at(self, position: int, count: int) -> PreparedFrame:
        """Return the version for `position` (0 = oldest) of a window of `count` frames.

        A window holding fewer frames than planned (a camera just started) keeps the plan's end sizes for
        its ends and the plan's first middle sizes between them, so it never spends more than the budget.
        """
        if count <= 0 or not 0 <= position < count or count > len(self.sizes):
            raise IndexError(f"no position {position} in a window of {count} of {len(self.sizes)} frames")
        slot = len(self.sizes) - 1 if position == count - 1 else position
        return self.by_size[self.sizes[slot]]


def pick_window(versions: Sequence[FrameVersions | None], budget: int) -> list[PreparedFrame] | None:
    """Return the window's frames from their prepared versions, or None when they cannot serve it.

    None when a frame was not prepared, was prepared for another budget or window length, or when frames of
    different source sizes would together exceed the budget (a camera that changed resolution).
    """
    count = len(versions)
    picked: list[PreparedFrame] = []
    for position, frame in enumerate(versions):
        if frame is None or frame.plan.budget != budget or count > frame.plan.frames:
            return None
        picked.append(frame.at(position, count))
    if sum(frame.tokens for frame in picked) > budget:
        return None
    return picked


def image_tokens(width: int, height: int) -> int:
    """Return the image tokens Qwen2.5-VL spends on a frame of this size (its smart_resize, no max cap)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"invalid image size {width}×{height}")
    w_bar = max(PATCH_PX, round(width / PATCH_PX) * PATCH_PX)
    h_bar = max(PATCH_PX, round(height / PATCH_PX) * PATCH_PX)
    if w_bar * h_bar < _MIN_PIXELS:
        beta = math.sqrt(_MIN_PIXELS / (width * height))
        w_bar = math.ceil(width * beta / PATCH_PX) * PATCH_PX
        h_bar = math.ceil(height * beta / PATCH_PX) * PATCH_PX
    return (w_bar // PATCH_PX) * (h_bar // PATCH_PX)


def frame_weights(n_frames: int) -> list[int]:
    """Return each frame's relative area, oldest first: the two ends big, the middle small."""
    if n_frames <= 2:
        return [1] * n_frames
    return [END_WEIGHT, *([1] * (n_frames - 2)), END_WEIGHT]


def min_budget(aspect: float, n_frames: int) -> int:
    """Return the fewest tokens plan_sizes accepts for a window of this shape: every frame at 56×56 px.

    Whatever the aspect: a frame too elongated to fit the budget at its true shape is squeezed instead.
    """
    if not math.isfinite(aspect) or aspect <= 0:
        raise ValueError(f"invalid aspect ratio {aspect}")
    return max(0, n_frames) * MIN_CELLS * MIN_CELLS


def plan_sizes(
    aspect: float, n_frames: int, budget_tokens: int, *, source: tuple[int, int] | None = None
) -> list[tuple[int, int]]:
    """Return each frame's (width, height), oldest first, in whole 28-px cells within the token budget.

    The aspect ratio is kept to within half a cell (no crop), the two end frames get about END_WEIGHT times
    the area of the middle ones, and with `source` given no frame is planned larger than the source (to
    within one cell): upscaling spends tokens without adding detail. A frame too elongated for the model
    or for the budget (a 4000×16 strip) is planned at the most elongated shape that fits, so it is squeezed
    along its long side rather than refused: any image gets a plan.
    """
    needed = min_budget(aspect, n_frames)
    if n_frames <= 0:
        return []
    if budget_tokens < needed:
        raise ValueError(f"{budget_tokens} tokens cannot hold {n_frames} frames (at least {needed})")
    aspect = _fitting_aspect(aspect, n_frames, budget_tokens)
    grids = _candidate_grids(aspect, budget_tokens, source)
    tokens = [_grid_tokens(grid) for grid in grids]
    weights = frame_weights(n_frames)
    # The plan only changes where some frame's share reaches a grid's size: try those points, keep the best.
    best: list[int] = [0] * n_frames
    for unit in sorted({t / w for t in tokens for w in set(weights)}):
        picks = [_largest_within(tokens, unit * w) for w in weights]
        if sum(tokens[i] for i in picks) > budget_tokens:
            break
        best = picks
    _spend_leftover(best, tokens, budget_tokens)
    return [(cols * PATCH_PX, rows * PATCH_PX) for cols, rows in (grids[i] for i in best)]


def _fitting_aspect(aspect: float, n_frames: int, budget: int) -> float:
    """Return the aspect clamped so that n frames of the smallest grid fit the budget and the model."""
    # The longest side, in cells, that n frames two cells high can have within the budget.
    longest = min(budget // (n_frames * MIN_CELLS), MAX_ASPECT * MIN_CELLS)
    if round(MIN_CELLS * max(aspect, 1 / aspect)) <= longest:
        return aspect
    widest = longest / MIN_CELLS
    return widest if aspect >= 1 else 1 / widest


def _spend_leftover(picks: list[int], tokens: list[int], budget: int) -> None:
    """Grow frames one grid step at a time while the budget allows: newest first, then oldest, then middle.

    Whole-cell grids rarely add up to the budget exactly; round-robin steps spend what is left without
    letting any one frame run away from the planned proportions.
    """
    last = len(picks) - 1
    order = [last, *([0] if last > 0 else []), *range(last - 1, 0, -1)]
    total = sum(tokens[i] for i in picks)
    grown = True
    while grown:
        grown = False
        for frame in order:
            step = picks[frame] + 1
            if step < len(tokens) and total - tokens[picks[frame]] + tokens[step] <= budget:
                total += tokens[step] - tokens[picks[frame]]
                picks[frame] = step
                grown = True


def _candidate_grids(aspect: float, budget: int, source: tuple[int, int] | None) -> list[tuple[int, int]]:
    """Return the aspect-true (cols, rows) grids from the smallest up, each within budget and source size."""
    grids = [_grid(aspect, MIN_CELLS)]
    short = MIN_CELLS + 1
    while True:
        grid = _grid(aspect, short)
        if _grid_tokens(grid) > budget or (source is not None and not _fits(grid, source)):
            return grids
        grids.append(grid)
        short += 1


def _grid(aspect: float, short: int) -> tuple[int, int]:
    """Return the (cols, rows) grid whose short side has `short` cells and whose long side keeps the aspect."""
    long = max(short, round(short * max(aspect, 1 / aspect)))
    return (long, short) if aspect >= 1 else (short, long)


def _grid_tokens(grid: tuple[int, int]) -> int:
    """Return the tokens of a grid: one per cell."""
    return grid[0] * grid[1]


def _fits(grid: tuple[int, int], source: tuple[int, int]) -> bool:
    """Return True when the grid is no larger than the source, rounded up to whole cells."""
    return grid[0] <= math.ceil(source[0] / PATCH_PX) and grid[1] <= math.ceil(source[1] / PATCH_PX)


def _largest_within(tokens: list[int], limit: float) -> int:
    """Return the index of the largest grid of at most `limit` tokens (the smallest grid as a floor)."""
    # Grids grow strictly with their short side, so the token counts are sorted.
    return max(0, bisect_right(tokens, limit) - 1)


def open_image(data: bytes) -> Image.Image:
    """Return a lazily decoded image (only the header is read); raise FrameDecodeError for non-images."""
    try:
        return Image.open(io.BytesIO(data))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise FrameDecodeError(f"not a decodable image: {err}") from err


def decode(
    image: Image.Image,
    mode: str = "RGB",
    size: tuple[int, int] | None = None,
    *,
    resample: Image.Resampling = _RESAMPLE,
) -> Image.Image:
    """Return the opened image loaded in `mode`, resized to `size` when given.

    For a much larger JPEG the decoder scales by 1/2, 1/4 or 1/8 while it decodes (draft mode), which skips
    most of the work on a 1080p frame; the draft stays at least `size` both ways, so the resize loses nothing.
    """
    loaded = decode_scaled(image, mode, size)
    if size is None or loaded.size == size:
        return loaded
    return loaded.resize(size, resample)


def decode_scaled(image: Image.Image, mode: str, at_least: tuple[int, int] | None) -> Image.Image:
    """Return the opened image loaded in `mode`, scaled down while decoding but still `at_least` both ways."""
    try:
        if at_least is not None:
            image.draft(mode, at_least)
        return image.convert(mode)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise FrameDecodeError(f"cannot decode image: {err}") from err


def decode_jpeg(data: bytes, size: tuple[int, int] | None = None) -> Image.Image:
    """Return the image decoded to RGB, resized to `size` when given."""
    return decode(open_image(data), "RGB", size)


def encode_jpeg(image: Image.Image, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """Return the image as baseline JPEG bytes."""
    if image.mode not in {"RGB", "L"}:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode_versions(
    data: bytes,
    plan: FramePlan,
    *,
    sizes: Sequence[tuple[int, int]] | None = None,
    quality: int = DEFAULT_JPEG_QUALITY,
) -> tuple[Image.Image, tuple[int, int], FrameVersions]:
    """Decode a frame once and make every size `plan` asks of it; return the decoded picture and source size too.

    The one way a frame is sized for the model, whether captured by a camera, given to a service or read by
    the evaluation toolkit. `sizes` overrides the plan's sizes for this frame's source (a clip whose camera
    changed resolution is sent at its newest frame's sizes). The decoder scales down while decoding (draft
    mode) to no less than the largest size. Raises FrameDecodeError when the bytes are not an image.
    """
    image = open_image(data)
    source = image.size
    # Read before decoding: the draft changes the image's reported size.
    sendable = image.format == "JPEG" and image.mode in {"RGB", "L"}
    planned = tuple(sizes) if sizes is not None else plan.sizes(source)
    # At least every planned size both ways: the draft may then scale by 1/2, 1/4 or 1/8 while decoding.
    bounds = (max(width for width, _ in planned), max(height for _, height in planned))
    decoded = decode_scaled(image, "RGB", bounds)
    versions = versions_of(
        data, decoded, planned, plan, as_captured=source if sendable else None, quality=quality
    )
    return decoded, source, versions


def prepare_clip(
    jpegs: Sequence[bytes],
    versions: Sequence[FrameVersions | None],
    plan: FramePlan,
    *,
    quality: int = DEFAULT_JPEG_QUALITY,
) -> list[PreparedFrame]:
    """Return a clip's frames (oldest first) at the plan's sizes, preparing those not prepared for it.

    A frame already prepared for `plan` (at capture) is only picked; the others are prepared here exactly
    as capture would have. When frames of different source sizes cannot share the budget (a camera that
    changed resolution mid-clip), every frame is made at the newest frame's sizes.
    """
    if not jpegs:
        return []
    ready = [
        version
        if version is not None and version.plan == plan
        else decode_versions(data, plan, quality=quality)[2]
        for data, version in zip(jpegs, versions, strict=True)
    ]
    picked = pick_window(ready, plan.budget)
    if picked is not None:
        return picked
    sizes = ready[-1].sizes
    same = [decode_versions(data, plan, sizes=sizes, quality=quality)[2] for data in jpegs]
    return [version.at(position, len(same)) for position, version in enumerate(same)]


def prepare_window(
    jpegs: Sequence[bytes], budget_tokens: int, *, quality: int = DEFAULT_JPEG_QUALITY
) -> list[PreparedFrame]:
    """Return the frames of a clip (oldest first) sized within the budget, as captured frames are."""
    if not jpegs:
        return []
    plan = FramePlan(frames=len(jpegs), budget=budget_tokens)
    return prepare_clip(jpegs, [None] * len(jpegs), plan, quality=quality)


def prepare_images(
    jpegs: Sequence[bytes], budget_tokens: int, *, quality: int = DEFAULT_JPEG_QUALITY
) -> list[PreparedFrame]:
    """Return separate images (not a clip) each at its own aspect ratio, sharing the budget equally."""
    if not jpegs:
        return []
    share = budget_tokens // len(jpegs)
    # One image of a one-frame plan each: its own shape, no end frames weighted against middle ones.
    plan = FramePlan(frames=1, budget=share)
    return [decode_versions(data, plan, quality=quality)[2].at(0, 1) for data in jpegs]


def versions_of(
    data: bytes,
    decoded: Image.Image,
    sizes: Sequence[tuple[int, int]],
    plan: FramePlan,
    *,
    as_captured: tuple[int, int] | None,
    quality: int = DEFAULT_JPEG_QUALITY,
) -> FrameVersions:
    """Return the frame at each planned size, resized from one decoded picture of the captured `data`.

    `as_captured` is the size at which `data` itself can be sent unchanged (a baseline JPEG), if any.

    Each smaller size is resized from the next larger one rather than from the decoded picture: fewer
    pixels to filter, and an exact halving is a plain 2×2 average.
    """
    by_size: dict[tuple[int, int], PreparedFrame] = {}
    larger = decoded.convert("RGB") if decoded.mode not in {"RGB", "L"} else decoded
    for size in sorted(set(sizes), key=lambda wh: wh[0] * wh[1], reverse=True):
        if size == as_captured:
            # Already at the planned size: sent as captured, not re-encoded.
            by_size[size] = PreparedFrame(
                jpeg=data, width=size[0], height=size[1], tokens=image_tokens(*size)
            )
            continue
        larger = _shrink(larger, size)
        by_size[size] = PreparedFrame(
            jpeg=encode_jpeg(larger, quality), width=size[0], height=size[1], tokens=image_tokens(*size)
        )
    return FrameVersions(plan=plan, sizes=tuple(sizes), by_size=by_size)


def _shrink(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Return the image at `size`: a 2×2 average for an exact halving, else the usual resampling."""
    if image.size == size:
        return image
    if image.width == size[0] * 2 and image.height == size[1] * 2:
        return image.reduce(2)
    return image.resize(size, _VERSION_RESAMPLE)
