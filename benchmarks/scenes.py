"""Generated camera scenes (real 1280×720 JPEGs with sensor noise) and the camera entity that serves them.

A scene is a loop of frames, one per quarter second, rendered and encoded before a run starts, so that
serving a frame costs Home Assistant nothing but a lookup. What a model should recognise is drawn in a
colour no room object has: a magenta card for a raised hand (a gesture), an orange shirt for the person
who walks in. Each contiguous run of such frames is an episode; the camera records when it first served a
frame of each episode, which is where the benchmark's detection latency starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import io
import math
import threading
import time
from typing import Final

from homeassistant.components.camera import Camera
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.setup import async_setup_component
import numpy as np
from PIL import Image, ImageDraw
from pytest_homeassistant_custom_component.common import (
    MockModule,
    MockPlatform,
    mock_integration,
    mock_platform,
)

WIDTH: Final = 1280
HEIGHT: Final = 720
SLOT_S: Final = 0.25
JPEG_QUALITY: Final = 85
# Sensor noise, in grey levels (a decent camera in a lit room).
NOISE_SIGMA: Final = 2.0
NOISE_VARIANTS: Final = 4
# A gesture episode every 12.25 s: longer than a rule's 10 s cooldown, so that every episode may fire, and not a
# multiple of the 0.5 s capture or of a 1.5 s check cycle: with a whole 12 s, a camera's waves all met its check
# cycle at the same phase (seen in the real Home Assistant measurement: one camera's six waves within 0.3 s of each
# other), and a latency median stood for a few lucky or unlucky alignments. Each wave now comes 0.25 s later in
# the cycle than the one before.
GESTURE_PERIOD_S: Final = 12.25
GESTURE_SHOWN_S: Final = 2.5
WALK_PERIOD_S: Final = 15.0
WALK_S: Final = 3.0

SCENARIOS: Final = ("static", "occasional", "gestures", "busy")

SKIN: Final = (225, 180, 150)
MAGENTA: Final = (230, 40, 220)
ORANGE: Final = (240, 140, 30)
# Where the three people of the gesture scenes stand (x of the body) and where each holds the card up.
# The third stands near the right edge, outside the square a centre crop keeps.
PEOPLE: Final = ((420, 250), (700, 190), (1200, 190))
SHIRTS: Final = ((90, 110, 90), (110, 90, 80), (80, 90, 110))
CARDS: Final = ((520, 170), (800, 110), (1215, 110))
TV_PALETTE: Final = ((30, 60, 140), (140, 140, 50), (60, 120, 60), (120, 60, 40), (90, 90, 110))


@dataclass(frozen=True, slots=True)
class SceneFrame:
    """One encoded frame, and the episode it shows (marker kind and number within the loop), if any."""

    jpeg: bytes
    episode: tuple[str, int] | None = None


class Scene:
    """A loop of frames, one per SLOT_S seconds, rendered on demand and kept once rendered.

    Render the slots a phase will show beforehand (`prerender`, in an executor): serving a frame that was
    not rendered would render it on the event loop.
    """

    def __init__(self, name: str, slots: int, render: Callable[[int], SceneFrame]) -> None:
        """Create a loop of `slots` frames; `render(slot)` makes frame number `slot`."""
        self.name = name
        self.slots = slots
        self._render = render
        self._frames: dict[int, SceneFrame] = {}
        self._lock = threading.Lock()

    @property
    def period_s(self) -> float:
        """Return the length of the loop."""
        return self.slots * SLOT_S

    def frame(self, slot: int) -> SceneFrame:
        """Return frame number `slot` of the loop, rendering it if need be."""
        slot %= self.slots
        found = self._frames.get(slot)
        if found is None:
            with self._lock:
                found = self._frames.get(slot)
                if found is None:
                    found = self._frames[slot] = self._render(slot)
        return found

    def prerender(self, start_s: float, end_s: float) -> None:
        """Render every frame shown between scene times `start_s` and `end_s`."""
        first = math.floor(start_s / SLOT_S)
        last = min(math.floor(end_s / SLOT_S), first + self.slots - 1)
        for slot in range(first, last + 1):
            self.frame(slot)

    def episode_start(self, t: float, not_before: float) -> float:
        """Return the scene time the episode shown at t began (its first slot), no earlier than `not_before`."""
        slot = math.floor(t / SLOT_S)
        episode = self.frame(slot).episode
        first = math.floor(not_before / SLOT_S)
        while slot > first and (slot - 1) // self.slots == slot // self.slots:
            if self.frame(slot - 1).episode != episode:
                break
            slot -= 1
        return slot * SLOT_S

    def at(self, t: float) -> tuple[SceneFrame, tuple[str, int, int] | None]:
        """Return the frame at scene time t, and the key of its episode (kind, loop number, episode)."""
        slot = math.floor(t / SLOT_S)
        frame = self.frame(slot)
        if frame.episode is None:
            return frame, None
        return frame, (frame.episode[0], slot // self.slots, frame.episode[1])


def _room() -> Image.Image:
    """Return an empty living room: wall, window, floor, rug, sofa, TV, lamp and a bookshelf."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (200, 190, 170))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 480, WIDTH, HEIGHT), fill=(120, 90, 60))
    draw.ellipse((380, 560, 900, 700), fill=(150, 60, 60))
    draw.rectangle((60, 80, 260, 300), fill=(110, 100, 90))
    draw.rectangle((70, 90, 250, 290), fill=(170, 200, 230))
    draw.rectangle((120, 360, 600, 560), fill=(60, 80, 120))
    draw.rectangle((120, 330, 600, 380), fill=(50, 70, 105))
    draw.rectangle((800, 160, 1160, 380), fill=(20, 20, 20))
    draw.rectangle((960, 380, 1000, 480), fill=(40, 40, 40))
    draw.ellipse((660, 120, 740, 200), fill=(250, 240, 200))
    draw.rectangle((1180, 200, 1270, 560), fill=(100, 70, 40))
    for shelf, y in enumerate(range(220, 540, 60)):
        for book in range(6):
            colour = ((60 + 30 * book) % 200, (90 + 40 * shelf) % 200, 70 + 20 * book)
            draw.rectangle((1186 + 14 * book, y, 1196 + 14 * book, y + 45), fill=colour)
    return image


def _person(draw: ImageDraw.ImageDraw, x: int, top: int, shirt: tuple[int, int, int]) -> None:
    """Draw a person whose body is centred on x, head at `top`."""
    draw.ellipse((x - 25, top, x + 25, top + 50), fill=SKIN)
    draw.rectangle((x - 40, top + 50, x + 40, top + 230), fill=shirt)
    draw.rectangle((x - 35, top + 230, x + 35, top + 330), fill=(50, 50, 60))


def _raise_card(draw: ImageDraw.ImageDraw, who: int) -> None:
    """Draw person `who` holding the magenta card up (the gesture a rule looks for)."""
    (x, top), (cx, cy) = PEOPLE[who], CARDS[who]
    draw.line((x + 35, top + 80, cx, cy + 30), fill=SKIN, width=22)
    draw.rectangle((cx - 35, cy - 35, cx + 35, cy + 35), fill=MAGENTA)


def _people(draw: ImageDraw.ImageDraw) -> None:
    """Draw the three people of the gesture scenes, still."""
    for (x, top), shirt in zip(PEOPLE, SHIRTS, strict=True):
        _person(draw, x, top, shirt)


class _Encoder:
    """Adds one of a few fixed noise fields to a picture and encodes it; the noise repeats, cheaply."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self._noise = [
            np.clip(rng.normal(0.0, NOISE_SIGMA, (HEIGHT, WIDTH, 3)), -8, 8).astype(np.int16)
            for _ in range(NOISE_VARIANTS)
        ]
        self._stills: dict[tuple[str, int], bytes] = {}

    def encode(self, image: Image.Image, variant: int) -> bytes:
        pixels = np.asarray(image, dtype=np.int16) + self._noise[variant % NOISE_VARIANTS]
        noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
        buffer = io.BytesIO()
        noisy.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue()

    def still(self, key: str, draw: Callable[[], Image.Image], variant: int) -> bytes:
        """Return noise variant `variant` of a still picture, encoding each variant once."""
        variant %= NOISE_VARIANTS
        found = self._stills.get((key, variant))
        if found is None:
            found = self._stills[(key, variant)] = self.encode(draw(), variant)
        return found


def _seated_room() -> Image.Image:
    image = _room()
    _people(ImageDraw.Draw(image))
    return image


def static_scene(encoder: _Encoder) -> Scene:
    """Return an empty room where nothing moves (only sensor noise)."""
    return Scene("static", NOISE_VARIANTS, lambda slot: SceneFrame(encoder.still("room", _room, slot)))


def occasional_scene(encoder: _Encoder) -> Scene:
    """Return a room that someone in an orange shirt walks across (3 s) once every 15 s."""
    walking = round(WALK_S / SLOT_S)

    def render(slot: int) -> SceneFrame:
        if slot >= walking:
            return SceneFrame(encoder.still("room", _room, slot))
        image = _room()
        x = 40 + round((WIDTH - 80) * slot / (walking - 1))
        _person(ImageDraw.Draw(image), x, 260, ORANGE)
        return SceneFrame(encoder.encode(image, slot), ("walker", 0))

    return Scene("occasional", round(WALK_PERIOD_S / SLOT_S), render)


def gestures_scene(encoder: _Encoder) -> Scene:
    """Return three still people, one of whom holds a card up for 2.5 s every 12.25 s, in turn."""
    per_episode = round(GESTURE_PERIOD_S / SLOT_S)
    shown = round(GESTURE_SHOWN_S / SLOT_S)

    def render(slot: int) -> SceneFrame:
        who, phase = divmod(slot, per_episode)
        if phase >= shown:
            return SceneFrame(encoder.still("seated", _seated_room, slot))
        raised = _seated_room()
        _raise_card(ImageDraw.Draw(raised), who)
        return SceneFrame(encoder.encode(raised, slot), ("gesture", who))

    return Scene("gestures", per_episode * len(PEOPLE), render)


def busy_scene(encoder: _Encoder) -> Scene:
    """Return the gesture scene with two more people walking about and the TV on: every frame differs."""
    per_episode = round(GESTURE_PERIOD_S / SLOT_S)
    shown = round(GESTURE_SHOWN_S / SLOT_S)

    def render(slot: int) -> SceneFrame:
        t = slot * SLOT_S
        image = _room()
        draw = ImageDraw.Draw(image)
        draw.rectangle((810, 170, 1150, 370), fill=TV_PALETTE[int(t / 0.5) % len(TV_PALETTE)])
        _people(draw)
        _person(draw, round(640 + 520 * math.sin(2 * math.pi * t / 12)), 300, (40, 70, 190))
        _person(draw, round(640 + 450 * math.sin(2 * math.pi * t / 18 + 1)), 320, (50, 160, 70))
        who, phase = divmod(slot, per_episode)
        episode = None
        if phase < shown:
            _raise_card(draw, who)
            episode = ("gesture", who)
        return SceneFrame(encoder.encode(image, slot), episode)

    return Scene("busy", per_episode * len(PEOPLE), render)


def build_scenes(names: tuple[str, ...] = SCENARIOS) -> dict[str, Scene]:
    """Return the named scenes (nothing rendered yet: see Scene.prerender)."""
    encoder = _Encoder()
    builders: dict[str, Callable[[_Encoder], Scene]] = {
        "static": static_scene,
        "occasional": occasional_scene,
        "gestures": gestures_scene,
        "busy": busy_scene,
    }
    return {name: builders[name](encoder) for name in names}


@dataclass(slots=True)
class Showing:
    """What one camera shows during a phase, and when it first served each episode."""

    scene: Scene
    offset_s: float
    started: float
    first_shown: dict[tuple[str, int, int], float] = field(default_factory=dict)
    # When each episode's first frame became the camera's current one (whether or not it was fetched then):
    # a camera fetching frames less often sees an episode later than this.
    first_visible: dict[tuple[str, int, int], float] = field(default_factory=dict)
    served: int = 0


class BenchCamera(Camera):
    """A camera entity serving a scene's pre-encoded frames by the clock; idle until given a scene."""

    _attr_should_poll = False

    def __init__(self, index: int) -> None:
        """Create camera number `index` (entity id camera.bench_NN)."""
        super().__init__()
        self._attr_name = f"Bench {index:02d}"
        self._attr_unique_id = f"bench_camera_{index:02d}"
        self.showing: Showing | None = None

    def show(self, scene: Scene, offset_s: float) -> Showing:
        """Start showing `scene` from scene time `offset_s`, now; return the record of what is served."""
        self.showing = Showing(scene, offset_s, time.monotonic())
        return self.showing

    async def async_camera_image(self, width: int | None = None, height: int | None = None) -> bytes | None:
        """Return the frame of the current quarter second; note the first frame of each episode."""
        showing = self.showing
        if showing is None:
            return None
        now = time.monotonic()
        scene_t = now - showing.started + showing.offset_s
        frame, episode = showing.scene.at(scene_t)
        if episode is not None and episode not in showing.first_shown:
            showing.first_shown[episode] = now
            began = showing.scene.episode_start(scene_t, showing.offset_s)
            showing.first_visible[episode] = showing.started + began - showing.offset_s
        showing.served += 1
        return frame.jpeg


def camera_entity_id(index: int) -> str:
    """Return the entity id of camera number `index`."""
    return f"camera.bench_{index:02d}"


async def async_add_cameras(hass: HomeAssistant, count: int) -> list[BenchCamera]:
    """Register `count` bench cameras as entities of a mock integration."""
    cameras = [BenchCamera(index) for index in range(count)]

    async def async_setup_platform(
        hass: HomeAssistant,
        config: object,
        async_add_entities: AddEntitiesCallback,
        discovery_info: object = None,
    ) -> None:
        async_add_entities(cameras)

    mock_integration(hass, MockModule("bench_scenes"))
    mock_platform(hass, "bench_scenes.camera", MockPlatform(async_setup_platform=async_setup_platform))
    if not await async_setup_component(hass, "camera", {"camera": [{"platform": "bench_scenes"}]}):
        raise RuntimeError("the camera integration did not set up")
    await hass.async_block_till_done()
    return cameras
