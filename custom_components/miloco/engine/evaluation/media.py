"""A clip's frames as the watcher would have captured them: image files as they are, or a video sampled."""

from __future__ import annotations

from collections.abc import Sequence

from ..frames import FrameDecodeError, decode_jpeg
from ..window import Frame
from .clips import Clip
from .errors import EvaluationError
from .video import read_video


def read_frames(clip: Clip, keep: int) -> list[Frame]:
    """Return the clip's last `keep` frames, oldest first, stamped in seconds from the clip's start.

    The watcher's ring buffer never holds more than its capacity either, so earlier frames could never be
    in a check; they are not even read.
    """
    if clip.video is not None:
        return read_video(clip.video, clip.fps, keep, where=clip.name)
    first = max(0, len(clip.frame_files) - keep)
    frames: list[Frame] = []
    for index in range(first, len(clip.frame_files)):
        path = clip.frame_files[index]
        where = f"{clip.name}/{path.name}"
        try:
            data = path.read_bytes()
            # A full decode now, so that a broken file stops the run before any model call, by name.
            decode_jpeg(data)
        except OSError as err:
            raise EvaluationError(f"{where}: cannot read it ({err.strerror or err})") from None
        except FrameDecodeError as err:
            raise EvaluationError(f"{where}: {err}") from None
        frames.append(Frame(index / clip.fps, data))
    return frames


def load_footage(clips: Sequence[Clip], keep: int) -> dict[str, list[Frame]]:
    """Return every clip's last `keep` frames by clip name; raise EvaluationError for the first bad clip."""
    return {clip.name: read_frames(clip, keep) for clip in clips}
