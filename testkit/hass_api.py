"""A development Home Assistant driven over its REST and websocket APIs as its owner, as the frontend drives it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
import contextlib
import itertools
from pathlib import Path
import time
from typing import Any

import aiohttp

from .home_assistant import DevHomeAssistant

# configuration.yaml of an instance driven over its APIs: no frontend, the demo's lights, the caller's cameras
# (the items of `camera:`) and loggers (the items of `logger: logs:`, or nothing).
API_CONFIGURATION = """\
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
{cameras}

logger:
  default: warning
{logs}"""


def api_configuration(http_yaml: str, cameras_yaml: str, *, debug: tuple[str, ...] = ()) -> str:
    """Return configuration.yaml for an instance driven over its APIs, with these loggers at debug level."""
    logs = "".join(f"    {logger}: debug\n" for logger in debug)
    return API_CONFIGURATION.format(
        http=http_yaml, cameras=cameras_yaml.rstrip("\n"), logs=f"  logs:\n{logs}" if logs else ""
    )


class ApiHomeAssistant(DevHomeAssistant):
    """A development Home Assistant with an API client logged in as its owner."""

    def __init__(self, config_dir: Path, port: int) -> None:
        """Prepare; connect() logs in once the process answers."""
        super().__init__(config_dir, port)
        self.token = ""
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_id = itertools.count(1)

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

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ApiHomeAssistant]:
        """Write the configuration, start the process and log in; stop it all on the way out."""
        self.write_config()
        self.start()
        try:
            await self.connect()
            yield self
        finally:
            await self.disconnect()
            self.stop()

    @contextlib.asynccontextmanager
    async def events(self, *event_types: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Subscribe to bus events of these types on a websocket of its own; yield the stream of them."""
        assert self._session is not None
        async with self._session.ws_connect(f"{self.url}/api/websocket") as socket:
            assert (await socket.receive_json())["type"] == "auth_required"
            await socket.send_json({"type": "auth", "access_token": self.token})
            assert (await socket.receive_json())["type"] == "auth_ok"
            for number, event_type in enumerate(event_types, start=1):
                await socket.send_json({"id": number, "type": "subscribe_events", "event_type": event_type})
                assert (await socket.receive_json())["success"]

            async def stream() -> AsyncIterator[dict[str, Any]]:
                async for message in socket:
                    data = message.json()
                    if data.get("type") == "event":
                        yield data["event"]

            yield stream()

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
