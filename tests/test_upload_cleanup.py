"""Nothing left behind: uploads of a server killed hard are removed when a server starts.

Real server processes (what a deployment runs) on loopback share one ``UPLOAD_DIR``, as
replicas on one host or parallel test runs do. A slow client keeps an upload in flight; the
server is SIGKILLed (as by the OOM killer) and its file stays behind; the next server to start
removes it — while the upload of another live server in the same folder is left alone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.api_server import BOUNDARY, free_port, server_process
from tests.conftest import REPO_ROOT
from tests.helpers import wait_until


@contextmanager
def _server(
    golden_dir: Path, uploads: Path, log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "CHECKPOINT_PATH": str(golden_dir / "v3_ctc" / "v3_ctc.ckpt"),
        "MODELS_DIR": str(uploads.parent / "models"),
        "UPLOAD_DIR": str(uploads),
        "NUM_THREADS": "1",
    }
    proc = server_process(port, env, cwd=uploads.parent, log_path=log, append=True)
    try:

        def healthy() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, "the server to become healthy", timeout=120)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)


def _slow_upload(port: int) -> socket.socket:
    """Start an upload that never finishes: headers and the first 2 MiB of a 10 MB file
    (more than the server buffers before its first write to disk)."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="slow.wav"\r\n\r\n'
    ).encode()
    total = len(head) + 10_000_000
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {total}\r\n\r\n".encode()
        + head
        + b"\0" * (2 << 20)
    )
    return sock


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_uploads_of_a_killed_server_are_removed_at_the_next_start(
    golden_dir: Path, tmp_path: Path
) -> None:
    uploads = tmp_path / "uploads"
    log = tmp_path / "servers.log"
    with _server(golden_dir, uploads, log) as (victim, port):
        sock = _slow_upload(port)
        left = wait_until(lambda: _files(uploads), "the upload to reach the disk")
        with _server(golden_dir, uploads, log) as (_, other_port):
            # a live server's upload in the same folder survives another server's start
            assert _files(uploads) == left
            other = _slow_upload(other_port)
            both = wait_until(lambda: len(_files(uploads)) == 2 and _files(uploads), "2 uploads")
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=30)
            sock.close()
            assert left[0].exists(), "a hard kill leaves the upload behind"
            with _server(golden_dir, uploads, log):
                assert not left[0].exists() and not left[0].parent.exists()
                survivor = [p for p in both if p != left[0]]
                assert _files(uploads) == survivor  # the live server's upload is untouched
            other.close()
            wait_until(lambda: not _files(uploads), "the live server to remove its upload")
    # clean stops removed their own folders and locks too
    assert list(uploads.iterdir()) == []
    assert "left behind by a server that stopped abruptly" in log.read_text()
