"""HAProxy from Debian in front of several OpenAI-compatible servers on loopback, as docs/scaling.md sets it up."""

from __future__ import annotations

from collections.abc import Sequence
import csv
import io
from pathlib import Path
import shutil
import subprocess
import time
import urllib.error
import urllib.request

from testkit.ports import free_port

# Debian installs it in /usr/sbin, which a non-root PATH may lack; scripts/test installs the package.
_HAPROXY_PATHS = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
REQUEST_BUFFER_BYTES = 2 * 1024 * 1024


def haproxy_binary() -> str:
    """Return the path of the haproxy program, or raise with how to get it."""
    found = shutil.which("haproxy") or next((path for path in _HAPROXY_PATHS if Path(path).is_file()), None)
    if found is None:
        raise RuntimeError(
            "haproxy is not installed: run the tests with scripts/test, which installs Debian's haproxy"
        )
    return found


def haproxy_config(
    port: int,
    stats_port: int,
    servers: Sequence[tuple[str, int]],
    *,
    slots_per_server: int = 1,
    health_path: str = "/v1/models",
    check_interval_ms: int = 500,
    queue_timeout_s: float = 30.0,
) -> str:
    """Return a configuration: least connections, `slots_per_server` at once per server, the rest queued."""
    lines = [
        "global",
        "    maxconn 256",
        # Room for a whole request (six frames as base64, well under 2 MiB): HAProxy retries only requests
        # it still holds, so a request whose server died before answering can go to the next server.
        f"    tune.bufsize {REQUEST_BUFFER_BYTES}",
        "",
        "defaults",
        "    mode http",
        # Refused or reset connections are retried, each time on another server (redispatch 1).
        "    retries 3",
        "    option redispatch 1",
        # A server that died before answering: retry elsewhere (requests the buffer holds whole). Never on
        # a timeout: the slow server may still be working, and a second server would then do it twice.
        "    retry-on conn-failure empty-response 503",
        "    option http-buffer-request",
        "    timeout connect 1s",
        "    timeout client 120s",
        "    timeout server 120s",
        f"    timeout queue {queue_timeout_s:g}s",
        "",
        "frontend models",
        f"    bind 127.0.0.1:{port}",
        "    default_backend model_servers",
        "",
        "backend model_servers",
        "    balance leastconn",
        f"    option httpchk GET {health_path}",
        "    http-check expect status 200",
        # Active checks bring a server back; a refused or reset connection marks it down at once (passive),
        # so that least-connections stops preferring the idle dead server before the next active check.
        f"    default-server check inter {check_interval_ms}ms fall 2 rise 2 maxconn {slots_per_server} "
        "observe layer4 error-limit 1 on-error mark-down",
    ]
    lines += [
        f"    server gpu{index} {host}:{server_port}" for index, (host, server_port) in enumerate(servers, 1)
    ]
    lines += [
        "",
        "listen stats",
        f"    bind 127.0.0.1:{stats_port}",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 5s",
        "",
    ]
    return "\n".join(lines)


class HAProxyRouter:
    """Runs haproxy in the foreground with a generated configuration, in front of the given servers."""

    def __init__(
        self,
        directory: Path,
        servers: Sequence[tuple[str, int]],
        *,
        slots_per_server: int = 1,
        health_path: str = "/v1/models",
        check_interval_ms: int = 500,
    ) -> None:
        """Write the configuration into `directory` for free loopback ports; start() runs it."""
        self.binary = haproxy_binary()
        self.port = free_port()
        self.stats_port = free_port()
        self.config_path = directory / "haproxy.cfg"
        self.log_path = directory / "haproxy.log"
        self.config_path.write_text(
            haproxy_config(
                self.port,
                self.stats_port,
                servers,
                slots_per_server=slots_per_server,
                health_path=health_path,
                check_interval_ms=check_interval_ms,
            ),
            encoding="utf-8",
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the router's root URL (without /v1)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Return whether the haproxy process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 15.0) -> None:
        """Check the configuration, start haproxy and wait until its stats page answers."""
        subprocess.run(
            [self.binary, "-c", "-q", "-f", str(self.config_path)], check=True, capture_output=True
        )
        with self.log_path.open("ab") as log:
            # -db: stay in the foreground, so that this object owns the process and stop() ends it.
            self._process = subprocess.Popen(
                [self.binary, "-db", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self._process.returncode}: {self.log_tail()}")
            try:
                self.stats()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
            else:
                return
        self.stop()
        raise RuntimeError(f"haproxy did not start within {timeout_s:g} s: {self.log_tail()}")

    def stop(self) -> None:
        """Stop haproxy (SIGTERM: a hard stop) and reap it; does nothing if it is not running."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def stats(self) -> dict[str, dict[str, str]]:
        """Return the stats page's rows for the backend's servers, by server name (gpu1, gpu2, …)."""
        url = f"http://127.0.0.1:{self.stats_port}/stats;csv"
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode("utf-8")
        rows = csv.DictReader(io.StringIO(text.removeprefix("# ")))
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == "model_servers" and row["svname"].startswith("gpu")
        }

    def log_tail(self, chars: int = 2000) -> str:
        """Return the end of haproxy's output, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
