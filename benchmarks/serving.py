"""Starting ``gigaam-api serve`` in a child process for the benchmarks that talk to a server.

The latency benchmarks (``realtime.py``, ``wyoming_latency.py``) measure what a client sees,
so they run the real command in its own process, as a user does, and wait for ``/health``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    env: dict[str, str], port: int, *, timeout: float = 900.0, new_session: bool = False
) -> subprocess.Popen[bytes]:
    """``gigaam-api serve`` with ``env`` over this process's environment, once its HTTP port
    answers ``/health`` with 200 (model loaded). ``new_session`` puts it in a process group of
    its own, for a caller that signals the whole group."""
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gigaam-api"), "serve"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=new_session,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        time.sleep(0.5)
    server.kill()
    raise RuntimeError("the server did not become healthy")
