"""A development Home Assistant in a subprocess: for the browser and end-to-end tests, and the benchmark.

It runs `python -m homeassistant` from the running venv (so it is the HA line under test, with that
line's own frontend package) on a free loopback port, with a generated configuration that lists what the
walkthrough needs instead of `default_config:` (which pulls in go2rtc, whose binary cannot be fetched here),
and our integration linked into its `custom_components`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]

# The configuration of the development instance. `demo:` gives demo cameras and lights (its YAML key makes
# it create its own config entry); `assist_pipeline:` (with `conversation:`) gives Assist's dialog and the
# pipeline whose agent it asks; no recorder, history or logbook: they are not needed and slow the start.
CONFIGURATION = """\
homeassistant:
  name: Home
  latitude: 52.3731
  longitude: 4.8922
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL

frontend:
config:
onboarding:
{http}
demo:
camera:
light:
conversation:
assist_pipeline:

logger:
  default: warning
  logs:
    custom_components.miloco: debug
    homeassistant.setup: info
"""

USERNAME = "miloco"
PASSWORD = "miloco-browser-test"  # noqa: S105 (a throwaway account of a throwaway instance on loopback)


@dataclass
class DevHomeAssistant:
    """One development Home Assistant process and what the test needs to talk to it."""

    config_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        """Place the log next to the configuration."""
        self.log_path = self.config_dir / "hass.log"

    @property
    def url(self) -> str:
        """Return the root URL of the web UI."""
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        """Write configuration.yaml and link our integration into custom_components."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        http_yaml = ""
        if not self._seed_http_storage():
            http_yaml = f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\n"
        (self.config_dir / "configuration.yaml").write_text(self.configuration(http_yaml))
        custom = self.config_dir / "custom_components"
        custom.mkdir(exist_ok=True)
        (custom / "miloco").symlink_to(REPO / "custom_components" / "miloco", target_is_directory=True)
        self.seed_onboarding()

    def configuration(self, http_yaml: str) -> str:
        """Return the text of configuration.yaml, given its `http:` part (empty where HA stores it)."""
        return CONFIGURATION.format(http=http_yaml)

    def start(self) -> None:
        """Start Home Assistant in its own process group (so that stopping it stops all it started)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("wb") as log:
            # --skip-pip: every requirement is installed with the test venv; nothing may be downloaded.
            # The config dir as working directory: `python -m` puts the working directory first on sys.path,
            # and the repository's own `custom_components` package there would hide the config's one.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "homeassistant", "-c", str(self.config_dir), "--skip-pip"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.config_dir,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 60) -> str:
        """Return the end of Home Assistant's log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self) -> str:
        """Return Home Assistant's whole log."""
        return self.log_path.read_text(errors="replace")

    async def wait_until_ready(self, session: aiohttp.ClientSession, within: float = 150.0) -> None:
        """Wait until the onboarding API and the frontend answer."""
        deadline = time.monotonic() + within
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"Home Assistant exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                async with session.get(f"{self.url}/api/onboarding") as response:
                    if response.status == 200:
                        async with session.get(f"{self.url}/") as index:
                            if index.status == 200:
                                return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Home Assistant did not answer within {within:.0f} s:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.5)

    def _seed_http_storage(self) -> bool:
        """Store the HTTP settings where HA >= 2026.x keeps them; return False on older HA (YAML then).

        Newer HA migrates `http:` YAML into storage as a *pending* configuration, shows a "Confirm new HTTP
        server configuration" dialog over every page and reverts it after five minutes. Storing it as the
        confirmed (stable) configuration, through HA's own schema, is what a confirmed setup looks like.
        """
        try:
            from homeassistant.components.http.config import (
                HTTP_STORAGE_SCHEMA,
                STORAGE_MINOR_VERSION,
                STORAGE_VERSION,
            )
        except ImportError:
            return False
        stable = dict(HTTP_STORAGE_SCHEMA({"server_host": ["127.0.0.1"], "server_port": self.port}))
        stable |= {"created_at": "2026-01-01T00:00:00+00:00", "error": None, "error_message": None}
        self._write_storage(
            "http",
            {"stable": stable, "pending": None, "yaml_migration_done": True},
            version=STORAGE_VERSION,
            minor_version=STORAGE_MINOR_VERSION,
        )
        return True

    def _write_storage(self, key: str, data: Any, *, version: int, minor_version: int = 1) -> None:
        """Write one of HA's .storage files before the first start."""
        storage = self.config_dir / ".storage"
        storage.mkdir(parents=True, exist_ok=True)
        (storage / key).write_text(
            json.dumps({"version": version, "minor_version": minor_version, "key": key, "data": data})
        )

    def seed_onboarding(self) -> None:
        """Mark every onboarding step but the owner account as done, before the first start.

        The location, analytics and integration steps would only set up integrations the walkthrough does
        not need (met, radio_browser, google_translate, shopping_list, whose requirements are not installed:
        they would fail and clutter the integrations page). The owner account is created in `onboard`.
        """
        self._write_storage("onboarding", {"done": ["core_config", "analytics", "integration"]}, version=4)

    async def onboard(self, session: aiohttp.ClientSession) -> str:
        """Create the owner account through the onboarding API, which finishes onboarding.

        A precondition, not what the test checks: the walkthrough starts at the login page. Returns the
        authorization code that logs the owner in over the API.
        """
        async with session.post(
            f"{self.url}/api/onboarding/users",
            json={
                "client_id": f"{self.url}/",
                "name": "Miloco Tester",
                "username": USERNAME,
                "password": PASSWORD,
                "language": "en",
            },
        ) as response:
            assert response.status == 200, await response.text()
            code = str((await response.json())["auth_code"])
        async with session.get(f"{self.url}/api/onboarding") as response:
            steps: list[dict[str, Any]] = await response.json()
        assert all(step["done"] for step in steps), steps
        return code

    def stop(self) -> None:
        """Stop Home Assistant: ask politely, then kill its process group."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass


# Miloco in a record: its logger or a frame of its code, or the word itself (an entry's or a service's name), but
# not a directory named after the project (the test venvs live under ~/.cache/miloco/ or /opt/miloco/, so every
# traceback of any integration runs through such a path).
MILOCO_MENTION = re.compile(r"custom_components[./]miloco\b|(?<![\w/.+-])miloco(?![\w/+-])", re.IGNORECASE)


def miloco_errors(log: str) -> list[str]:
    """Return the ERROR records of Home Assistant's log that mention Miloco (tracebacks included)."""
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", log)
    return [
        record
        for record in records
        if re.match(r"\S+ \S+ (ERROR|CRITICAL) ", record) and MILOCO_MENTION.search(record)
    ]
