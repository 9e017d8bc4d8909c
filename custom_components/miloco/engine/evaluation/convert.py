"""Turn a flat folder of videos and a CSV of their labels into a clip set."""

from __future__ import annotations

import csv
from dataclasses import dataclass
import json
import math
from pathlib import Path
import re
import shutil
from typing import Final

from .clips import LABEL_FILE, MANIFEST_FILE, check_label_keys
from .errors import EvaluationError

LABEL_SEPARATOR: Final = ";"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Row:
    """One CSV row, checked: the video file, its labels and frame rate, and the clip folder it becomes."""

    video: Path
    gestures: list[str]
    activities: list[str]
    fps: float
    name: str


def convert(videos: Path, labels_csv: Path, out: Path, fps: float) -> list[str]:
    """Write the clip set and return its clip names; nothing is written unless every row is valid."""
    if not videos.is_dir():
        raise EvaluationError(f"--videos {videos}: not a folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EvaluationError(f"--out {out}: exists and is not an empty folder")
    rows = _read_rows(videos, labels_csv, fps)
    for row in rows:
        folder = out / row.name
        folder.mkdir(parents=True)
        shutil.copyfile(row.video, folder / row.video.name)
        labels = {
            "gestures": row.gestures,
            "activities": row.activities,
            "fps": row.fps,
            "video": row.video.name,
        }
        (folder / LABEL_FILE).write_text(json.dumps(labels, indent=2) + "\n", encoding="utf-8")
    names = [row.name for row in rows]
    (out / MANIFEST_FILE).write_text(json.dumps({"clips": names}, indent=2) + "\n", encoding="utf-8")
    return names


def _read_rows(videos: Path, labels_csv: Path, default_fps: float) -> list[_Row]:
    """Return the CSV's rows, checked: columns file, gestures and/or activities, optionally fps."""
    try:
        with labels_csv.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.DictReader(file)
            columns = {(name or "").strip().lower(): name for name in reader.fieldnames or ()}
            if "file" not in columns or not {"gestures", "activities"} & set(columns):
                raise EvaluationError(
                    f"{labels_csv.name}: needs a header with a file column and gestures and/or activities columns"
                )
            rows: list[_Row] = []
            taken: set[str] = set()
            for record in reader:
                values = {key: (record.get(name) or "").strip() for key, name in columns.items()}
                rows.append(
                    _row(values, videos, f"{labels_csv.name} line {reader.line_num}", default_fps, taken)
                )
    except OSError as err:
        raise EvaluationError(f"--labels {labels_csv}: cannot read it ({err.strerror or err})") from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise EvaluationError(f"{labels_csv.name}: not a readable CSV file ({err})") from None
    if not rows:
        raise EvaluationError(f"{labels_csv.name}: lists no videos")
    return rows


def _row(values: dict[str, str], videos: Path, where: str, default_fps: float, taken: set[str]) -> _Row:
    """Return one checked row, its clip name made unique among `taken` (which it joins)."""
    file = values.get("file", "")
    video = videos / file
    if not file or not video.is_file():
        raise EvaluationError(f"{where}: no video {file!r} in {videos}")
    gestures = _keys(values.get("gestures", ""))
    activities = _keys(values.get("activities", ""))
    check_label_keys(gestures, activities, where)
    fps = default_fps
    if values.get("fps"):
        try:
            fps = float(values["fps"])
        except ValueError:
            fps = math.nan
    if not (math.isfinite(fps) and fps > 0):
        raise EvaluationError(f"{where}: fps must be a positive number, not {values.get('fps')!r}")
    name = _UNSAFE.sub("_", Path(file).stem).strip("._") or "clip"
    unique, number = name, 2
    while unique in taken:
        unique, number = f"{name}-{number}", number + 1
    taken.add(unique)
    return _Row(video=video, gestures=gestures, activities=activities, fps=fps, name=unique)


def _keys(cell: str) -> list[str]:
    """Return the label keys of a cell: ';'-separated, case and spaces ignored, duplicates dropped."""
    return list(dict.fromkeys(key.strip().lower() for key in cell.split(LABEL_SEPARATOR) if key.strip()))
