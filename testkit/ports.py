"""A free loopback port for the servers the tests and benchmarks start (model servers, ffmpeg, HAProxy, Home Assistant)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """Return a loopback port that nothing listens on at the moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
