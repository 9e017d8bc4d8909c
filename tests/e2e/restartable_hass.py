"""A real Home Assistant that can be restarted on its config dir, with a counter, and its subentry forms."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
import time
from typing import Any

import aiohttp

from testkit.hass_api import form_defaults, merged

from .real_hass import RealHomeAssistant

# A counter the rules' actions increment: it counts how often an action ran, across restarts (it restores).
COUNTER = "counter.rule_runs"
COUNTER_YAML = """
counter:
  rule_runs:
    initial: 0
    step: 1
"""
SUBENTRY_FLOW = "/api/config/config_entries/subentries/flow"


class RestartableHomeAssistant(RealHomeAssistant):
    """A real Home Assistant whose process the test stops and starts again, as a user restarts it."""

    def __init__(self, config_dir: Path, port: int, cameras: Mapping[str, float]) -> None:
        """Prepare the cameras; no run has ended yet."""
        super().__init__(config_dir, port, cameras)
        # The logs of the runs before the current one, oldest first.
        self.earlier_logs: list[Path] = []

    def configuration(self, http_yaml: str) -> str:
        """Return the usual configuration with the action counter."""
        return super().configuration(http_yaml) + COUNTER_YAML

    async def restart(self) -> None:
        """Stop Home Assistant (it writes its state on the way out), start it on the same config dir, log in."""
        await self.disconnect()
        self.stop()
        assert self.process is not None
        assert self.process.returncode == 0, f"Home Assistant stopped with {self.process.returncode}"
        # Each run keeps its own log: start() truncates the one it writes.
        previous = self.log_path
        self.log_path = previous.with_name(f"{previous.stem}.after-restart.log")
        self.earlier_logs.append(previous)
        self.start()
        await self._log_in_again()

    def all_logs(self) -> str:
        """Return the logs of every run, oldest first."""
        return "".join(path.read_text(errors="replace") for path in self.earlier_logs) + self.log_text()

    async def _log_in_again(self, within: float = 240.0) -> None:
        """Open the API again with the token of the first login (still valid: the owner's login is stored).

        Onboarding is over, so its API (which wait_until_ready asks) is gone: the REST API's root answers.
        """
        self._session = aiohttp.ClientSession()
        deadline = time.monotonic() + within
        while not await self._api_answers():
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"Home Assistant exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Home Assistant did not answer within {within:.0f} s:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.5)
        self._ws = await self._session.ws_connect(f"{self.url}/api/websocket")
        assert (await self._ws.receive_json())["type"] == "auth_required"
        await self._ws.send_json({"type": "auth", "access_token": self.token})
        assert (await self._ws.receive_json())["type"] == "auth_ok"

    async def _api_answers(self) -> bool:
        """Return whether the REST API answers the owner."""
        assert self._session is not None
        try:
            async with self._session.get(
                f"{self.url}/api/", headers={"Authorization": f"Bearer {self.token}"}
            ) as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def reconfigure_subentry(
        self, entry_id: str, subentry_type: str, subentry_id: str, answer: Mapping[str, Any]
    ) -> None:
        """Open a subentry's form, change what `answer` says over what it shows, and save it."""
        result = await self.rest(
            "POST", SUBENTRY_FLOW, {"handler": [entry_id, subentry_type], "subentry_id": subentry_id}
        )
        assert result["type"] == "form", result
        body = merged(form_defaults(result["data_schema"]), answer)
        result = await self.rest("POST", f"{SUBENTRY_FLOW}/{result['flow_id']}", body)
        assert result["type"] == "abort" and result["reason"] == "reconfigure_successful", result

    async def full_state(self, entity_id: str) -> dict[str, Any] | None:
        """Return an entity's state object (state and attributes), or None while it does not exist."""
        states = await self.rest("GET", "/api/states")
        return next((state for state in states if state["entity_id"] == entity_id), None)
