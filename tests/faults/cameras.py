"""Cameras that misbehave the way real ones do: slow snapshots that turn a cancellation into an error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import io
import random

from homeassistant.exceptions import HomeAssistantError
from PIL import Image, ImageDraw

from ..scenes import SceneCamera


class SlowCamera(SceneCamera):
    """A camera whose snapshots take `delays` seconds (uniformly drawn) and that swallows cancellation.

    Like Home Assistant's own camera code (and many camera integrations), a cancelled snapshot does not
    end with CancelledError: the camera raises HomeAssistantError instead, so a caller that simply
    awaits it and catches camera errors never notices that it was asked to stop.
    """

    def __init__(
        self,
        name: str,
        scene: Callable[[], bytes],
        *,
        delays: tuple[float, float] = (0.25, 1.5),
        seed: int = 0,
    ) -> None:
        """Serve `scene()` after a delay drawn from `delays` (the same sequence for the same seed)."""
        super().__init__(name, scene)
        self.delays = delays
        self._random = random.Random(seed)
        self.in_flight = 0
        self.cancelled = 0

    async def async_camera_image(self, width: int | None = None, height: int | None = None) -> bytes | None:
        """Take a while, then return the scene's frame; a cancellation becomes a camera error."""
        self.in_flight += 1
        try:
            await asyncio.sleep(self._random.uniform(*self.delays))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise HomeAssistantError("the snapshot was interrupted") from None
        finally:
            self.in_flight -= 1
        return await super().async_camera_image(width, height)


def extreme_aspect(width: int = 4000, height: int = 16) -> Callable[[], bytes]:
    """Return a scene of a very wide, very flat frame (a panorama strip) that changes every frame."""
    count = 0

    def frame() -> bytes:
        nonlocal count
        count += 1
        image = Image.new("RGB", (width, height), (200, 190, 170))
        draw = ImageDraw.Draw(image)
        x = (count * 97) % (width - 40)
        draw.rectangle((x, 0, x + 40, height), fill=(20, 20, 20))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        return buffer.getvalue()

    return frame
