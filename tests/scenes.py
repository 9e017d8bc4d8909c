"""Generated camera scenes (real JPEGs) and a test camera entity that serves them."""

from __future__ import annotations

from collections.abc import Callable
import io
import math

from homeassistant.components.camera import Camera, CameraEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from PIL import Image, ImageDraw

from .platforms import async_add_test_entities

WIDTH, HEIGHT = 320, 180


def _room() -> Image.Image:
    """Return a living room: a wall, a floor, a sofa, a TV and a lamp."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (200, 190, 170))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 120, WIDTH, HEIGHT), fill=(120, 90, 60))
    draw.rectangle((30, 90, 150, 140), fill=(60, 80, 120))
    draw.rectangle((200, 40, 290, 95), fill=(20, 20, 20))
    draw.ellipse((165, 30, 185, 50), fill=(250, 240, 200))
    return image


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def static_room() -> Callable[[], bytes]:
    """Return a scene that never changes (the same JPEG bytes every frame)."""
    frame = _jpeg(_room())
    return lambda: frame


def waving_hand() -> Callable[[], bytes]:
    """Return a scene with a person whose hand-sized blob moves back and forth every frame."""
    room = _room()
    count = 0

    def frame() -> bytes:
        nonlocal count
        count += 1
        image = room.copy()
        draw = ImageDraw.Draw(image)
        draw.rectangle((90, 60, 120, 140), fill=(230, 180, 150))  # the person
        x = 130 + int(25 * math.sin(count))
        draw.ellipse((x, 40, x + 24, 64), fill=(150, 100, 80))  # the hand, in shadow against the wall
        return _jpeg(image)

    return frame


class Freezable:
    """A scene that can be frozen: while `frozen`, the camera serves its last frame again (a still room)."""

    def __init__(self, scene: Callable[[], bytes]) -> None:
        """Play `scene` until frozen."""
        self._scene = scene
        self._last: bytes | None = None
        self.frozen = False

    def __call__(self) -> bytes:
        """Return the next frame, or the last one again while frozen."""
        if not self.frozen or self._last is None:
            self._last = self._scene()
        return self._last


class SceneCamera(Camera):
    """A camera entity whose frames come from a scene; a test can make it fail."""

    _attr_should_poll = False

    def __init__(self, name: str, scene: Callable[[], bytes], *, stream_source: str | None = None) -> None:
        """Serve `scene()` as the camera image."""
        super().__init__()
        self._attr_name = name
        self._attr_unique_id = f"scene_{name}"
        self.scene = scene
        self.failing = False
        self.images_served = 0
        self._stream_source = stream_source
        if stream_source is not None:
            self._attr_supported_features = CameraEntityFeature.STREAM

    async def async_camera_image(self, width: int | None = None, height: int | None = None) -> bytes | None:
        """Return the scene's next frame, or fail like an unreachable camera."""
        if self.failing:
            raise HomeAssistantError("camera unreachable")
        self.images_served += 1
        return self.scene()

    async def stream_source(self) -> str | None:
        """Return the stream URL given at creation."""
        return self._stream_source


async def async_add_cameras(hass: HomeAssistant, *entities: SceneCamera) -> None:
    """Register the cameras as entities of a test integration."""
    await async_add_test_entities(hass, "camera", "test_scenes", entities)
