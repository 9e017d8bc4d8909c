"""llama.cpp's own OpenAI-compatible server (llama-cpp-python's), serving the tiny model on loopback."""

from __future__ import annotations

import os
from pathlib import Path
import socket
import subprocess
import time
import urllib.error
import urllib.request

FIXTURES = Path(__file__).parent / "fixtures" / "models"
MODEL = FIXTURES / "tiny-qwen25vl.gguf"
MMPROJ = FIXTURES / "tiny-qwen25vl-mmproj.gguf"
ALIAS = "tiny-qwen25vl"
# scripts/test installs the server in a virtual environment of its own and names its Python here.
PYTHON_VARIABLE = "MILOCO_LLAMA_SERVER_PYTHON"


def free_port() -> int:
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """Start, stop and restart `python -m llama_cpp.server` with the tiny model pair."""

    def __init__(self, port: int, log_path: Path) -> None:
        """Prepare a server for the port; nothing runs until start()."""
        python = os.environ.get(PYTHON_VARIABLE)
        if not python:
            raise RuntimeError(
                f"{PYTHON_VARIABLE} is not set: run the tests with scripts/test, which installs "
                "llama-cpp-python's server in its own virtual environment"
            )
        self.python = python
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: the server writes per-request timings, and a full pipe would stall it.
        self._log_path = log_path

    @property
    def url(self) -> str:
        """Return the server's root URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> None:
        """Start the server and wait until it lists its model."""
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "llama_cpp.server",
                    "--model",
                    str(MODEL),
                    "--clip_model_path",
                    str(MMPROJ),
                    "--chat_format",
                    "qwen2.5-vl",
                    "--model_alias",
                    ALIAS,
                    "--n_ctx",
                    "4096",
                    "--n_threads",
                    "2",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--verbose",
                    "False",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"llama_cpp.server exited with {self._process.returncode}: {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/v1/models", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {timeout_s:g} s")

    def stop(self) -> None:
        """Kill the server (as a crash or an unplugged machine would) and reap it."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait(timeout=30)
        self._process = None

    def log_tail(self, chars: int = 2000) -> str:
        """Return the end of the server's output, for failure messages."""
        return self._log_path.read_text(errors="replace")[-chars:]
