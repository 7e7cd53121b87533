"""Durable jobs against synchronous requests, resume cost, and short-clip latency during a job.

Reported, never asserted. The server runs as its own process (``python -m gigaam_api serve`` on
loopback, in its own process group) so that a restart can be a real ``kill -9`` of the server and
its decoder workers, as a crash or an OOM kill would be. Full-size v3_ctc at int8 (random
weights, written by ``benchmarks/random_checkpoint.py``; they time the same as the real ones),
``NUM_THREADS=2``, ``BATCH_SIZE=4``. The long input is corpus speech tiled to ``--minutes``
(16 kHz mono WAV; the MP3 for the resume part is that WAV encoded at 64 kb/s).

Parts (``--parts``, comma-separated; all by default):

``pairs``
    ``--pairs`` rounds of one synchronous request for the long WAV, then one job for it
    (submit → ``completed``, polled every 0.2 s), interleaved so that the machine's load drifts
    over both alike; the load average is printed with every round.
``clips``
    ``--clips`` 3 s WAVs on an idle server, then the same number posted one every 2 s while a
    job for the long WAV runs (the job is deleted afterwards); median / p90 / max latency.
``resume``
    For each of ``--resume-formats`` (``wav``, ``mp3``): one uninterrupted job, then one job
    whose server is killed (SIGKILL to the process group) at ``--resume-at`` of the file and
    started again: restart → ready, restart → first new chunk committed (``processed_seconds``
    grows past the value the restarted server reports first), restart → completed, and the
    total extra wall time against the uninterrupted job.

    .venv/bin/python benchmarks/jobs.py --minutes 60 --parts pairs --pairs 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GIGAAM_SHARED_DIR", ROOT.parent / "shared"))
CACHE = ROOT / "benchmarks" / ".cache"
SPEECH = SHARED / "corpus" / "longform" / "longform_espeak_ru.wav"
CLIP = SHARED / "corpus" / "pisets" / "test_sound_ru.wav"
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))
from random_checkpoint import cached_checkpoint  # noqa: E402

from gigaam_api.audio import load_audio  # noqa: E402

Job = dict[str, Any]


def long_input(minutes: float) -> Path:
    path = CACHE / f"jobs_{minutes:g}min.wav"
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    unit = load_audio(SPEECH)
    total = int(minutes * 60 * 16000)
    samples = np.resize(unit, total).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())
    return path


def mp3_of(path: Path) -> Path:
    """The long WAV as a 64 kb/s mono MP3: a compressed file, decoded by the PyAV workers."""
    mp3 = path.with_suffix(".mp3")
    if not mp3.is_file():
        command = ["ffmpeg", "-v", "error", "-y", "-i", str(path), "-ac", "1", "-ar", "16000"]
        subprocess.run([*command, "-b:a", "64k", str(mp3)], check=True)
    return mp3


def loadavg() -> str:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return f"{one} {five} {fifteen}"


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live and reaped children.

    Less sensitive than wall time to other work on a shared machine, which is why the pairs
    report it next to the wall time.
    """
    ticks = os.sysconf("SC_CLK_TCK")

    def own(pid: int) -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(value) for value in fields[11:15])  # utime stime cutime cstime

    total = own(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.is_file() else []:
        with suppress(OSError):
            total += own(int(child))
    return total / ticks


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    spawned: float
    ready_s: float


@contextmanager
def server(env: dict[str, str], log: Path) -> Iterator[Server]:
    """A server process on a free loopback port, ready (``/health`` 200) when yielded."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "gigaam_api", "serve", "--host", "127.0.0.1"]
    spawned = time.perf_counter()
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}; see {log}")
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield Server(process, url, spawned, time.perf_counter() - spawned)
    finally:
        kill(process)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server's process group (the server and its decoder workers), like a crash."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def post_sync(http: httpx.Client, path: Path) -> float:
    started = time.perf_counter()
    with path.open("rb") as fh:
        response = http.post("/v1/audio/transcriptions", files={"file": fh})
    response.raise_for_status()
    return time.perf_counter() - started


def submit(http: httpx.Client, path: Path) -> str:
    with path.open("rb") as fh:
        response = http.post("/v1/jobs", files={"file": fh})
    response.raise_for_status()
    return str(response.json()["id"])


def wait(
    http: httpx.Client, job_id: str, until: Callable[[Job], bool] | None = None, poll: float = 0.2
) -> Job:
    while True:
        job: Job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled") or (until and until(job)):
            return job
        time.sleep(poll)


def timed_job(http: httpx.Client, path: Path) -> float:
    started = time.perf_counter()
    job = wait(http, submit(http, path))
    assert job["status"] == "completed", job
    return time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def part_pairs(env: dict[str, str], log: Path, long: Path, pairs: int) -> None:
    with server(env, log) as srv, httpx.Client(base_url=srv.url, timeout=None) as http:
        post_sync(http, CLIP)
        pid = srv.process.pid
        for index in range(pairs):
            before, cpu = loadavg(), cpu_seconds(pid)
            sync_s = post_sync(http, long)
            middle, sync_cpu = loadavg(), cpu_seconds(pid) - cpu
            job_s = timed_job(http, long)
            job_cpu = cpu_seconds(pid) - cpu - sync_cpu
            ratios = f"wall {job_s / sync_s:.3f}, CPU {job_cpu / sync_cpu:.3f}"
            print(
                f"| pair {index + 1} | sync {sync_s:.1f} s, {sync_cpu:.0f} CPU s (load before "
                f"{before}) | job {job_s:.1f} s, {job_cpu:.0f} CPU s (load before {middle}, "
                f"after {loadavg()}) | job/sync: {ratios} |",
                flush=True,
            )


def part_clips(env: dict[str, str], log: Path, long: Path, clips: int) -> None:
    with server(env, log) as srv, httpx.Client(base_url=srv.url, timeout=None) as http:
        post_sync(http, CLIP)
        idle_load = loadavg()
        alone = []
        for _ in range(clips):
            alone.append(post_sync(http, CLIP))
            time.sleep(0.5)
        job_id = submit(http, long)
        wait(http, job_id, lambda j: j["processed_seconds"] > 60)
        busy_load = loadavg()
        during = []
        for _ in range(clips):
            during.append(post_sync(http, CLIP))
            time.sleep(2.0)
        still = http.get(f"/v1/jobs/{job_id}").json()["status"]
        http.delete(f"/v1/jobs/{job_id}").raise_for_status()
        for name, values, at in (
            ("idle server", alone, idle_load),
            ("during a job", during, busy_load),
        ):
            print(
                f"| 3 s clip, {name} | median {statistics.median(values):.2f} s | "
                f"p90 {percentile(values, 0.9):.2f} s | max {max(values):.2f} s | n={len(values)} "
                f"| load at start {at}, at end {loadavg()} |",
                flush=True,
            )
        print(f"(job still {still} after the last clip)", flush=True)


def part_resume(env: dict[str, str], log: Path, path: Path, at: float, whole: bool) -> None:
    whole_s = None
    with server(env, log) as srv, httpx.Client(base_url=srv.url, timeout=None) as http:
        post_sync(http, CLIP)
        if whole:
            load_before = loadavg()
            whole_s = timed_job(http, path)
            print(
                f"| {path.suffix[1:]} uninterrupted job | {whole_s:.1f} s | load before "
                f"{load_before}, after {loadavg()} |",
                flush=True,
            )
        load_before = loadavg()
        started = time.perf_counter()
        job_id = submit(http, path)
        duration = float(wait(http, job_id, lambda j: j["duration"] is not None)["duration"])
        seen = wait(http, job_id, lambda j: j["processed_seconds"] >= at * duration, poll=0.1)
        kill(srv.process)
        killed = time.perf_counter()
    with server(env, log) as srv, httpx.Client(base_url=srv.url, timeout=None) as http:
        ready_s = srv.ready_s
        first = http.get(f"/v1/jobs/{job_id}").json()
        committed = first["processed_seconds"]
        wait(http, job_id, lambda j: j["processed_seconds"] > committed, poll=0.05)
        first_new_s = time.perf_counter() - srv.spawned
        done = wait(http, job_id)
        assert done["status"] == "completed", done
        finished = time.perf_counter()
    total_s = finished - started
    versus = f" vs {whole_s:.1f} s uninterrupted ({total_s - whole_s:+.1f} s)" if whole_s else ""
    print(
        f"| {path.suffix[1:]} killed at {seen['processed_seconds']:.0f} s of {duration:.0f} s "
        f"(committed after restart: {committed:.0f} s) | first part {killed - started:.1f} s | "
        f"restart → ready {ready_s:.1f} s | restart → first new chunk {first_new_s:.1f} s | "
        f"restart → completed {finished - srv.spawned:.1f} s | total {total_s:.1f} s{versus} | "
        f"load before {load_before},"
        f" after {loadavg()} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--parts", default="pairs,clips,resume")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resume-formats", default="wav,mp3")
    parser.add_argument("--resume-at", type=float, default=0.5)
    parser.add_argument(
        "--uninterrupted",
        default="wav,mp3",
        help="formats whose resume run is preceded by an uninterrupted job ('' = none)",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    long = long_input(args.minutes)
    work = Path(tempfile.mkdtemp(prefix="gigaam-bench-jobs-"))
    env = {
        "CHECKPOINT_PATH": str(cached_checkpoint(SHARED, CACHE)),
        "MODELS_DIR": str(CACHE / "models"),
        "QUANTIZE_INT8": "true",
        "NUM_THREADS": str(args.threads),
        "BATCH_SIZE": "4",
        "JOBS_DIR": str(work / "jobs"),
        "JOBS_MIN_FREE_MB": "0",
        "LOG_LEVEL": "WARNING",
        "API_KEY": "",
        "WEB_UI": "false",
    }
    log = work / "server.log"
    print(f"load average at start: {loadavg()} on {os.cpu_count()} CPUs; server log {log}")
    try:
        if "pairs" in parts:
            part_pairs(env, log, long, args.pairs)
        if "clips" in parts:
            part_clips(env, log, long, args.clips)
        if "resume" in parts:
            for kind in args.resume_formats.split(","):
                path = long if kind == "wav" else mp3_of(long)
                whole = kind in args.uninterrupted.split(",")
                part_resume(env, log, path, args.resume_at, whole)
    finally:
        shutil.rmtree(work / "jobs", ignore_errors=True)
    print(f"load average at end: {loadavg()}")


if __name__ == "__main__":
    main()
