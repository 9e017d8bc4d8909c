"""Video clips decoded with PyAV and sampled at the clip's frame rate, as a camera captured at that rate."""

from __future__ import annotations

from collections import deque
import importlib
import math
from pathlib import Path
from typing import Any, Final

from PIL import Image

from ..frames import encode_jpeg
from ..window import Frame
from .errors import EvaluationError

# Frame times are rounded by containers (a 1/30 s clock against 0.5 s slots): tolerate that much.
_SLOT_TOLERANCE_S: Final = 1e-3


def read_video(path: Path, fps: float, keep: int, *, where: str) -> list[Frame]:
    """Return the last `keep` frames sampled at `fps` (the first frame in each 1/fps slot), as JPEGs."""
    av = _import_av()
    tail: deque[tuple[float, Image.Image]] = deque(maxlen=max(1, keep))
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise EvaluationError(f"{where}: {path.name} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            _sample(container.decode(stream), fps, tail)
    except av.FFmpegError as err:
        raise EvaluationError(f"{where}: cannot decode {path.name} ({_reason(err)})") from None
    if not tail:
        raise EvaluationError(f"{where}: {path.name} holds no frames")
    return [Frame(timestamp, encode_jpeg(image)) for timestamp, image in tail]


def _sample(frames: Any, fps: float, tail: deque[tuple[float, Image.Image]]) -> None:
    """Keep the first decoded frame of every 1/fps slot, timed from the first frame."""
    start: float | None = None
    next_slot = 0.0
    for index, frame in enumerate(frames):
        # A frame without a timestamp (rare, raw streams) is placed by its index at the sampling rate.
        moment = float(frame.time) if frame.time is not None else index / fps
        if start is None:
            start = moment
        elapsed = moment - start
        if elapsed + _SLOT_TOLERANCE_S < next_slot:
            continue
        tail.append((elapsed, frame.to_image()))
        next_slot = (math.floor(elapsed * fps + _SLOT_TOLERANCE_S) + 1) / fps


def _import_av() -> Any:
    """Return the `av` module (PyAV), or raise EvaluationError saying how to get it."""
    try:
        return importlib.import_module("av")
    except ImportError as err:
        raise EvaluationError(f"video clips need PyAV (pip install av): {err}") from None


def _reason(err: Exception) -> str:
    """Return FFmpeg's short reason for an error, without the file path it repeats."""
    return str(getattr(err, "strerror", None) or err).splitlines()[0][:160]
