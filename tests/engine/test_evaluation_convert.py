"""`scripts/eval convert`: a flat folder of videos and a CSV of labels becomes a clip set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custom_components.miloco.engine.evaluation.cli import main
from custom_components.miloco.engine.evaluation.clips import load_clip_set

from .eval_clips import one_line, write_video


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    for index, name in enumerate(("living room.mp4", "desk.mp4")):
        write_video(folder / name, index, seconds=1)
    return folder


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_convert_then_load(videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = write_csv(
        tmp_path / "labels.csv",
        "file,gestures,activities,fps\n"
        'living room.mp4,"thumbs_up; V_Sign",watch_tv,\n'
        "desk.mp4,,reading;phone;reading,4\n"
        "desk.mp4,ok,,\n",
    )
    out = tmp_path / "set"
    assert main(["convert", "--videos", str(videos), "--labels", str(labels), "--out", str(out)]) == 0
    assert capsys.readouterr().err == f"wrote 3 clips to {out}\n"
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8")) == {
        "clips": ["living_room", "desk", "desk-2"]
    }
    first, second, third = load_clip_set(out).clips
    assert (first.gestures, first.activities, first.fps) == ({"thumbs_up", "v_sign"}, {"watch_tv"}, 2.0)
    assert (second.gestures, second.activities, second.fps) == (frozenset(), {"reading", "phone"}, 4.0)
    assert third.gestures == {"ok"}
    assert first.video == out / "living_room" / "living room.mp4"
    assert first.video.read_bytes() == (videos / "living room.mp4").read_bytes()


def test_convert_with_a_bom_and_only_a_gestures_column(videos: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_bytes("\ufeffFile,Gestures\ndesk.mp4,shaka\n".encode())
    out = tmp_path / "set"
    assert (
        main(["convert", "--videos", str(videos), "--labels", str(labels), "--out", str(out), "--fps", "1"])
        == 0
    )
    (clip,) = load_clip_set(out).clips
    assert (clip.gestures, clip.activities, clip.fps) == ({"shaka"}, frozenset(), 1.0)


@pytest.mark.parametrize(
    ("csv_text", "expected"),
    [
        ("file,gestures\ndesk.mp4,fist\n", "labels.csv line 2: unknown gesture 'fist'"),
        ("file,activities\ndesk.mp4,reading\nnope.mp4,reading\n", "labels.csv line 3: no video 'nope.mp4'"),
        ("file,gestures,fps\ndesk.mp4,ok,-1\n", "labels.csv line 2: fps must be a positive number, not '-1'"),
        ("video,labels\ndesk.mp4,ok\n", "needs a header with a file column"),
        ("file,gestures\n", "labels.csv: lists no videos"),
    ],
)
def test_bad_csv_writes_nothing(
    videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], csv_text: str, expected: str
) -> None:
    labels = write_csv(tmp_path / "labels.csv", csv_text)
    out = tmp_path / "set"
    assert main(["convert", "--videos", str(videos), "--labels", str(labels), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert one_line(err), err
    assert expected in err
    assert not out.exists()


def test_refuses_a_non_empty_out_folder(
    videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = write_csv(tmp_path / "labels.csv", "file,gestures\ndesk.mp4,ok\n")
    out = tmp_path / "set"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    assert main(["convert", "--videos", str(videos), "--labels", str(labels), "--out", str(out)]) == 1
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert [path.name for path in out.iterdir()] == ["keep.txt"]


def test_missing_csv(videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "convert",
        "--videos",
        str(videos),
        "--labels",
        str(tmp_path / "none.csv"),
        "--out",
        str(tmp_path / "s"),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert one_line(err)
    assert "cannot read it (No such file or directory)" in err
