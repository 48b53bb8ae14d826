"""Helpers for the local servers that the tests and the benchmark start and stop."""

from __future__ import annotations

import signal
import socket
import subprocess


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_gracefully(process: subprocess.Popen | None, timeout: float = 30) -> None:
    """SIGTERM, time to finish (gunicorn's graceful stop), then SIGKILL if it is still there."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
