"""Bad input and unusable backends: one clear line on stderr, a non-zero status, no traceback, no model call."""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import socket

import pytest

from custom_components.miloco.engine.evaluation.cli import main

from .eval_clips import SyntheticClip, one_line, write_clip_set

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
# Never contacted: every error below is found before the backend is opened.
NOWHERE = ["--url", "http://127.0.0.1:9"]
TWO_CLIPS = (SyntheticClip(name="a", gestures=("ok",)), SyntheticClip(name="b", activities=("reading",)))


def fails(argv: list[str], capsys: pytest.CaptureFixture[str], status: int = 1) -> str:
    """Run the command line, check it failed cleanly, and return its one stderr line."""
    assert main(argv) == status
    out = capsys.readouterr()
    assert out.out == ""
    assert one_line(out.err), out.err
    return out.err.strip()


@pytest.fixture
def clip_set(tmp_path: Path) -> Path:
    return write_clip_set(tmp_path / "set", TWO_CLIPS)


def test_missing_frames(clip_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for frame in (clip_set / "b").glob("*.jpg"):
        frame.unlink()
    message = fails(["run", str(clip_set), *NOWHERE], capsys)
    assert message == "scripts/eval: error: b: no frames (JPEG or PNG files) and no video"


def test_clip_folder_listed_but_missing(clip_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(clip_set / "a")
    assert f"a: no such clip folder in {clip_set}" in fails(["run", str(clip_set), *NOWHERE], capsys)


def test_broken_frame_is_named(clip_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (clip_set / "a" / "frame7.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    assert "a/frame7.jpg: not a decodable image" in fails(["run", str(clip_set), *NOWHERE], capsys)


def test_unknown_label(clip_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = clip_set / "b" / "labels.json"
    labels.write_text(json.dumps({"gestures": ["fist"], "fps": 2}), encoding="utf-8")
    message = fails(["run", str(clip_set), *NOWHERE], capsys)
    assert (
        "b/labels.json: unknown gesture 'fist' (known: thumbs_up, v_sign, open_palm, ok, shaka, wave)"
        in message
    )


def test_gesture_filed_as_activity(clip_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (clip_set / "b" / "labels.json").write_text(json.dumps({"activities": ["thumbs_up"]}), encoding="utf-8")
    assert "unknown activity 'thumbs_up'" in fails(["run", str(clip_set), *NOWHERE], capsys)


def test_misspelt_label_field(clip_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (clip_set / "a" / "labels.json").write_text(json.dumps({"gesture": ["ok"]}), encoding="utf-8")
    assert "a/labels.json: unknown field 'gesture'" in fails(["run", str(clip_set), *NOWHERE], capsys)


def test_malformed_label_file(clip_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (clip_set / "a" / "labels.json").write_text('{"gestures": [ok]}', encoding="utf-8")
    assert "a/labels.json: not valid JSON" in fails(["run", str(clip_set), *NOWHERE], capsys)


@pytest.mark.parametrize("fps", [0, -2, "fast", True])
def test_bad_fps(clip_set: Path, capsys: pytest.CaptureFixture[str], fps: object) -> None:
    (clip_set / "a" / "labels.json").write_text(json.dumps({"fps": fps}), encoding="utf-8")
    assert "a/labels.json: fps must be a positive number" in fails(["run", str(clip_set), *NOWHERE], capsys)


def test_empty_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert "holds no clips" in fails(["run", str(tmp_path / "empty"), *NOWHERE], capsys)


def test_empty_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "manifest.json").write_text('{"clips": []}', encoding="utf-8")
    assert "holds no clips" in fails(["run", str(tmp_path / "set"), *NOWHERE], capsys)


def test_set_is_not_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is not a folder" in fails(["run", str(tmp_path / "nope"), *NOWHERE], capsys)


def test_unreachable_server(clip_set: Path, capsys: pytest.CaptureFixture[str], socket_enabled: None) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe socket is closed.
    message = fails(["run", str(clip_set), "--url", f"http://127.0.0.1:{port}", "--retries", "0"], capsys)
    assert message == (
        f"scripts/eval: error: cannot use the server at http://127.0.0.1:{port}/v1: "
        "cannot reach the server (ClientConnectorError)"
    )


def test_bad_url(clip_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--url 'ftp://x': URL needs http:// or https://" in fails(
        ["run", str(clip_set), "--url", "ftp://x"], capsys
    )


def test_unset_api_key_variable(
    clip_set: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    message = fails(["run", str(clip_set), *NOWHERE, "--api-key-env", "NO_SUCH_KEY_VAR"], capsys)
    assert "the environment variable NO_SUCH_KEY_VAR is not set" in message


def test_missing_model_file(clip_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "run",
        str(clip_set),
        "--model-path",
        str(tmp_path / "m.gguf"),
        "--mmproj-path",
        str(tmp_path / "p.gguf"),
    ]
    assert f"--model-path {tmp_path / 'm.gguf'}: no such file" in fails(argv, capsys)


def test_projector_swapped_with_model(clip_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, mmproj = FIXTURES / "tiny-qwen25vl.gguf", FIXTURES / "tiny-qwen25vl-mmproj.gguf"
    message = fails(["run", str(clip_set), "--model-path", str(mmproj), "--mmproj-path", str(model)], capsys)
    assert "the model file is a vision projector" in message


def test_model_path_without_projector(clip_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--model-path needs --mmproj-path" in fails(
        ["run", str(clip_set), "--model-path", "x.gguf"], capsys
    )


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("mode=fast", "mode must be combined or per_condition"),
        ("frames=0", "frames must be a whole number from 1 to 32"),
        ("detail=ultra", "detail must be one of low, medium, high"),
        ("detail=low,budget=300", "give detail or budget, not both"),
        ("thinking=maybe", "thinking must be on or off"),
        ("colour=red", "expected key=value"),
        ("frames=6,frames=4", "frames is given twice"),
        ("answer=terse", "answer must be full or compact"),
        ("mode=per_condition,answer=compact", "answer=compact needs mode=combined"),
    ],
)
def test_bad_setting(clip_set: Path, capsys: pytest.CaptureFixture[str], setting: str, expected: str) -> None:
    assert expected in fails(["run", str(clip_set), *NOWHERE, "--setting", setting], capsys)


def test_two_settings_with_one_label(clip_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", str(clip_set), *NOWHERE, "--setting", "frames=6", "--setting", "mode=combined"]
    assert "give each a different name=" in fails(argv, capsys)


def test_budget_too_small_for_the_frames(clip_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Six frames of the smallest size the model takes (56×56 px, 4 tokens), whatever their shape.
    message = fails(["run", str(clip_set), *NOWHERE, "--setting", "frames=6,budget=23"], capsys)
    assert message == (
        "scripts/eval: error: setting mode=combined,frames=6,budget=23,thinking=off: "
        "23 tokens cannot hold the 6 frames of clip a (at least 24)"
    )


def test_unknown_class(clip_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--classes: unknown label 'fist'" in fails(
        ["run", str(clip_set), *NOWHERE, "--classes", "ok,fist"], capsys
    )


def test_usage_errors_are_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert "the following arguments are required: SET" in fails(
        ["run", "--url", "http://x"], capsys, status=2
    )
    assert "one of the arguments --url --model-path is required" in fails(["run", "set"], capsys, status=2)


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    assert "--setting SPEC" in capsys.readouterr().out
