"""The clip set format: a folder per clip (frames or one video, plus labels.json) and an optional manifest."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import json
import math
from pathlib import Path
import re
from typing import Any, Final

from ..labels import ACTIVITIES, GESTURES
from ..window import DEFAULT_FPS
from .errors import EvaluationError

LABEL_FILE: Final = "labels.json"
MANIFEST_FILE: Final = "manifest.json"
IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png"})
VIDEO_SUFFIXES: Final = frozenset({".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".ts"})

GESTURE_KEYS: Final = tuple(label.key for label in GESTURES)
ACTIVITY_KEYS: Final = tuple(label.key for label in ACTIVITIES)
_LABEL_FIELDS: Final = frozenset({"gestures", "activities", "fps", "video", "notes"})
_DIGITS: Final = re.compile(r"(\d+)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Clip:
    """One labelled clip: what is true at its end, its frame rate, and where its frames come from."""

    name: str
    gestures: frozenset[str]
    activities: frozenset[str]
    fps: float
    # Image files in time order; empty when the clip is a video.
    frame_files: tuple[Path, ...] = ()
    video: Path | None = None

    @property
    def labels(self) -> frozenset[str]:
        """Return every label key the clip shows."""
        return self.gestures | self.activities


@dataclass(frozen=True, slots=True, kw_only=True)
class ClipSet:
    """A loaded clip set: its folder and its clips, in manifest order."""

    root: Path
    clips: tuple[Clip, ...]


def check_label_keys(gestures: Iterable[str], activities: Iterable[str], where: str) -> None:
    """Raise EvaluationError for a key that is not a gesture (or activity) of the catalogue."""
    for keys, known, kind in ((gestures, GESTURE_KEYS, "gesture"), (activities, ACTIVITY_KEYS, "activity")):
        for key in keys:
            if key not in known:
                raise EvaluationError(f"{where}: unknown {kind} {key!r} (known: {', '.join(known)})")


def load_clip_set(root: Path) -> ClipSet:
    """Return the clip set in a folder; raise EvaluationError naming the first problem found."""
    if not root.is_dir():
        raise EvaluationError(f"{root} is not a folder")
    names = _manifest_names(root) if (root / MANIFEST_FILE).exists() else _labelled_folders(root)
    if not names:
        raise EvaluationError(f"{root} holds no clips (no {MANIFEST_FILE} and no folder with a {LABEL_FILE})")
    return ClipSet(root=root, clips=tuple(load_clip(root, name) for name in names))


def load_clip(root: Path, name: str) -> Clip:
    """Return one clip of the set: its labels, frame rate and frame files or video."""
    folder = root / name
    if not folder.is_dir():
        raise EvaluationError(f"{name}: no such clip folder in {root}")
    labels = _read_json(folder / LABEL_FILE, f"{name}/{LABEL_FILE}")
    where = f"{name}/{LABEL_FILE}"
    if not isinstance(labels, dict):
        raise EvaluationError(f"{where}: expected a JSON object")
    unknown = sorted(set(labels) - _LABEL_FIELDS)
    if unknown:
        raise EvaluationError(
            f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(sorted(_LABEL_FIELDS))})"
        )
    gestures = _key_list(labels.get("gestures", []), f"{where}: gestures")
    activities = _key_list(labels.get("activities", []), f"{where}: activities")
    check_label_keys(gestures, activities, where)
    fps = _fps(labels.get("fps", DEFAULT_FPS), where)
    video, frames = _sources(folder, name, labels.get("video"))
    return Clip(
        name=name,
        gestures=frozenset(gestures),
        activities=frozenset(activities),
        fps=fps,
        frame_files=frames,
        video=video,
    )


def _manifest_names(root: Path) -> list[str]:
    """Return the clip folders a manifest lists: {"clips": ["a", "b"]} or just ["a", "b"]."""
    manifest = _read_json(root / MANIFEST_FILE, MANIFEST_FILE)
    entries = manifest.get("clips") if isinstance(manifest, dict) else manifest
    if not isinstance(entries, list) or not all(isinstance(entry, str) and entry for entry in entries):
        raise EvaluationError(f'{MANIFEST_FILE}: expected {{"clips": ["folder", ...]}}')
    names = [Path(entry).as_posix().rstrip("/") for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise EvaluationError(f"{MANIFEST_FILE}: clip {duplicates[0]!r} is listed twice")
    return names


def _labelled_folders(root: Path) -> list[str]:
    """Return the sub-folders that hold a label file, in name order (a set without a manifest)."""
    return sorted((child.name for child in root.iterdir() if (child / LABEL_FILE).is_file()), key=natural_key)


def _read_json(path: Path, where: str) -> Any:
    """Return a JSON file's content; raise EvaluationError when it is missing or malformed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvaluationError(f"{where}: file missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise EvaluationError(f"{where}: cannot read it ({err})") from None
    except json.JSONDecodeError as err:
        raise EvaluationError(f"{where}: not valid JSON ({err.msg}, line {err.lineno})") from None


def _key_list(value: object, where: str) -> list[str]:
    """Return a JSON list of label keys, refusing anything else."""
    if not isinstance(value, list) or not all(isinstance(key, str) for key in value):
        raise EvaluationError(f"{where} must be a list of label keys")
    return value


def _fps(value: object, where: str) -> float:
    """Return a positive, finite frame rate."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise EvaluationError(f"{where}: fps must be a positive number, not {value!r}")
    return float(value)


def _sources(folder: Path, name: str, video: object) -> tuple[Path | None, tuple[Path, ...]]:
    """Return the clip's video or its image files; exactly one of the two must be there."""
    if video is not None:
        if not isinstance(video, str) or not (folder / video).is_file():
            raise EvaluationError(f"{name}: the video {video!r} named in {LABEL_FILE} does not exist")
        return folder / video, ()
    files = sorted(
        (path for path in folder.iterdir() if path.is_file()), key=lambda path: natural_key(path.name)
    )
    images = tuple(path for path in files if path.suffix.lower() in IMAGE_SUFFIXES)
    videos = [path for path in files if path.suffix.lower() in VIDEO_SUFFIXES]
    if images and videos:
        raise EvaluationError(
            f'{name}: has both frames and a video; name the video in {LABEL_FILE} ("video")'
        )
    if len(videos) > 1:
        raise EvaluationError(
            f'{name}: has {len(videos)} videos; name the one to use in {LABEL_FILE} ("video")'
        )
    if videos:
        return videos[0], ()
    if not images:
        raise EvaluationError(f"{name}: no frames (JPEG or PNG files) and no video")
    return None, images


def natural_key(name: str) -> list[tuple[int, int | str]]:
    """Return a sort key that compares the numbers in names as numbers: frame2 before frame10."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(name)]
