"""The clip set format: manifest or folders, frames in name order, videos sampled at the clip's rate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custom_components.miloco.engine.evaluation.clips import load_clip_set, natural_key
from custom_components.miloco.engine.evaluation.errors import EvaluationError
from custom_components.miloco.engine.evaluation.media import read_frames
from custom_components.miloco.engine.evaluation.video import read_video

from .eval_clips import CLIPS, SyntheticClip, frame_image, write_clip_set, write_video


def test_manifest_order_and_labels(tmp_path: Path) -> None:
    clip_set = load_clip_set(write_clip_set(tmp_path / "set"))
    assert [clip.name for clip in clip_set.clips] == [clip.name for clip in CLIPS]
    first, *_, video = clip_set.clips
    assert (first.gestures, first.activities, first.fps) == ({"thumbs_up"}, {"watch_tv"}, 2.0)
    assert first.labels == {"thumbs_up", "watch_tv"}
    assert len(first.frame_files) == 10
    assert first.video is None
    assert video.video is not None
    assert video.video.name == "clip.mp4"
    assert video.frame_files == ()


def test_without_manifest_every_labelled_folder_in_name_order(tmp_path: Path) -> None:
    clips = (SyntheticClip(name="clip10"), SyntheticClip(name="clip9"), SyntheticClip(name="clip2"))
    root = write_clip_set(tmp_path / "set", clips, manifest=False)
    (root / "notes").mkdir()
    assert [clip.name for clip in load_clip_set(root).clips] == ["clip2", "clip9", "clip10"]


def test_manifest_may_be_a_plain_list_and_name_nested_folders(tmp_path: Path) -> None:
    root = write_clip_set(tmp_path / "set" / "kitchen", (SyntheticClip(name="a"),), manifest=False).parent
    (root / "manifest.json").write_text(json.dumps(["kitchen/a"]), encoding="utf-8")
    (clip,) = load_clip_set(root).clips
    assert clip.name == "kitchen/a"


def test_manifest_listing_a_clip_twice(tmp_path: Path) -> None:
    root = write_clip_set(tmp_path / "set", (SyntheticClip(name="a"),))
    (root / "manifest.json").write_text(json.dumps({"clips": ["a", "a/"]}), encoding="utf-8")
    with pytest.raises(EvaluationError, match="clip 'a' is listed twice"):
        load_clip_set(root)


def test_frames_sorted_by_name_with_numbers_as_numbers(tmp_path: Path) -> None:
    folder = tmp_path / "set" / "a"
    folder.mkdir(parents=True)
    for index in (0, 1, 2, 10, 11):
        frame_image(0, index).save(folder / f"f{index}.png")
    (folder / "labels.json").write_text('{"fps": 4}', encoding="utf-8")
    (clip,) = load_clip_set(tmp_path / "set").clips
    assert [path.name for path in clip.frame_files] == ["f0.png", "f1.png", "f2.png", "f10.png", "f11.png"]
    # Only the tail the watcher's buffer would hold is read; times count from the clip's first frame.
    frames = read_frames(clip, keep=3)
    assert [frame.timestamp for frame in frames] == [0.5, 0.75, 1.0]
    assert natural_key("b2") < natural_key("b10") < natural_key("c1")


def test_frames_and_video_together_are_ambiguous(tmp_path: Path) -> None:
    root = write_clip_set(tmp_path / "set", (SyntheticClip(name="a"),))
    write_video(root / "a" / "extra.mp4", 0, seconds=0.5)
    with pytest.raises(EvaluationError, match="has both frames and a video"):
        load_clip_set(root)
    (root / "a" / "labels.json").write_text('{"video": "extra.mp4"}', encoding="utf-8")
    (clip,) = load_clip_set(root).clips
    assert clip.video == root / "a" / "extra.mp4"


def test_named_video_missing(tmp_path: Path) -> None:
    root = write_clip_set(tmp_path / "set", (SyntheticClip(name="a"),))
    (root / "a" / "labels.json").write_text('{"video": "gone.mp4"}', encoding="utf-8")
    with pytest.raises(EvaluationError, match=r"the video 'gone\.mp4' named in labels\.json does not exist"):
        load_clip_set(root)


def test_video_sampled_at_the_clip_rate(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    write_video(path, 3, seconds=3, fps=10)
    frames = read_video(path, 2.0, 100, where="v")
    assert [frame.timestamp for frame in frames] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    # A rate above the video's own keeps every frame; `keep` bounds what stays in memory.
    assert len(read_video(path, 50.0, 100, where="v")) == 30
    tail = read_video(path, 2.0, 2, where="v")
    assert [frame.timestamp for frame in tail] == [2.0, 2.5]
    assert tail[0].jpeg.startswith(b"\xff\xd8")


def test_broken_video(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42 and then nothing")
    with pytest.raises(EvaluationError, match=r"^v: cannot decode v.mp4 \("):
        read_video(path, 2.0, 10, where="v")
