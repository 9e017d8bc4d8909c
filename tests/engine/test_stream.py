"""The stream reader: real H.264 decoded by PyAV from a file and from ffmpeg's live HTTP stream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import io
from pathlib import Path
import sys
import threading
import time
from typing import Any

from PIL import Image
import pytest

from custom_components.miloco.engine import stream
from custom_components.miloco.engine.stream import (
    PyAVMissing,
    StreamReader,
    describe_error,
    pyav_available,
    redact_url,
)
from testkit.ports import free_port

from ..stream_helpers import LiveStream, make_clip

type Frames = list[tuple[float, bytes]]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-second clip (64 frames of 320×180 at 32 fps)."""
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.ts")


@pytest.fixture
def reader() -> Iterator[Callable[..., StreamReader]]:
    """Make started readers; stop them all afterwards and check that no decoding thread is left."""
    readers: list[StreamReader] = []

    def make(url: str, **kwargs: Any) -> StreamReader:
        made = StreamReader(url, **{"fps": 5.0, **kwargs})
        readers.append(made)
        made.start()
        return made

    yield make
    for made in readers:
        made.stop()
    assert _stream_threads() == []


def _stream_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("miloco-stream")]


def _collect(reader: StreamReader, count: int, within: float = 5.0) -> Frames:
    """Return the first `count` distinct frames the reader offers (polling like the watcher does)."""
    frames: Frames = []
    deadline = time.monotonic() + within
    while len(frames) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(frames)} frames in {within} s (last error: {reader.last_error})")
        latest = reader.latest()
        if latest is not None and (not frames or latest[0] != frames[-1][0]):
            frames.append(latest)
        time.sleep(0.01)
    return frames


def test_frames_arrive_downscaled_at_the_requested_rate(
    clip: Path, reader: Callable[..., StreamReader], monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded = 0
    encode = stream.encode_jpeg

    def counting_encode(image: Image.Image) -> bytes:
        nonlocal encoded
        encoded += 1
        return encode(image)

    monkeypatch.setattr(stream, "encode_jpeg", counting_encode)
    started = time.monotonic()
    source = reader(str(clip), fps=5, max_width=160)
    assert source.running
    (thread,) = (thread for thread in threading.enumerate() if thread.name.startswith("miloco-stream"))
    assert thread.daemon

    frames = _collect(source, 6)
    elapsed = time.monotonic() - started
    stamps = [stamp for stamp, _ in frames]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)
    # A file plays in real time, like a camera: about 5 frames a second, although it holds 32.
    assert 0.7 <= elapsed <= 2.0
    assert encoded <= 7, "frames between the due ones must not be converted"
    for _, jpeg in frames:
        image = Image.open(io.BytesIO(jpeg))
        assert image.format == "JPEG"
        assert image.size == (160, 90)
    # The square moves: the frames differ.
    assert len({jpeg for _, jpeg in frames}) == len(frames)
    assert source.last_error is None


def test_the_newest_frame_is_returned_again_until_a_newer_one(
    clip: Path, reader: Callable[..., StreamReader]
) -> None:
    source = reader(str(clip), fps=2)
    (first,) = _collect(source, 1)
    assert source.latest() == first
    # Full width (320 ≤ max_width) is kept.
    assert Image.open(io.BytesIO(first[1])).size == (320, 180)


def test_the_reader_opens_the_stream_again_at_its_end(
    tmp_path: Path, reader: Callable[..., StreamReader]
) -> None:
    short = make_clip(tmp_path / "short.ts", frames=8)  # a quarter of a second
    source = reader(str(short), fps=10)
    deadline = time.monotonic() + 5
    while source.attempts < 2:
        assert time.monotonic() < deadline, "the reader did not reopen the stream"
        time.sleep(0.02)
    reopened = time.monotonic()
    while (latest := source.latest()) is None or latest[0] < reopened:
        assert time.monotonic() < deadline, "no frame after the stream was opened again"
        time.sleep(0.02)
    assert source.running


def test_bad_urls_fail_quietly_and_back_off(
    socket_enabled: None, tmp_path: Path, reader: Callable[..., StreamReader]
) -> None:
    sources = [reader(str(tmp_path / "missing.ts")), reader(f"http://127.0.0.1:{free_port()}/x.ts")]
    time.sleep(2.0)
    for source in sources:
        assert source.running, "a failing stream keeps being retried"
        assert source.latest() is None
        assert source.last_error in {"No such file or directory", "Connection refused"}
        # Opened at 0 s, 1 s, then waits until 3 s: no busy loop.
        assert 1 <= source.attempts <= 3
    started = time.monotonic()
    for source in sources:
        source.stop()
    # stop() interrupts the backoff wait.
    assert time.monotonic() - started < 0.5
    assert not any(source.running for source in sources)
    assert _stream_threads() == []


def test_credentials_never_show_in_errors(socket_enabled: None, reader: Callable[..., StreamReader]) -> None:
    port = free_port()
    url = f"rtsp://admin:s3cret-pw@127.0.0.1:{port}/cam?token=t0ken-42"
    source = reader(url)
    deadline = time.monotonic() + 3
    while source.last_error is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert "s3cret-pw" not in source.last_error
    # Messages that do quote the URL (or its password alone) are redacted as well.
    assert redact_url(url) == f"rtsp://***@127.0.0.1:{port}/cam?token=***"
    quoted = describe_error(RuntimeError(f"cannot open {url}; also admin:s3cret-pw@"), url)
    assert "s3cret-pw" not in quoted
    assert "t0ken-42" not in quoted
    encoded = "rtsp://admin:p%40ss@camera/live"
    assert "p@ss" not in describe_error(RuntimeError("bad password p@ss"), encoded)
    assert redact_url("/media/clip.ts") == "/media/clip.ts"


def test_a_live_http_stream_from_ffmpeg(
    socket_enabled: None, clip: Path, reader: Callable[..., StreamReader]
) -> None:
    live = LiveStream(clip)
    live.start()
    try:
        source = reader(live.url, fps=5, max_width=200)
        frames = _collect(source, 3, within=6)
        assert all(Image.open(io.BytesIO(jpeg)).size == (200, 112) for _, jpeg in frames)
        assert source.attempts == 1
        source.stop()
        assert not source.running
    finally:
        live.stop()


def test_stop_is_idempotent_and_start_restarts(clip: Path) -> None:
    source = StreamReader(str(clip), fps=5)
    source.stop()
    source.start()
    source.start()
    assert len(_stream_threads()) == 1
    _collect(source, 1)
    source.stop()
    source.stop()
    assert not source.running
    source.start()
    _collect(source, 1)
    source.stop()
    assert _stream_threads() == []


def test_without_pyav(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import av` fail, as on an install without PyAV.
    monkeypatch.setitem(sys.modules, "av", None)
    assert not pyav_available()
    source = StreamReader("rtsp://camera/live", fps=2)
    with pytest.raises(PyAVMissing):
        source.start()
    assert isinstance(PyAVMissing(), RuntimeError)
    assert not source.running
    assert _stream_threads() == []


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="fps"):
        StreamReader("x.ts", fps=0)
    with pytest.raises(ValueError, match="max_width"):
        StreamReader("x.ts", fps=1, max_width=0)
