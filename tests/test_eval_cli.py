"""scripts/eval as a user runs it: the wrapper, a separate process, the loopback server scripted per clip."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
import subprocess
import sys

from .engine.eval_clips import EXPECTED_COUNTS, ScriptedModel, write_clip_set
from .model_server import FakeModelServer

REPO = Path(__file__).resolve().parent.parent
EVAL = REPO / "scripts" / "eval"


async def test_scripts_eval_runs_a_clip_set(model_server: FakeModelServer, tmp_path: Path) -> None:
    model_server.responder = ScriptedModel()
    clip_set = write_clip_set(tmp_path / "set")
    report = tmp_path / "out" / "report.json"
    process = await asyncio.create_subprocess_exec(
        str(EVAL),
        "run",
        str(clip_set),
        "--url",
        model_server.url,
        "--setting",
        "mode=combined",
        "--setting",
        "mode=per_condition,thinking=on",
        "--json",
        str(report),
        env={**os.environ, "MILOCO_PYTHON": sys.executable},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().startswith("# Miloco evaluation\n")
    progress = stderr.decode().splitlines()
    assert len(progress) == 16
    assert progress[-1].startswith("[16/16] per_condition · 6 fr · medium · think | c7-video: ")
    for entry in json.loads(report.read_text(encoding="utf-8"))["settings"]:
        counts = {
            key: (row["tp"], row["fp"], row["fn"], row["tn"]) for key, row in entry["per_class"].items()
        }
        assert counts == EXPECTED_COUNTS


def test_the_toolkit_imports_without_home_assistant() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import engine.evaluation.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('homeassistant', 'custom_components')))"
    )
    result = subprocess.run(
        [sys.executable, "-P", "-c", code, str(REPO / "custom_components" / "miloco")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "[]"
