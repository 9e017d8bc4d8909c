"""scripts/develop of a fresh clone: the newest Home Assistant, with the tiny embedded default and AI Task.

The test clones the repository's committed state into a temporary folder and runs its `scripts/develop` as a
newcomer would (one command, on a free port), then talks to that Home Assistant over its REST and websocket
APIs: the version is the newest line's, AI Task is loaded, and adding Miloco with the pre-filled embedded
model gives a working AI Task entity. The caches (root filesystem, llama-cpp-python wheel, the development
venv) are the machine's, so a warm run takes well under a minute.

It runs in the oldest suite only: that suite runs on the host, where a newcomer runs scripts/develop (which
enters the Debian-testing root filesystem itself when the host has no Python >= 3.14.2; from inside that root
filesystem, where the newest suite may run, it could not enter it again). The newest suite instead checks that
requirements/develop.txt pins the Home Assistant that suite runs.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
import os
from pathlib import Path
import re
import subprocess
import sys
from typing import Any

from homeassistant.const import __version__ as HA_VERSION
import pytest

from custom_components.miloco.const import TEST_MODEL_TITLE_SUFFIX
from testkit.ports import free_port

from .real_hass import RealHomeAssistant

REPO = Path(__file__).resolve().parents[2]
SUITE = os.environ.get("MILOCO_SUITE", "")


def _develop_pin() -> str:
    """Return the Home Assistant version that requirements/develop.txt pins."""
    text = (REPO / "requirements" / "develop.txt").read_text()
    match = re.search(r"^homeassistant==(\S+)$", text, re.M)
    assert match, "requirements/develop.txt pins no homeassistant"
    return match.group(1)


class DevelopScript(RealHomeAssistant):
    """`scripts/develop` of a clone, run as its own process group, with the clone's own config/ folder."""

    def __init__(self, clone: Path, port: int) -> None:
        """Prepare to run the clone's scripts/develop on `port`, logging next to the clone."""
        super().__init__(clone / "config", port, cameras={})
        self.clone = clone
        self.log_path = clone.parent / "develop.log"

    def write_config(self) -> None:
        """Only the precondition: onboarding's location, analytics and integration steps marked done."""
        self.seed_onboarding()

    def prepare(self) -> None:
        """Run `scripts/develop --prepare`: build what is missing (a cold machine: minutes), start nothing."""
        done = subprocess.run(
            [str(self.clone / "scripts" / "develop"), "--prepare"],
            env=self._environment(),
            cwd=self.clone,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        """Run scripts/develop in its own session: stop() signals the whole group, whatever it has become."""
        with self.log_path.open("wb") as log:
            # scripts/develop ends as the hass process itself (through exec), so the group is HA.
            self.process = subprocess.Popen(
                [str(self.clone / "scripts" / "develop")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._environment(),
                cwd=self.clone,
                start_new_session=True,
            )

    def _environment(self) -> dict[str, str]:
        """Return a newcomer's environment (no test venv on PATH) with the port to serve on."""
        suite_bin = str(Path(sys.prefix) / "bin")
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MILOCO_LLAMA_SERVER_PYTHON")
        }
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != suite_bin)
        env["MILOCO_DEVELOP_PORT"] = str(self.port)
        return env


@pytest.fixture
def prepared(tmp_path: Path) -> DevelopScript:
    """Clone the repository's committed state, as a newcomer gets it, and build what its run needs."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    ha = DevelopScript(clone, free_port())
    ha.prepare()
    ha.write_config()
    return ha


@pytest.fixture
async def develop(socket_enabled: None, prepared: DevelopScript) -> AsyncGenerator[DevelopScript]:
    """Start the clone's scripts/develop on its free port, onboard and log in."""
    ha = prepared
    ha.start()
    try:
        await ha.connect()
        yield ha
    finally:
        await ha.disconnect()
        ha.stop()


# scripts/develop is a host command: the oldest suite runs it (the newest may run inside the root filesystem).
ON_THE_HOST = pytest.mark.skipif(
    SUITE == "newest", reason="the oldest suite runs scripts/develop, on the host"
)


async def _add_tiny_embedded_backend(develop: DevelopScript) -> str:
    """Add Miloco as a newcomer does (Embedded, the pre-filled tiny model); return its AI Task entity id."""
    result = await develop.run_flow(
        "/api/config/config_entries/flow", "miloco", {"next_step_id": "embedded"}, {}
    )
    assert result["title"] == f"tiny-qwen25vl{TEST_MODEL_TITLE_SUFFIX}"
    entry_id = result["result"]["entry_id"]
    entries = await develop.ws("config_entries/get", domain="miloco")
    assert [(entry["entry_id"], entry["state"]) for entry in entries] == [(entry_id, "loaded")]
    (ai_task,) = await develop.entity_ids("ai_task.")
    return str(ai_task)


@ON_THE_HOST
async def test_fresh_clone_runs_the_newest_home_assistant_with_ai_task(develop: DevelopScript) -> None:
    config: dict[str, Any] = await develop.rest("GET", "/api/config")
    assert config["version"] == _develop_pin(), develop.log_tail()
    # The newest line: the brand icon needs HA 2026.3 or newer, AI Task 2025.8 or newer.
    assert tuple(int(part) for part in config["version"].split(".")[:2]) >= (2026, 3)
    assert f"Home Assistant {config['version']} on http://localhost:{develop.port}" in develop.log_text()

    ai_task = await _add_tiny_embedded_backend(develop)
    # AI Task is loaded (by the entry's platform) and the entry's entity is available.
    assert "ai_task" in (await develop.rest("GET", "/api/config"))["components"]
    assert await develop.state(ai_task) not in ("unavailable", None)


@ON_THE_HOST
async def test_ai_task_answers_through_the_tiny_embedded_model(develop: DevelopScript) -> None:
    ai_task = await _add_tiny_embedded_backend(develop)
    answer = await develop.rest(
        "POST",
        "/api/services/ai_task/generate_data?return_response",
        {"task_name": "develop check", "entity_id": ai_task, "instructions": "Say hello."},
    )
    # Random weights: the text means nothing, but it is the model's, through the whole pipeline.
    assert isinstance(answer["service_response"]["data"], str)


@pytest.mark.skipif(SUITE != "newest", reason="only the newest suite runs the newest Home Assistant line")
def test_develop_pins_the_newest_suites_home_assistant() -> None:
    assert _develop_pin() == HA_VERSION
