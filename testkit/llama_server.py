"""llama.cpp's OpenAI-compatible servers, serving the tiny model on loopback: the Python one and the C++ one.

llama-cpp-python's `python -m llama_cpp.server` runs wherever the tests do. llama.cpp's own C++
`llama-server` (Debian's llama.cpp-tools) is the server users run; scripts/test installs it in the newest
suite's Debian-testing root filesystem. Debian 12 has no llama.cpp-tools package, so a Debian 12 host (where
the oldest suite runs) has only the Python server.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import contextlib
import os
from pathlib import Path
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

# The tiny model pair lives with the tests that use it most.
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "models"
MODEL = FIXTURES / "tiny-qwen25vl.gguf"
MMPROJ = FIXTURES / "tiny-qwen25vl-mmproj.gguf"
ALIAS = "tiny-qwen25vl"
# scripts/test installs the Python server in a virtual environment of its own and names its Python here.
PYTHON_VARIABLE = "MILOCO_LLAMA_SERVER_PYTHON"
# The C++ server's binary, as Debian's llama.cpp-tools installs it (on PATH).
CPP_BINARY = "llama-server"
KINDS = ("python", "cpp")
# One thread: ggml's threads spin-wait for each other, and on a shared two-core machine (CI, the test suites
# running side by side) two of them stall each other: a tiny request then took 1 s instead of 0.3 s.
THREADS = "1"


def python_server_command(
    python: str, port: int, *, n_ctx: int = 4096, threads: str = THREADS, extra: tuple[str, ...] = ()
) -> list[str]:
    """Return the command line of llama-cpp-python's server for the tiny pair on a loopback port."""
    return [
        python,
        *("-m", "llama_cpp.server"),
        *("--model", str(MODEL), "--clip_model_path", str(MMPROJ)),
        *("--chat_format", "qwen2.5-vl", "--model_alias", ALIAS),
        *("--n_ctx", str(n_ctx), "--n_threads", threads),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--verbose", "False"),
        *extra,
    ]


def cpp_server_command(
    binary: str, port: int, *, ctx_size: int = 4096, extra: tuple[str, ...] = ()
) -> list[str]:
    """Return the command line of llama.cpp's C++ server for the tiny pair: one slot, metrics on."""
    return [
        binary,
        *("--model", str(MODEL), "--mmproj", str(MMPROJ), "--alias", ALIAS),
        *("--ctx-size", str(ctx_size), "--parallel", "1", "--threads", THREADS),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--metrics", "--no-webui"),
        *extra,
    ]


def _os_release() -> dict[str, str]:
    """Return /etc/os-release as a dict (empty when the file is missing)."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return {}
    return {key: value.strip('"') for key, value in re.findall(r"^(\w+)=(.*)$", text, re.MULTILINE)}


def cpp_server_skip_reason() -> str | None:
    """Return why the C++ llama-server cannot exist on this host, or None.

    Only a Debian 12 host without the binary is a reason: anywhere else a missing binary is a broken set-up,
    which CppLlamaServer reports as an error, not a skip.
    """
    if shutil.which(CPP_BINARY):
        return None
    release = _os_release()
    if release.get("ID") == "debian" and release.get("VERSION_ID") == "12":
        return (
            "Debian 12 has no llama.cpp-tools package, so llama.cpp's C++ llama-server cannot be installed "
            "on this host; the newest suite runs it in its Debian-testing root filesystem"
        )
    return None


class LlamaServer(ABC):
    """Start, stop and restart one of llama.cpp's servers with the tiny model pair on a loopback port."""

    kind: str
    # The path that answers 200 once the model is loaded.
    ready_path = "/v1/models"

    def __init__(self, port: int, log_path: Path) -> None:
        """Prepare a server for the port; nothing runs until start()."""
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: the server writes per-request timings, and a full pipe would stall it.
        self.log_path = log_path

    @property
    def url(self) -> str:
        """Return the server's root URL."""
        return f"http://127.0.0.1:{self.port}"

    @abstractmethod
    def command(self) -> list[str]:
        """Return the command line that serves the tiny pair on self.port."""

    def start(self, timeout_s: float = 90.0) -> None:
        """Start the server and wait until it lists its model."""
        with self.log_path.open("ab") as log:
            # A session of its own: stop() ends the server and any wrapper it runs under (a chroot) at once.
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} server exited with {self._process.returncode}: {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}{self.ready_path}", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the {self.kind} server did not answer within {timeout_s:g} s: {self.log_tail()}")

    def stop(self) -> None:
        """Kill the server's process group (as a crash or an unplugged machine would) and reap it."""
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=30)
        self._process = None

    def log_tail(self, chars: int = 2000) -> str:
        """Return the end of the server's output, for failure messages."""
        return self.log_path.read_text(errors="replace")[-chars:]


class PythonLlamaServer(LlamaServer):
    """llama-cpp-python's `python -m llama_cpp.server`, from the venv MILOCO_LLAMA_SERVER_PYTHON names."""

    kind = "python"

    def __init__(self, port: int, log_path: Path) -> None:
        """Find the server's interpreter; nothing runs until start()."""
        super().__init__(port, log_path)
        python = os.environ.get(PYTHON_VARIABLE)
        if not python:
            raise RuntimeError(
                f"{PYTHON_VARIABLE} is not set: run the tests with scripts/test, which installs "
                "llama-cpp-python's server in its own virtual environment"
            )
        self.python = python

    def command(self) -> list[str]:
        """Return the Python server's command line."""
        return python_server_command(self.python, self.port)


class CppLlamaServer(LlamaServer):
    """llama.cpp's C++ `llama-server`, one slot, with its Prometheus metrics on."""

    kind = "cpp"
    # /health answers 503 while the model loads, 200 once it can serve.
    ready_path = "/health"

    def __init__(self, port: int, log_path: Path) -> None:
        """Find the binary; nothing runs until start()."""
        super().__init__(port, log_path)
        binary = shutil.which(CPP_BINARY)
        if binary is None:
            raise RuntimeError(
                f"{CPP_BINARY} is not on PATH: scripts/test installs Debian's llama.cpp-tools in the newest "
                "suite's root filesystem (scripts/lib/rootfs.sh)"
            )
        self.binary = binary

    def command(self) -> list[str]:
        """Return the C++ server's command line."""
        return cpp_server_command(self.binary, self.port)

    def metrics(self) -> dict[str, float]:
        """Return the server's Prometheus counters and gauges (`llamacpp:` names, prefix dropped)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:  # noqa: S310
            text = response.read().decode()
        return {
            name: float(value) for name, value in re.findall(r"^llamacpp:(\w+)\s+(\S+)$", text, re.MULTILINE)
        }


def make_server(kind: str, port: int, log_path: Path) -> LlamaServer:
    """Return a server of this kind ("python" or "cpp")."""
    if kind == "python":
        return PythonLlamaServer(port, log_path)
    if kind == "cpp":
        return CppLlamaServer(port, log_path)
    raise ValueError(f"unknown llama.cpp server kind {kind!r}")
