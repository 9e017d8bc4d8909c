"""A camera's recent frames in a fixed-size ring buffer, and the choice of frames for one check."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from .frames import DEFAULT_JPEG_QUALITY, FramePlan, FrameVersions, decode_versions
from .gate import Thumb, thumbnail

# The window MiMo-VL-Miloco was tuned on: six frames at two frames per second, three seconds of motion. The
# integration's camera settings and the evaluation toolkit default to it.
DEFAULT_FPS: Final = 2.0
DEFAULT_FRAMES_PER_CHECK: Final = 6


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame: when (monotonic seconds), the JPEG bytes, its gate thumbnail and model sizes."""

    timestamp: float
    jpeg: bytes
    thumb: Thumb | None = None
    prepared: FrameVersions | None = None


def prepare_capture(
    jpeg: bytes, plan: FramePlan, *, quality: int = DEFAULT_JPEG_QUALITY
) -> tuple[Thumb, FrameVersions]:
    """Decode a captured frame once into its gate thumbnail and every size a check of `plan` may send.

    Synchronous CPU work for an executor. The sizes are made by frames.decode_versions, as for any frame
    sent to the model; the thumbnail comes from the same decoded picture. Raises FrameDecodeError (only)
    when the bytes are not a decodable image.
    """
    decoded, source, versions = decode_versions(jpeg, plan, quality=quality)
    thumb = thumbnail(decoded, full_size=source)
    return thumb, versions


class FrameWindow:
    """The last `capacity` frames of one camera, oldest first; memory never grows past that."""

    def __init__(self, capacity: int) -> None:
        """Create an empty window holding at most `capacity` frames."""
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self._frames: deque[Frame] = deque(maxlen=capacity)

    @classmethod
    def for_checks_of(cls, frames_per_check: int) -> FrameWindow:
        """Return a window sized for checks of `frames_per_check` frames, with slack for the frames between them."""
        return cls(capacity=frames_per_check * 2 + 2)

    @property
    def capacity(self) -> int:
        """Return the most frames the window holds."""
        # The deque was created with a maxlen, so it is never None here.
        return self._frames.maxlen or 0

    @property
    def newest(self) -> Frame | None:
        """Return the newest frame, or None when the window is empty."""
        return self._frames[-1] if self._frames else None

    def __len__(self) -> int:
        """Return how many frames the window holds."""
        return len(self._frames)

    def __iter__(self) -> Iterator[Frame]:
        """Iterate over the frames, oldest first."""
        return iter(self._frames)

    def add(self, frame: Frame) -> bool:
        """Append a frame (dropping the oldest when full); a frame older than the newest is refused."""
        newest = self.newest
        if newest is not None and frame.timestamp < newest.timestamp:
            return False
        self._frames.append(frame)
        return True

    def clear(self) -> None:
        """Drop every frame."""
        self._frames.clear()

    def stale(self, now: float, max_age: float) -> bool:
        """Return True when there is no frame newer than `max_age` seconds."""
        newest = self.newest
        return newest is None or now - newest.timestamp > max_age

    def select(self, n: int, span_s: float, now: float) -> list[Frame]:
        """Return up to n distinct frames from the last `span_s` seconds, evenly spaced, oldest first.

        The targets are n instants evenly spread from `now - span_s` to `now`; frames are matched to them in
        order so that the total time error is smallest, a tie going to the newer frame. With fewer frames in
        the span than n, every one of them is returned.
        """
        if n < 1:
            return []
        candidates = [f for f in self._frames if now - span_s <= f.timestamp <= now]
        if len(candidates) <= n:
            return candidates
        if n == 1:
            return [candidates[-1]]
        step = span_s / (n - 1)
        targets = [now - span_s + i * step for i in range(n)]
        return [candidates[i] for i in _match(targets, [f.timestamp for f in candidates])]


def _match(targets: list[float], times: list[float]) -> list[int]:
    """Return increasing indices into `times`, one per target, with the least total |time - target|.

    Dynamic programming over (target, frame) pairs: small (a window holds tens of frames) and exact, where
    a greedy nearest-frame pick would assign one frame twice or skip over a gap badly.
    """
    n, m = len(targets), len(times)
    inf = (float("inf"), 0)
    # cost[i][j]: best (error, -index sum) for targets[: i + 1] with target i matched to frame j.
    cost = [[inf] * m for _ in range(n)]
    back = [[-1] * m for _ in range(n)]
    for j in range(m):
        cost[0][j] = (abs(times[j] - targets[0]), -j)
    for i in range(1, n):
        best, best_j = inf, -1
        for j in range(i, m):
            # best over k < j of cost[i - 1][k], kept as a running minimum while j advances.
            if cost[i - 1][j - 1] <= best:
                best, best_j = cost[i - 1][j - 1], j - 1
            if best_j >= 0:
                cost[i][j] = (best[0] + abs(times[j] - targets[i]), best[1] - j)
                back[i][j] = best_j
    end = min(range(n - 1, m), key=lambda j: cost[n - 1][j])
    picks = [end]
    for i in range(n - 1, 0, -1):
        picks.append(back[i][picks[-1]])
    return picks[::-1]
