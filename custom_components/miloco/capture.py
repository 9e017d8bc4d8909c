"""Where a watcher's frames come from: camera snapshots, or the newest frame of the camera's video stream."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Final, Protocol

from homeassistant.components import camera
from homeassistant.core import HomeAssistant, split_entity_id
from homeassistant.exceptions import HomeAssistantError

from .camera_config import CameraConfig
from .const import CAPTURE_STREAM, SNAPSHOT_TIMEOUT
from .engine.stream import PyAVMissing, StreamReader

# A stream whose newest frame is older than this is dead (a live camera sends several frames a second).
STREAM_STALE_S: Final = 5.0
# How often to ask the camera again for a stream URL it did not have (it may still be starting).
STREAM_SOURCE_RETRY_S: Final = 30.0

type Captured = tuple[float, bytes]


class CaptureError(Exception):
    """No frame could be taken; the message is a short reason, safe to log."""


class FrameSource(Protocol):
    """A camera's frames, one at a time, as (monotonic time taken, JPEG bytes)."""

    async def async_start(self) -> None:
        """Prepare the source; failures surface in async_next()."""

    async def async_next(self) -> Captured | None:
        """Return a new frame, None when there is none yet; raise CaptureError when the camera fails."""

    async def async_stop(self) -> None:
        """Release everything the source holds; safe to call more than once."""


def camera_exists(hass: HomeAssistant, entity_id: str) -> bool:
    """Return True when the entity id names a camera entity that Home Assistant has."""
    return split_entity_id(entity_id)[0] == "camera" and hass.states.get(entity_id) is not None


def create_source(hass: HomeAssistant, config: CameraConfig) -> FrameSource:
    """Return the frame source the camera's settings ask for."""
    if config.capture_mode == CAPTURE_STREAM:
        return StreamSource(hass, config.camera_entity_id, fps=config.fps)
    return SnapshotSource(hass, config.camera_entity_id)


class SnapshotSource:
    """Ask the camera entity for a still image each time."""

    def __init__(self, hass: HomeAssistant, entity_id: str) -> None:
        """Take snapshots of `entity_id`."""
        self._hass = hass
        self._entity_id = entity_id

    async def async_start(self) -> None:
        """Nothing to prepare."""

    async def async_next(self) -> Captured:
        """Return the camera's current image."""
        try:
            image = await camera.async_get_image(self._hass, self._entity_id, timeout=SNAPSHOT_TIMEOUT)
        except HomeAssistantError as err:
            raise CaptureError(str(err)) from err
        return time.monotonic(), image.content

    async def async_stop(self) -> None:
        """Nothing to release."""


class StreamSource:
    """Decode the camera's video stream on a thread of its own and take its newest frame each time."""

    def __init__(self, hass: HomeAssistant, entity_id: str, *, fps: float) -> None:
        """Read the stream of `entity_id` at `fps` frames a second."""
        self._hass = hass
        self._entity_id = entity_id
        self._fps = fps
        self._reader: StreamReader | None = None
        self._starting: asyncio.Future[None] | None = None
        self._problem = "the video stream has not started"
        self._retry_at = 0.0
        self._started_at = 0.0
        self._last_taken = -math.inf

    async def async_start(self) -> None:
        """Look up the camera's stream URL and start decoding it."""
        self._retry_at = time.monotonic() + STREAM_SOURCE_RETRY_S
        try:
            url = await camera.async_get_stream_source(self._hass, self._entity_id)
        except HomeAssistantError as err:
            self._problem = str(err)
            return
        if not url:
            self._problem = f"{self._entity_id} has no video stream; use snapshot capture"
            return
        reader = StreamReader(url, fps=self._fps)
        # Kept before it starts, so that async_stop() stops it even when this task is cancelled meanwhile.
        self._reader = reader
        self._starting = self._hass.async_add_executor_job(reader.start)
        try:
            await asyncio.shield(self._starting)
        except PyAVMissing:
            self._reader = None
            self._problem = "stream capture needs PyAV, which Home Assistant's stream integration installs"
            return
        self._started_at = time.monotonic()

    async def async_next(self) -> Captured | None:
        """Return the stream's newest frame when it is new; fail when the stream is missing or stalled."""
        if self._reader is None and time.monotonic() >= self._retry_at:
            await self.async_start()
        reader = self._reader
        if reader is None:
            raise CaptureError(self._problem)
        latest = reader.latest()
        now = time.monotonic()
        newest = latest[0] if latest is not None else self._started_at
        if now - newest > STREAM_STALE_S:
            reason = reader.last_error or f"no frame for {now - newest:.0f} s"
            raise CaptureError(f"the video stream gives no frames ({reason})")
        if latest is None or latest[0] <= self._last_taken:
            # Nothing new since the last frame taken: the window gets no duplicate, and nothing failed.
            return None
        self._last_taken = latest[0]
        return latest

    async def async_stop(self) -> None:
        """Stop the decoding thread and wait for it (in the executor: joining blocks)."""
        reader, self._reader = self._reader, None
        if self._starting is not None:
            # A start cancelled half-way still runs in the executor: let it finish, then stop what it began.
            with contextlib.suppress(Exception):
                await self._starting
            self._starting = None
        if reader is not None:
            await self._hass.async_add_executor_job(reader.stop)
