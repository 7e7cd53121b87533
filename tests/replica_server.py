"""A ``gigaam-api`` replica as its own server process, sharing durable jobs with others.

Each replica is ``uvicorn`` in its own process (so a test can SIGKILL or SIGSTOP it) with the
fixture checkpoint, the job database it is given, a short ``JOB_LEASE_SECONDS`` and its own
``REPLICA_ID``. Used by ``tests/test_jobs_replicas.py`` and ``benchmarks/replicas.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.api_server import free_port, server_process
from tests.conftest import REPO_ROOT
from tests.jobs_helpers import TIMEOUT, wait_for

#: Short, so a dead or paused replica's job is taken over within seconds.
LEASE_SECONDS = 2


class Replica:
    """One ``gigaam-api`` server process sharing the job database and JOBS_DIR."""

    def __init__(
        self, name: str, golden_dir: Path, workdir: Path, jobs_dir: Path, database_url: str
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "CHECKPOINT_PATH": str(golden_dir / "v3_ctc" / "v3_ctc.ckpt"),
            "MODELS_DIR": str(workdir / "models"),
            "JOBS_DIR": str(jobs_dir),
            "JOBS_DATABASE_URL": database_url,
            "JOB_LEASE_SECONDS": str(LEASE_SECONDS),
            "REPLICA_ID": name,
            "NUM_THREADS": "1",
            "LOG_LEVEL": "INFO",
        }
        self.proc = server_process(self.port, env, cwd=workdir, log_path=self.log_path)
        self.http = httpx.Client(base_url=self.url, timeout=TIMEOUT)
        wait_for(self.healthy, what=f"{name} to become healthy")

    def healthy(self) -> bool:
        assert self.proc.poll() is None, self.log()
        try:
            return self.http.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric(self, name: str) -> float:
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics of {self.name}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused one must be able to exit
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
