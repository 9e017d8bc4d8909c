"""A video file as a clip: a few frames spread evenly over it, oldest first, decoded with PyAV (blocking)."""

from __future__ import annotations

import importlib
import io
from typing import Any, Final

from .frames import encode_jpeg
from .window import Frame

# A clip is a short scene ("the last minute at the door"): a longer video would cost minutes of decoding.
MAX_CLIP_SECONDS: Final = 300.0
# Container timestamps are rounded (a 1/90000 s clock against evenly spaced targets): tolerate that much.
_TOLERANCE_S: Final = 1e-3


class VideoClipError(ValueError):
    """The video cannot be read as a clip; `reason` says why in a few words."""

    def __init__(self, reason: str) -> None:
        """Keep the reason (a translated message shows it)."""
        super().__init__(reason)
        self.reason = reason


def clip_from_video(data: bytes, frames: int) -> list[Frame]:
    """Return up to `frames` frames spread evenly from the video's first to its last, as timed JPEGs.

    Two passes: the packets' times (no decoding) give the span, then one decode keeps the first frame at or
    after each target time; so memory holds only the kept frames, whatever the video's length.
    """
    av = _import_av()
    try:
        times = _presentation_times(av, data)
        if not times:
            raise VideoClipError("no video frames")
        start, end = times[0], times[-1]
        if end - start > MAX_CLIP_SECONDS:
            raise VideoClipError(f"longer than {MAX_CLIP_SECONDS:g} s")
        count = max(1, min(frames, len(times)))
        step = (end - start) / (count - 1) if count > 1 else 0.0
        targets = [start + index * step for index in range(count)]
        return _decode_at(av, data, targets, start)
    except av.FFmpegError as err:
        raise VideoClipError(_reason(err)) from None


def _presentation_times(av: Any, data: bytes) -> list[float]:
    """Return the video stream's frame times in seconds, sorted (packets come in decoding order)."""
    with av.open(io.BytesIO(data)) as container:
        if not container.streams.video:
            raise VideoClipError("no video stream")
        stream = container.streams.video[0]
        base = float(stream.time_base or 0) or 1 / 90000
        return sorted(
            float(packet.pts) * base
            for packet in container.demux(stream)
            if packet.size and packet.pts is not None
        )


def _decode_at(av: Any, data: bytes, targets: list[float], start: float) -> list[Frame]:
    """Return the first decoded frame at or after each target time, timed from the video's start."""
    kept: list[Frame] = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if len(kept) == len(targets):
                break
            if frame.time is None or frame.time + _TOLERANCE_S < targets[len(kept)]:
                continue
            kept.append(Frame(float(frame.time) - start, encode_jpeg(frame.to_image())))
    if not kept:
        raise VideoClipError("no decodable frames")
    return kept


def _import_av() -> Any:
    """Return the `av` module (PyAV, which Home Assistant's stream integration brings)."""
    try:
        return importlib.import_module("av")
    except ImportError:
        raise VideoClipError("PyAV is not installed") from None


def _reason(err: Exception) -> str:
    """Return FFmpeg's short reason for an error."""
    return str(getattr(err, "strerror", None) or err).splitlines()[0][:160]
