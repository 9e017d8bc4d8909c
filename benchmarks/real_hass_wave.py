"""The busy wave in a real Home Assistant process: the benchmark's busy room against a 1.5 s model, one slot and two.

The benchmark's busy-wave phases run Home Assistant in its own process and time a wave from its first fetched frame
to the rule's event. This runs the same wave the way a user meets it: `python -m homeassistant` with its demo
lights, the benchmark's busy room served by camera entities of a small platform (benchmarks/hass_cameras), and our
integration set up through the same config and subentry flows the frontend uses: one entry per camera on the
simulated 1.5 s model server (each camera alone on its slots, as in the benchmark), the camera flow's defaults
(spare slots on), the benchmark's five rules, the first of which turns the camera's light on.

A camera fires `bench_episode_shown` when it first serves a frame of a gesture episode; the light's state change
comes from Home Assistant too, so the latency is the difference of two event times of one process's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
import datetime as dt
import json
from pathlib import Path
import tempfile
import time
from typing import Any, Final

from benchmarks.meter import percentile
from benchmarks.scenes import SLOT_S, Scene
from testkit.hass_api import ApiHomeAssistant, api_configuration
from testkit.ports import free_port

HERE: Final = Path(__file__).resolve().parent
CAMERAS: Final = 4
# The demo integration's lights: the first rule of camera k turns light k on.
LIGHTS: Final = (
    "light.bed_light",
    "light.ceiling_lights",
    "light.kitchen_lights",
    "light.office_rgbw_lights",
)
# The entries' first checks and the cameras' first frames settle before the window opens.
WARMUP_S: Final = 8.0
# A light is turned off this long after it came on, well before the camera's next episode (12.25 s apart).
LIGHT_OFF_AFTER_S: Final = 1.0
EVENT_EPISODE_SHOWN: Final = "bench_episode_shown"


class SceneHomeAssistant(ApiHomeAssistant):
    """A development Home Assistant whose cameras serve a rendered scene by the clock."""

    def __init__(self, config_dir: Path, port: int, frames: Path, offset_step_s: float) -> None:
        """Serve the scene rendered into `frames` on CAMERAS cameras, `offset_step_s` apart in the loop."""
        super().__init__(config_dir, port)
        self._frames = frames
        self._offset_step_s = offset_step_s

    def configuration(self, http_yaml: str) -> str:
        """Return configuration.yaml: the API, the demo lights and the scene cameras."""
        return api_configuration(
            http_yaml,
            f"  - platform: bench_cameras\n    frames: {self._frames}\n    count: {CAMERAS}\n"
            f"    offset_step: {self._offset_step_s}\n",
        )

    def write_config(self) -> None:
        """Write the configuration and link the scene cameras' platform in."""
        super().write_config()
        (self.config_dir / "custom_components" / "bench_cameras").symlink_to(
            HERE / "hass_cameras" / "bench_cameras", target_is_directory=True
        )


def write_scene(scene: Scene, folder: Path) -> None:
    """Write every frame of the scene's loop, and scene.json: the slot length and each frame's episode."""
    folder.mkdir(parents=True)
    names, episodes = [], []
    for slot in range(scene.slots):
        frame = scene.frame(slot)
        name = f"{slot:04d}.jpg"
        (folder / name).write_bytes(frame.jpeg)
        names.append(name)
        episodes.append(list(frame.episode) if frame.episode else None)
    (folder / "scene.json").write_text(json.dumps({"slot_s": SLOT_S, "frames": names, "episodes": episodes}))


@dataclass(slots=True)
class _Seen:
    """The episodes the cameras served and the lights that came on, by Home Assistant's event times."""

    episodes: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    lights_on: dict[str, list[float]] = field(default_factory=dict)


def _fired(event: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(str(event["time_fired"])).timestamp()


async def _follow(ha: ApiHomeAssistant, seen: _Seen, started: asyncio.Event) -> None:
    """Record episodes shown and lights turned on; turn each light off again a second later."""
    pending: set[asyncio.Task[Any]] = set()
    async with ha.events(EVENT_EPISODE_SHOWN, "state_changed") as stream:
        started.set()
        async for event in stream:
            data = event["data"]
            if event["event_type"] == EVENT_EPISODE_SHOWN:
                at = _fired(event)
                seen.episodes.setdefault(data["camera"], []).append((at, at - float(data["visible_ago_s"])))
                continue
            new = data.get("new_state") or {}
            old = data.get("old_state") or {}
            if data.get("entity_id") in LIGHTS and new.get("state") == "on" and old.get("state") != "on":
                seen.lights_on.setdefault(data["entity_id"], []).append(_fired(event))
                task = asyncio.create_task(_turn_off(ha, data["entity_id"]))
                pending.add(task)
                task.add_done_callback(pending.discard)


async def _turn_off(ha: ApiHomeAssistant, light: str) -> None:
    await asyncio.sleep(LIGHT_OFF_AFTER_S)
    await ha.rest("POST", "/api/services/light/turn_off", {"entity_id": light})


async def _add_entry(ha: ApiHomeAssistant, url: str, model: str, slots: int) -> str:
    result = await ha.run_flow(
        "/api/config/config_entries/flow",
        "miloco",
        {"next_step_id": "remote"},
        {"url": url, "max_concurrent": slots},
        {"model": model},
    )
    return str(result["result"]["entry_id"])


async def _add_camera_and_rules(
    ha: ApiHomeAssistant, entry_id: str, camera: str, light: str, conditions: tuple[str, ...]
) -> None:
    """Add the camera with the flow's defaults and one rule per condition; the first turns the light on."""
    await ha.run_flow(
        "/api/config/config_entries/subentries/flow", [entry_id, "camera"], {"camera_entity_id": camera}
    )
    for number, condition in enumerate(conditions, start=1):
        answer: dict[str, Any] = {
            "name": f"{camera.split('.', 1)[1]} rule {number}",
            "preset": "custom",
            "condition": condition,
            "cameras": [camera],
            "mode": "event",
            "enabled": True,
        }
        if number == 1:
            answer["action"] = [{"action": "light.turn_on", "target": {"entity_id": light}}]
        await ha.run_flow("/api/config/config_entries/subentries/flow", [entry_id, "rule"], answer)


def _figures(
    seen: _Seen, cameras: list[str], window: tuple[float, float], match_window_s: float, grace_s: float
) -> dict[str, Any]:
    """Match each light to the newest episode its camera showed before it; return latencies and counts."""
    fetched: list[float] = []
    visible: list[float] = []
    by_camera: dict[str, list[float]] = {}
    episodes = detected = extra = 0
    for camera, light in zip(cameras, LIGHTS, strict=False):
        shown = sorted(seen.episodes.get(camera, []))
        matched: set[float] = set()
        for on in sorted(seen.lights_on.get(light, [])):
            if not window[0] <= on < window[1]:
                continue
            earlier = [episode for episode in shown if episode[0] <= on]
            if not earlier or earlier[-1][0] in matched or on - earlier[-1][0] > match_window_s:
                extra += 1
                continue
            first, became_visible = earlier[-1]
            matched.add(first)
            if first >= window[0]:
                fetched.append(on - first)
                visible.append(on - became_visible)
                by_camera.setdefault(camera, []).append(round(on - first, 3))
        counted = [first for first, _ in shown if window[0] <= first <= window[1] - grace_s]
        episodes += len(counted)
        detected += sum(1 for first in counted if first in matched)
    return {
        "episodes": episodes,
        "detected": detected,
        "unmatched_lights": extra,
        "latency_s": _seconds(fetched),
        "visible_latency_s": _seconds(visible),
        # Each wave's latency, per camera in the order shown: whether waves met the check cycle at varied phases.
        "latencies_s": by_camera,
    }


def _seconds(values: list[float]) -> dict[str, Any]:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "p50": rounded(percentile(values, 50)),
        "p90": rounded(percentile(values, 90)),
        "min": rounded(min(values, default=None) if values else None),
        "max": rounded(max(values, default=None) if values else None),
        "n": len(values),
    }


async def measure(
    scene: Scene,
    model_url: str,
    *,
    conditions: tuple[str, ...],
    window_s: float,
    slots: tuple[int, ...] = (1, 2),
    offset_step_s: float,
    match_window_s: float,
    grace_s: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Run the busy wave in a real Home Assistant for each number of slots; return the figures per slots."""
    with tempfile.TemporaryDirectory(prefix="miloco-bench-hass-") as root:
        frames = Path(root) / "scene"
        await asyncio.get_running_loop().run_in_executor(None, write_scene, scene, frames)
        ha = SceneHomeAssistant(Path(root) / "config", free_port(), frames, offset_step_s)
        async with ha.running():
            cameras = [f"camera.scene_{index}" for index in range(CAMERAS)]
            for entity_id in (*cameras, *LIGHTS):
                await ha.wait_for_entity(entity_id)
            seen, started = _Seen(), asyncio.Event()
            follower = asyncio.create_task(_follow(ha, seen, started))
            try:
                await started.wait()
                # The demo starts some lights on: a light already on would not change state when a rule fires.
                await ha.rest("POST", "/api/services/light/turn_off", {"entity_id": list(LIGHTS)})
                per_slots: dict[str, Any] = {}
                for count in slots:
                    progress(
                        f"real Home Assistant: busy wave, {CAMERAS} cameras, {count} slot(s), {window_s:g} s"
                    )
                    window = await _wave_window(
                        ha,
                        model_url=model_url,
                        cameras=cameras,
                        slots=count,
                        conditions=conditions,
                        window_s=window_s,
                    )
                    per_slots[str(count)] = {
                        "cameras": CAMERAS,
                        "window_s": window_s,
                        **_figures(seen, cameras, window, match_window_s, grace_s),
                    }
            finally:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            return {"home_assistant": await _version(ha), "slots": per_slots}


async def _wave_window(
    ha: ApiHomeAssistant,
    *,
    model_url: str,
    cameras: list[str],
    slots: int,
    conditions: tuple[str, ...],
    window_s: float,
) -> tuple[float, float]:
    """Watch the cameras with entries of `slots` requests at once for a window; return the window (wall clock)."""
    entries = []
    for index, camera in enumerate(cameras):
        entry_id = await _add_entry(ha, model_url, f"bench-real-{slots}-{index}", slots)
        await _add_camera_and_rules(ha, entry_id, camera, LIGHTS[index], conditions)
        entries.append(entry_id)
    await asyncio.sleep(WARMUP_S)
    window = (time.time(), time.time() + window_s)
    await asyncio.sleep(window_s)
    for entry_id in entries:
        await ha.rest("DELETE", f"/api/config/config_entries/entry/{entry_id}")
    # The lights of the window's last waves go off before anything else starts.
    await asyncio.sleep(LIGHT_OFF_AFTER_S + 1)
    return window


async def _version(ha: ApiHomeAssistant) -> str:
    config = await ha.rest("GET", "/api/config")
    return str(config.get("version"))
