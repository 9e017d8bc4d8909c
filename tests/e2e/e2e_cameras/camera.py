"""Camera entities whose snapshots are the JPEG files of a folder, in turn, after a configurable delay.

The delay stands for a network camera that takes its time (1.5 s is common for an RTSP camera's snapshot). The
camera goes through Home Assistant's own `camera.async_get_image`, which turns a cancelled snapshot into a
`HomeAssistantError`: exactly what the integration meets in a real installation.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from homeassistant.components.camera import Camera
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback


async def async_setup_platform(
    hass: HomeAssistant,
    config: dict[str, Any],
    async_add_entities: AddEntitiesCallback,
    discovery_info: Any = None,
) -> None:
    """Create one camera per item of `cameras:` (name, frames folder, delay in seconds)."""
    async_add_entities(
        FolderCamera(str(item["name"]), Path(item["frames"]), float(item.get("delay", 0)))
        for item in config["cameras"]
    )


class FolderCamera(Camera):
    """A camera that serves the folder's JPEG files one after another."""

    _attr_should_poll = False

    def __init__(self, name: str, folder: Path, delay: float) -> None:
        """Serve the files of `folder`, each snapshot taking `delay` seconds."""
        super().__init__()
        self._attr_name = name
        self._attr_unique_id = f"e2e_{name}"
        self._folder = folder
        self._delay = delay
        self._count = 0

    async def async_camera_image(self, width: int | None = None, height: int | None = None) -> bytes | None:
        """Wait like a slow camera, then return the next frame of the folder."""
        await asyncio.sleep(self._delay)
        self._count += 1
        return await self.hass.async_add_executor_job(self._read, self._count)

    def _read(self, count: int) -> bytes | None:
        frames = sorted(self._folder.glob("*.jpg"))
        if not frames:
            return None
        try:
            return frames[count % len(frames)].read_bytes()
        except FileNotFoundError:  # the test swapped the scene between listing and reading
            return None
