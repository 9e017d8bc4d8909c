"""The developer scripts: scripts/test's summary parsing and the requirements they rely on."""

from __future__ import annotations

from pathlib import Path
import re
import subprocess

import pytest

REPO = Path(__file__).resolve().parent.parent


def _bash(script: str, *args: str) -> str:
    """Run a bash snippet with scripts/lib/common.sh and report.sh sourced; return its stdout."""
    prelude = (
        f'set -euo pipefail; source "{REPO}/scripts/lib/common.sh"; source "{REPO}/scripts/lib/report.sh"; '
    )
    result = subprocess.run(
        ["bash", "-c", prelude + script, "bash", *args], capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.fixture
def logs(tmp_path: Path) -> tuple[Path, Path]:
    old = tmp_path / "oldest.log"
    old.write_text(
        "miloco-suite: oldest HA 2025.4.4, Python 3.13.0\n"
        "tests/test_x.py ..F.s\n"
        "======= 1 failed, 3 passed, 1 skipped, 2 warnings in 1.25s =======\n"
    )
    new = tmp_path / "newest.log"
    new.write_text("miloco-suite: newest HA 2026.10.4, Python 3.14.8\n4 passed, 1 error in 0.50s\n")
    return old, new


def test_suite_summary_line(logs: tuple[Path, Path]) -> None:
    old, _ = logs
    line = _bash('suite_summary oldest "$1" 1', str(old)).strip()
    assert line == (
        "oldest (HA 2025.4.4, Python 3.13.0): 1 failed, 3 passed, 1 skipped, 2 warnings in 1.25s (exit 1)"
    )


def test_suite_summary_without_pytest_output(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("")
    line = _bash('suite_summary newest "$1" 2', str(empty)).strip()
    assert line.startswith("newest (set-up failed): no pytest summary")


def test_total_counts_in_the_plain_closing_form(logs: tuple[Path, Path]) -> None:
    old, new = logs
    line = _bash('total_counts "$1" "$2"', str(old), str(new)).strip()
    # "one word with a colon, then N passed, N failed": the form CI reads as a closing line.
    assert line == "total: 7 passed, 2 failed, 1 skipped"


def test_llama_version_is_named_consistently() -> None:
    base = re.search(r"^llama-cpp-python==(\S+)$", (REPO / "requirements/llama.txt").read_text(), re.M)
    server = re.search(
        r"^llama-cpp-python\[server\]==(\S+)$", (REPO / "requirements/llama-server.txt").read_text(), re.M
    )
    assert base and server
    assert base.group(1) == server.group(1)


@pytest.mark.parametrize(
    "name", ["test-ha-oldest.txt", "test-ha-newest.txt", "llama-server.txt", "develop.txt"]
)
def test_requirements_are_pinned_exactly(name: str) -> None:
    for raw in (REPO / "requirements" / name).read_text().splitlines():
        requirement = raw.split("#", 1)[0].strip()
        if requirement:
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.]*", requirement), raw
