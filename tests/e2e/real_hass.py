"""A real Home Assistant process driven over its REST and websocket APIs, as a user's frontend drives it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
import io
import itertools
from pathlib import Path
import shutil
import time
from typing import Any

import aiohttp
from PIL import Image, ImageDraw

from ..browser.home_assistant import DevHomeAssistant

HERE = Path(__file__).resolve().parent

CONFIGURATION = """\
homeassistant:
  name: Home
  unit_system: metric
  time_zone: UTC
  country: NL

api:
config:
onboarding:
{http}
demo:
light:
camera:
  - platform: e2e_cameras
    cameras:
{cameras}

logger:
  default: warning
  logs:
    custom_components.miloco: debug
"""

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


class RealHomeAssistant(DevHomeAssistant):
    """A development Home Assistant with folder cameras, and an API client logged in as its owner."""

    def __init__(self, config_dir: Path, port: int, cameras: Mapping[str, float]) -> None:
        """Prepare a camera per name, with its snapshot delay in seconds."""
        super().__init__(config_dir, port)
        self.scenes = {
            name: SceneFolder(config_dir.parent / "scenes" / name.replace(" ", "_")) for name in cameras
        }
        self._delays = dict(cameras)
        self.token = ""
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_id = itertools.count(1)

    def configuration(self, http_yaml: str) -> str:
        """Return configuration.yaml: the demo lights, the API, and a folder camera per scene."""
        cameras = "".join(
            f"      - name: {name}\n        frames: {self.scenes[name].path}\n        delay: {delay}\n"
            for name, delay in self._delays.items()
        )
        return CONFIGURATION.format(http=http_yaml, cameras=cameras.rstrip("\n"))

    def write_config(self) -> None:
        """Write the configuration, link the cameras' integration in and show still rooms."""
        super().write_config()
        (self.config_dir / "custom_components" / "e2e_cameras").symlink_to(
            HERE / "e2e_cameras", target_is_directory=True
        )
        for scene in self.scenes.values():
            scene.still()

    async def connect(self) -> None:
        """Wait for the API, create the owner account and log in over REST and websocket."""
        self._session = aiohttp.ClientSession()
        await self.wait_until_ready(self._session, within=240.0)
        code = await self.onboard(self._session)
        async with self._session.post(
            f"{self.url}/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": f"{self.url}/"},
        ) as response:
            assert response.status == 200, await response.text()
            self.token = (await response.json())["access_token"]
        self._ws = await self._session.ws_connect(f"{self.url}/api/websocket")
        assert (await self._ws.receive_json())["type"] == "auth_required"
        await self._ws.send_json({"type": "auth", "access_token": self.token})
        assert (await self._ws.receive_json())["type"] == "auth_ok"

    async def disconnect(self) -> None:
        """Close the API connections."""
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def rest(self, method: str, path: str, body: Any = None) -> Any:
        """Call the REST API and return its JSON answer; anything but 200 fails the test."""
        assert self._session is not None
        async with self._session.request(
            method, f"{self.url}{path}", json=body, headers={"Authorization": f"Bearer {self.token}"}
        ) as response:
            text = await response.text()
            assert response.status == 200, (
                f"{method} {path}: HTTP {response.status}: {text}\n{self.log_tail()}"
            )
            return await response.json() if text else None

    async def ws(self, message_type: str, **fields: Any) -> Any:
        """Send one websocket command and return its result."""
        assert self._ws is not None
        message_id = next(self._ws_id)
        await self._ws.send_json({"id": message_id, "type": message_type, **fields})
        while True:
            reply = await self._ws.receive_json()
            if reply.get("id") == message_id:
                assert reply["success"], reply
                return reply.get("result")

    async def run_flow(self, start_path: str, handler: Any, *steps: Mapping[str, Any]) -> dict[str, Any]:
        """Start a config or subentry flow and answer its steps; each answer fills the form's defaults first."""
        result: dict[str, Any] = await self.rest("POST", start_path, {"handler": handler})
        for answer in steps:
            if result["type"] == "menu":
                body: dict[str, Any] = dict(answer)
            else:
                assert result["type"] == "form", result
                assert not result.get("errors"), result
                body = merged(form_defaults(result["data_schema"]), answer)
            result = await self.rest("POST", f"{start_path}/{result['flow_id']}", body)
        assert result["type"] == "create_entry", result
        return result

    async def state(self, entity_id: str) -> str | None:
        """Return an entity's state, or None while it does not exist."""
        assert self._session is not None
        async with self._session.get(
            f"{self.url}/api/states/{entity_id}", headers={"Authorization": f"Bearer {self.token}"}
        ) as response:
            if response.status == 404:
                return None
            assert response.status == 200, await response.text()
            return str((await response.json())["state"])

    async def entity_ids(self, prefix: str) -> list[str]:
        """Return the entity ids that start with `prefix`."""
        states = await self.rest("GET", "/api/states")
        return sorted(state["entity_id"] for state in states if state["entity_id"].startswith(prefix))

    async def wait_for_entity(self, entity_id: str, within: float = 60.0) -> None:
        """Wait until the entity exists (platforms finish setting up after the API answers)."""
        start = time.monotonic()
        while await self.state(entity_id) is None:
            if time.monotonic() - start > within:
                raise AssertionError(f"{entity_id} does not exist after {within} s\n{self.log_tail()}")
            await asyncio.sleep(0.2)

    async def wait_for_state(self, entity_id: str, wanted: str, within: float) -> float:
        """Wait until the entity has the state; return how long it took."""
        start = time.monotonic()
        while (current := await self.state(entity_id)) != wanted:
            if time.monotonic() - start > within:
                raise AssertionError(
                    f"{entity_id} is {current!r}, not {wanted!r}, after {within} s\n{self.log_tail()}"
                )
            await asyncio.sleep(0.1)
        return time.monotonic() - start


def form_defaults(schema: list[dict[str, Any]]) -> dict[str, Any]:
    """Return what the form would submit untouched: suggested values and defaults, sections included."""
    values: dict[str, Any] = {}
    for item in schema:
        if item.get("type") == "expandable":
            values[item["name"]] = form_defaults(item["schema"])
            continue
        suggested = (item.get("description") or {}).get("suggested_value")
        if suggested is not None:
            values[item["name"]] = suggested
        elif "default" in item:
            values[item["name"]] = item["default"]
    return values


def merged(defaults: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """Return the form's defaults with the answer's values over them, section by section."""
    body = dict(defaults)
    for key, value in answer.items():
        if isinstance(value, Mapping) and isinstance(body.get(key), Mapping):
            body[key] = merged(body[key], value)
        else:
            body[key] = value
    return body
