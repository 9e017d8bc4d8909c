"""A real Home Assistant process with folder cameras, driven over its APIs (testkit.hass_api) as a user's frontend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import io
import itertools
from pathlib import Path
import shutil

from PIL import Image, ImageDraw

from testkit.hass_api import ApiHomeAssistant, api_configuration

HERE = Path(__file__).resolve().parent

# The red of a waving hand: the test's model looks for it in the frames it is sent.
HAND = (230, 20, 20)
WIDTH, HEIGHT = 320, 180


def room_jpeg(hand_x: int | None = None) -> bytes:
    """Return a frame of a still room, with a red hand at `hand_x` when someone waves."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (200, 190, 170))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 120, WIDTH, HEIGHT), fill=(120, 90, 60))
    draw.rectangle((30, 90, 150, 140), fill=(60, 80, 120))
    if hand_x is not None:
        draw.rectangle((hand_x, 30, hand_x + 60, 100), fill=HAND)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class SceneFolder:
    """The frames a test camera serves; writing a new scene replaces the old one at once."""

    path: Path
    _generation: itertools.count[int] = field(default_factory=itertools.count)

    def show(self, frames: list[bytes]) -> None:
        """Make the camera serve these frames in turn from now on."""
        staging = self.path.with_name(f"{self.path.name}.{next(self._generation)}")
        staging.mkdir(parents=True)
        for index, frame in enumerate(frames):
            (staging / f"{index:03d}.jpg").write_bytes(frame)
        old = self.path.with_name(f"{self.path.name}.old")
        if self.path.exists():
            self.path.rename(old)
        staging.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)

    def still(self) -> None:
        """Show an empty, unchanging room (the same bytes every frame)."""
        self.show([room_jpeg()])

    def waving(self) -> None:
        """Show a hand that moves left and right."""
        self.show([room_jpeg(x) for x in (160, 200, 240, 200)])


class RealHomeAssistant(ApiHomeAssistant):
    """A development Home Assistant with folder cameras, and an API client logged in as its owner."""

    def __init__(self, config_dir: Path, port: int, cameras: Mapping[str, float]) -> None:
        """Prepare a camera per name, with its snapshot delay in seconds."""
        super().__init__(config_dir, port)
        self.scenes = {
            name: SceneFolder(config_dir.parent / "scenes" / name.replace(" ", "_")) for name in cameras
        }
        self._delays = dict(cameras)

    def configuration(self, http_yaml: str) -> str:
        """Return configuration.yaml: the demo lights, the API, and a folder camera per scene."""
        cameras = "".join(
            f"      - name: {name}\n        frames: {self.scenes[name].path}\n        delay: {delay}\n"
            for name, delay in self._delays.items()
        )
        return api_configuration(
            http_yaml,
            "  - platform: e2e_cameras\n    cameras:\n" + cameras,
            debug=("custom_components.miloco",),
        )

    def write_config(self) -> None:
        """Write the configuration, link the cameras' integration in and show still rooms."""
        super().write_config()
        (self.config_dir / "custom_components" / "e2e_cameras").symlink_to(
            HERE / "e2e_cameras", target_is_directory=True
        )
        for scene in self.scenes.values():
            scene.still()
