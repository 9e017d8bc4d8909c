"""Real video for stream tests: an H.264 clip made with PyAV, and ffmpeg serving it as a live HTTP stream."""

from __future__ import annotations

from pathlib import Path
import shutil
import subprocess
import time
from typing import Final

import av
from PIL import Image, ImageDraw
import pytest

from testkit.ports import free_port

CLIP_SIZE = (320, 180)
CLIP_FPS = 32


def make_clip(path: Path, frames: int = 64) -> Path:
    """Write an MPEG-TS H.264 clip of a red square crossing a wall (2 s at 32 fps for 64 frames)."""
    with av.open(str(path), "w", format="mpegts") as output:
        stream = output.add_stream("libx264", rate=CLIP_FPS)
        stream.width, stream.height = CLIP_SIZE
        stream.pix_fmt = "yuv420p"
        # A keyframe every half second: a client joining the live stream has a picture soon.
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(CLIP_FPS // 2)}
        for index in range(frames):
            image = Image.new("RGB", CLIP_SIZE, (200, 190, 170))
            x = 10 + index * 4
            ImageDraw.Draw(image).rectangle((x, 60, x + 40, 100), fill=(200, 30, 30))
            output.mux(stream.encode(av.VideoFrame.from_image(image)))
        output.mux(stream.encode())
    return path


def ffmpeg_binary() -> str:
    """Return Debian's ffmpeg, or fail: the project's scripts install it, so its absence is a broken setup."""
    binary = shutil.which("ffmpeg")
    if binary is None:
        pytest.fail("ffmpeg is not installed: run scripts/test, which installs it")
    return binary


# /proc/net/tcp's socket states: listening, and connected.
_LISTEN: Final = "0A"
_ESTABLISHED: Final = "01"


def _serving(port: int) -> bool:
    """Return True when a socket on 127.0.0.1:port listens or already serves a client.

    Read from the kernel: connecting would take ffmpeg's one client slot. A served client counts too:
    ffmpeg closes its listening socket once it accepts its one client, and the reader, retrying, can
    connect between two looks.
    """
    wanted = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text(encoding="ascii").splitlines()[1:]
    return any(line.split()[1] == wanted and line.split()[3] in (_LISTEN, _ESTABLISHED) for line in lines)


class LiveStream:
    """ffmpeg playing a clip in a loop, in real time, as an HTTP MPEG-TS stream for one client."""

    def __init__(self, clip: Path, port: int | None = None) -> None:
        """Serve `clip` on a free loopback port (or the one given)."""
        self.clip = clip
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the stream's URL."""
        return f"http://127.0.0.1:{self.port}/live.ts"

    def start(self) -> None:
        """Start ffmpeg and wait until it listens.

        A restart on the same port (a camera coming back) can find the port still held by the connection of
        the ffmpeg just killed; ffmpeg then exits at once, so it is started again until the port is free.
        """
        deadline = time.monotonic() + 15
        while True:
            self._process = subprocess.Popen(
                [
                    ffmpeg_binary(),
                    *("-hide_banner", "-loglevel", "error", "-nostdin"),
                    *("-re", "-stream_loop", "-1", "-i", str(self.clip)),
                    *("-c", "copy", "-f", "mpegts", "-listen", "1", self.url),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while not _serving(self.port) and self._process.poll() is None:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("ffmpeg did not start listening")
                time.sleep(0.01)
            if self._process.poll() is None:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("ffmpeg did not start listening")
            time.sleep(0.2)

    def stop(self) -> None:
        """Kill ffmpeg (a camera that drops off the network) and reap it."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
