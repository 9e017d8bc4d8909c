"""Camera entities that serve the benchmark's rendered scene by the clock, each from its own point in the loop.

The frames and what each one shows come from a folder the benchmark writes (`scene.json` names the slot length
and each frame's episode). Like benchmarks.scenes.BenchCamera, a camera notes the first time it serves a frame of
each episode: it fires `bench_episode_shown` then, so that the benchmark can time the way from that frame to the
light from Home Assistant's own event times.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
import time
from typing import Any, Final

from homeassistant.components.camera import Camera
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

EVENT_EPISODE_SHOWN: Final = "bench_episode_shown"


def _load(folder: Path) -> tuple[float, list[bytes], list[list[Any] | None]]:
    """Return the slot length, the frames and each frame's episode ([kind, number] or None)."""
    scene = json.loads((folder / "scene.json").read_text())
    frames = [(folder / name).read_bytes() for name in scene["frames"]]
    return float(scene["slot_s"]), frames, list(scene["episodes"])


async def async_setup_platform(
    hass: HomeAssistant,
    config: dict[str, Any],
    async_add_entities: AddEntitiesCallback,
    discovery_info: Any = None,
) -> None:
    """Create `count` cameras on the scene of `frames`, camera k starting `offset_step` × k seconds in."""
    slot_s, frames, episodes = await hass.async_add_executor_job(_load, Path(config["frames"]))
    started = time.monotonic()
    step = float(config["offset_step"])
    async_add_entities(
        SceneCamera(index, slot_s, frames, episodes, started - index * step)
        for index in range(config["count"])
    )


class SceneCamera(Camera):
    """A camera that serves the frame of the current slot of a looping scene."""

    _attr_should_poll = False

    def __init__(
        self, index: int, slot_s: float, frames: list[bytes], episodes: list[list[Any] | None], origin: float
    ) -> None:
        """Serve the scene as if it began at monotonic time `origin`."""
        super().__init__()
        self._attr_name = f"Scene {index}"
        self._attr_unique_id = f"bench_scene_{index}"
        self._slot_s = slot_s
        self._frames = frames
        self._episodes = episodes
        self._origin = origin
        self._shown: set[tuple[str, int, int]] = set()

    async def async_camera_image(self, width: int | None = None, height: int | None = None) -> bytes | None:
        """Return the current frame; fire bench_episode_shown on the first frame served of an episode."""
        slot = math.floor((time.monotonic() - self._origin) / self._slot_s)
        loop, index = divmod(slot, len(self._frames))
        episode = self._episodes[index]
        if episode is not None and (key := (str(episode[0]), int(episode[1]), loop)) not in self._shown:
            self._shown.add(key)
            # When the episode's first frame became the current one (a camera fetched less often sees it later).
            first = index
            while first > 0 and self._episodes[first - 1] == episode:
                first -= 1
            visible_ago = time.monotonic() - (
                self._origin + (loop * len(self._frames) + first) * self._slot_s
            )
            self.hass.bus.async_fire(
                EVENT_EPISODE_SHOWN,
                {
                    "camera": self.entity_id,
                    "kind": key[0],
                    "episode": key[1],
                    "loop": loop,
                    "visible_ago_s": round(visible_ago, 4),
                },
            )
        return self._frames[index]
