"""Run a real uvicorn server on a free loopback port, in a thread of the test process.

End-to-end tests talk to it over real TCP (the official ``openai`` SDK, ``httpx``), so
multipart parsing, chunked bodies, SSE framing and disconnects behave as in production, while
the test can still look at the app's internals (``app.state.ctx``: the scheduler's recorded
batch order, queue depth).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from gigaam_api.config import Settings, load_settings
from gigaam_api.scheduler import Scheduler
from tests.helpers import wait_until

STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields the base URL (``http://127.0.0.1:PORT``)."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    wait_until(
        lambda: server.started or not thread.is_alive(),
        "uvicorn to start",
        timeout=STARTUP_TIMEOUT_S,
    )
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def server_process(
    port: int, env: dict[str, str], *, cwd: Path, log_path: Path, append: bool = False
) -> subprocess.Popen[bytes]:
    """``gigaam-api`` as its own uvicorn process on 127.0.0.1:``port`` (settings from ``env``).

    For the tests that kill a server for real (SIGKILL, SIGSTOP) or run several at once. The
    output goes to ``log_path`` (replaced, or appended to with ``append``); ``cwd`` keeps a
    stray ``.env`` of the repository out of the settings.
    """
    command = [sys.executable, "-m", "uvicorn", "--factory"]
    command += ["gigaam_api.server:create_app_from_env", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log"]
    with log_path.open("ab" if append else "wb") as log_file:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid``, from a /proc scan (no psutil needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ")"
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def busy_decoders() -> list[int]:
    """Decoder workers of this test process (where the app runs) serving a request now.

    Idle workers wait in the pool for the next request; a busy one is decoding an upload
    and must not outlive its request.
    """
    from gigaam_api import audio

    idle = set(audio.pool.idle_pids())
    workers = []
    for pid in child_pids(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"gigaam_api.audio.decoder_worker" in cmdline and pid not in idle:
            workers.append(pid)
    return workers


@contextmanager
def served_jobs_server(golden_dir: Path, workdir: Path, api_key: str) -> Iterator[str]:
    """A real server on the golden checkpoint with ``API_KEY`` and durable jobs under
    ``workdir``, its model loaded; yields the base URL (what the jobs CLI tests talk to)."""
    from gigaam_api.server import create_app

    settings = real_model_settings(
        golden_dir, workdir / "models", api_key=api_key, jobs_dir=workdir / "jobs"
    )
    app = create_app(settings)
    with serve(app) as base:
        assert app.state.ctx.service.wait_loaded(120)
        yield base


def real_model_settings(golden_dir: Path, models_dir: Path, **overrides: Any) -> Settings:
    """Settings for a server on the tiny v3_ctc golden checkpoint (random weights: its text is
    nonsense but deterministic, which is all these tests need)."""
    values: dict[str, Any] = {
        "_env_file": None,
        "checkpoint_path": golden_dir / "v3_ctc" / "v3_ctc.ckpt",
        "models_dir": models_dir,
        "num_threads": 1,
        **overrides,
    }
    return load_settings(**values)


def scheduler(app: FastAPI) -> Scheduler[Any]:
    """The scheduler of ``app``'s loaded service (what tests read served records from)."""
    sched: Scheduler[Any] | None = app.state.ctx.service.scheduler
    assert sched is not None
    return sched


def tiled_wav(source: Path, target: Path, seconds: float) -> Path:
    """A ``seconds``-long 16 kHz WAV made by repeating ``source``.

    Two identical channels, so the server decodes it in a decoder worker (a 16 kHz mono PCM WAV
    is read directly) and the tests about the worker's lifetime have a process to watch.
    """
    import wave

    from gigaam_api import audio

    mono = audio.load_audio(source)
    pcm = np.repeat(mono, 2).astype("<i2").tobytes()  # L = R
    total = int(seconds * 16000) * 4
    with wave.open(str(target), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(16000)
        written = 0
        while written < total:
            piece = pcm[: total - written]
            out.writeframes(piece)
            written += len(piece)
    return target


BOUNDARY = "gigaam-test-boundary"
MULTIPART_HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def form_part(
    name: str, payload: bytes, filename: str | None = None, ctype: str | None = None
) -> bytes:
    """One hand-built multipart part (so tests control order and headers exactly)."""
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if ctype is not None:
        head += f"Content-Type: {ctype}\r\n"
    return head.encode() + b"\r\n" + payload + b"\r\n"


def form_body(*parts: bytes) -> bytes:
    """Parts joined and closed with the final boundary; send with :data:`MULTIPART_HEADERS`."""
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def multipart_body(path: Path, **fields: str) -> bytes:
    """A transcription form: ``fields`` as text parts, then the file at ``path``."""
    parts = [form_part(name, value.encode()) for name, value in fields.items()]
    return form_body(*parts, form_part("file", path.read_bytes(), path.name))


def raw_request(port: int, body: bytes, request_id: str, headers: dict[str, str]) -> socket.socket:
    """Send a whole transcription request on a bare socket and return it unread.

    The test then decides when the client goes away (``sock.close()``), which an HTTP client
    library does not let it do mid-request.
    """
    sock = socket.create_connection(("127.0.0.1", port))
    head = f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: test\r\nx-request-id: {request_id}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    sock.sendall(head.encode() + body)
    return sock
