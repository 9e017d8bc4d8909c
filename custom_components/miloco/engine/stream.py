"""Live video decoding with PyAV on a thread of its own, keeping only the newest frame as a JPEG.

PyAV (the `av` package) is optional: Home Assistant's stream integration installs it. It is imported only
when a reader starts, so everything else works without it.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import re
import threading
import time
from types import ModuleType
from typing import Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

from .frames import encode_jpeg

_LOGGER = logging.getLogger(__name__)

THREAD_PREFIX: Final = "miloco-stream"
BACKOFF_START_S: Final = 1.0
BACKOFF_MAX_S: Final = 30.0
# A local file has no clock of its own; pacing it at its frame rate makes it behave like a camera. Ahead
# by more than this (a timestamp jump), the pacing starts over from the current frame.
_MAX_PACE_S: Final = 1.0
_MAX_ERROR_CHARS: Final = 160
# user:password@ in any URL quoted by an error message.
_USERINFO: Final = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]*@")
_thread_numbers = itertools.count(1)


class PyAVMissing(RuntimeError):
    """PyAV (the `av` package) cannot be imported."""


def pyav_available() -> bool:
    """Return True when PyAV can be imported (the first import takes a moment: not on an event loop)."""
    try:
        _import_av()
    except PyAVMissing:
        return False
    return True


def _import_av() -> ModuleType:
    """Return the `av` module, or raise PyAVMissing."""
    try:
        return importlib.import_module("av")
    except ImportError as err:
        raise PyAVMissing(f"PyAV is not installed: {err}") from err


def redact_url(url: str) -> str:
    """Return the URL with its user info and query values masked (camera URLs often carry passwords)."""
    parts = urlsplit(url)
    if not parts.scheme or "://" not in url:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(f"{pair.partition('=')[0]}=***" for pair in parts.query.split("&") if pair)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def describe_error(err: BaseException, url: str) -> str:
    """Return a short description of a stream error with no credential from the URL in it."""
    # FFmpeg errors carry the URL as their filename: their strerror alone is the short reason.
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    text = _USERINFO.sub(r"\1***@", text.replace(url, redact_url(url)))
    parts = urlsplit(url)
    secrets = {parts.password, unquote(parts.password or "")} if parts.password else set()
    for secret in secrets:
        text = text.replace(secret, "***")
    return text[:_MAX_ERROR_CHARS]


class StreamReader:
    """Decode a video stream on a daemon thread; keep the newest frame as JPEG bytes, at most `fps` a second.

    Frames in between are decoded (inter-frame video cannot skip that) but never converted or encoded. On an
    error or at the end of the stream the reader waits (1 s, 2 s, ... up to 30 s) and opens the stream again.
    """

    def __init__(
        self,
        url: str,
        *,
        fps: float,
        max_width: int = 1280,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        """Prepare a reader of `url`; nothing is opened until start()."""
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        if max_width < 1:
            raise ValueError(f"max_width must be at least 1, not {max_width}")
        self._url = url
        self._period = 1.0 / fps
        self._max_width = max_width
        self._timeout = (open_timeout_s, read_timeout_s)
        self._options = {"rtsp_transport": "tcp"} if url.lower().startswith(("rtsp:", "rtsps:")) else {}
        self._paced = "://" not in url or url.lower().startswith("file:")
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._latest: tuple[float, bytes] | None = None
        self._last_error: str | None = None
        self._next_due = 0.0
        self._session_frames = 0
        self._attempts = 0

    @property
    def running(self) -> bool:
        """Return True while the decoding thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def last_error(self) -> str | None:
        """Return why the stream last failed (credentials redacted), or None since frames flow again."""
        return self._last_error

    @property
    def attempts(self) -> int:
        """Return how many times the stream has been opened (or tried)."""
        return self._attempts

    def latest(self) -> tuple[float, bytes] | None:
        """Return the newest frame as (monotonic time it was decoded, JPEG bytes), or None before the first."""
        with self._lock:
            return self._latest

    def start(self) -> None:
        """Start decoding on a thread of its own; raise PyAVMissing when PyAV cannot be imported."""
        av = _import_av()
        with self._lock:
            if self.running and not self._stopping.is_set():
                return
            # A fresh event per thread: a thread still finishing a stalled read after stop() keeps its own.
            self._stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._run,
                args=(av, self._stopping),
                name=f"{THREAD_PREFIX}-{next(_thread_numbers)}",
                daemon=True,
            )
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Signal the thread to end and wait up to `timeout_s` for it; safe to call more than once."""
        # The container is not closed from here to interrupt a blocked read: FFmpeg would free it under the
        # decoding thread's feet (a segfault, measured with PyAV 13.1). PyAV's read timeout ends such a read
        # within read_timeout_s instead, and the thread then sees the signal.
        with self._lock:
            self._stopping.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self, av: ModuleType, stopping: threading.Event) -> None:
        """Open, decode, and reopen after a backoff, until stopped."""
        backoff = BACKOFF_START_S
        while not stopping.is_set():
            self._session(av, stopping)
            if self._session_frames:
                backoff = BACKOFF_START_S
            if stopping.wait(backoff):
                break
            if not self._session_frames:
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _session(self, av: ModuleType, stopping: threading.Event) -> None:
        """Open the stream once and decode it until it ends, fails or the reader stops."""
        self._attempts += 1
        self._session_frames = 0
        try:
            container = av.open(self._url, options=self._options, timeout=self._timeout)
        except Exception as err:  # Any failure to open means: wait, then try again.
            self._failed(av, err)
            return
        try:
            self._decode(av, container, stopping)
        except Exception as err:  # Nor may a failure mid-stream end the thread.
            self._failed(av, err)
        else:
            if not stopping.is_set():
                self._last_error = "end of stream"
        finally:
            container.close()

    def _decode(self, av: ModuleType, container: Any, stopping: threading.Event) -> None:
        """Decode every packet of the video stream; convert only the frames that are due."""
        if not container.streams.video:
            raise ValueError("the stream has no video")
        video = container.streams.video[0]
        origin: tuple[float, float] | None = None
        for packet in container.demux(video):
            if stopping.is_set():
                return
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                # A damaged packet (a lossy network): skip it, the next keyframe repairs the picture.
                continue
            for frame in frames:
                now = time.monotonic()
                if self._paced and frame.time is not None:
                    origin, now = self._pace(origin, frame.time, now, stopping)
                    if stopping.is_set():
                        return
                if now < self._next_due:
                    continue
                # On a steady grid of the period, but never two frames within half a period.
                self._next_due = max(self._next_due + self._period, now + self._period / 2)
                jpeg = self._to_jpeg(frame)
                with self._lock:
                    self._latest = (now, jpeg)
                self._session_frames += 1
                self._last_error = None

    def _pace(
        self, origin: tuple[float, float] | None, media_time: float, now: float, stopping: threading.Event
    ) -> tuple[tuple[float, float], float]:
        """Wait until a file's frame is due in real time; return the (media, wall) origin and the time now."""
        if origin is None:
            return (media_time, now), now
        ahead = (media_time - origin[0]) - (now - origin[1])
        if ahead > _MAX_PACE_S or ahead < -_MAX_PACE_S:
            return (media_time, now), now
        if ahead > 0:
            stopping.wait(ahead)
            now = time.monotonic()
        return origin, now

    def _to_jpeg(self, frame: Any) -> bytes:
        """Return the frame as JPEG bytes, scaled down to max_width when wider (aspect kept)."""
        width, height = int(frame.width), int(frame.height)
        if width > self._max_width:
            height = max(1, round(height * self._max_width / width))
            # FFmpeg's area filter averages the pixels it drops: no aliasing on a large downscale.
            frame = frame.reformat(width=self._max_width, height=height, format="rgb24", interpolation="AREA")
        return encode_jpeg(frame.to_image())

    def _failed(self, av: ModuleType, err: Exception) -> None:
        """Remember why the stream failed, in words that hold no credential."""
        if isinstance(err, EOFError):
            reason = "end of stream"
        elif isinstance(err, av.error.ExitError):
            # PyAV's timeout interrupts FFmpeg, which then reports an "immediate exit requested".
            reason = "timed out"
        else:
            reason = describe_error(err, self._url)
        self._last_error = reason
        _LOGGER.debug("Stream %s failed: %s", redact_url(self._url), reason)
