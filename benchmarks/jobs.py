"""Durable jobs against synchronous requests, resume cost, and short-clip latency during a job.

Reported, never asserted. One server process (in-process uvicorn on loopback) with the
full-size v3_ctc at int8 (random weights, written by ``benchmarks/random_checkpoint.py``; they
time the same as the real ones), ``NUM_THREADS=2``, ``BATCH_SIZE=4``. The long input is corpus
speech tiled to ``--minutes`` (16 kHz mono WAV, read without ffmpeg by both paths).

1. **Job vs sync**: wall time of one synchronous request for the long file, then of a job for
   the same file (submit → ``completed``, polled every 0.2 s), with the scheduler's default time
   budget for background slices and with the budget lifted (whole batches): the difference is
   the throughput the slicing costs the long work.
2. **Short clip during a job**: a 3 s WAV posted every 2 s while a job runs; latency per clip.
3. **Resume**: a job stopped gracefully at about half way, the server restarted; time from the
   restart to completion against the remaining share of an uninterrupted job.

    .venv/bin/python benchmarks/jobs.py --minutes 10
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GIGAAM_SHARED_DIR", ROOT.parent / "shared"))
CACHE = ROOT / "benchmarks" / ".cache"
SPEECH = SHARED / "corpus" / "longform" / "longform_espeak_ru.wav"
CLIP = SHARED / "corpus" / "pisets" / "test_sound_ru.wav"
sys.path.insert(0, str(ROOT))

from gigaam_api.api.app import create_app  # noqa: E402
from gigaam_api.audio import load_audio  # noqa: E402
from gigaam_api.config import Settings, load_settings  # noqa: E402


def checkpoint() -> Path:
    path = CACHE / "v3_ctc.ckpt"
    if not path.is_file():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import random_checkpoint

        CACHE.mkdir(parents=True, exist_ok=True)
        manifest = SHARED / "golden" / "manifests" / "v3_ctc.json"
        random_checkpoint.write_random_checkpoint(manifest, path, seed=0)
    return path


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


@contextmanager
def server(settings: Settings) -> Iterator[tuple[str, Any]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.01)
    assert app.state.ctx.service.wait_loaded(1800), app.state.ctx.service.error
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        uv.should_exit = True
        thread.join(60)


def post_sync(http: httpx.Client, path: Path, request_id: str | None = None) -> float:
    started = time.perf_counter()
    headers = {"x-request-id": request_id} if request_id else {}
    with path.open("rb") as fh:
        response = http.post("/v1/audio/transcriptions", files={"file": fh}, headers=headers)
    response.raise_for_status()
    return time.perf_counter() - started


def submit(http: httpx.Client, path: Path) -> str:
    with path.open("rb") as fh:
        response = http.post("/v1/jobs", files={"file": fh})
    response.raise_for_status()
    return str(response.json()["id"])


def wait(http: httpx.Client, job_id: str, until: Any = None) -> dict[str, Any]:
    while True:
        job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled") or (until and until(job)):
            return job
        time.sleep(0.2)


def timed_job(http: httpx.Client, path: Path) -> float:
    started = time.perf_counter()
    job = wait(http, submit(http, path))
    assert job["status"] == "completed", job
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    long = long_input(args.minutes)
    jobs_dir = Path(tempfile.mkdtemp(prefix="gigaam-bench-jobs-"))
    settings = load_settings(
        _env_file=None,
        checkpoint_path=checkpoint(),
        models_dir=CACHE / "models",
        quantize_int8=True,
        num_threads=args.threads,
        jobs_dir=jobs_dir,
        log_level="WARNING",
    )
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with server(settings) as (url, app), httpx.Client(base_url=url, timeout=None) as http:
        scheduler = app.state.ctx.service.scheduler
        post_sync(http, CLIP)
        sync_s = post_sync(http, long)
        job_s = timed_job(http, long)
        budget = scheduler.background_budget_s
        scheduler.background_budget_s = 1e9  # whole batches: what slicing costs
        whole_s = timed_job(http, long)
        scheduler.background_budget_s = budget
        print(
            f"| {args.minutes:g} min | sync {sync_s:.1f} s | job {job_s:.1f} s "
            f"({(job_s / sync_s - 1) * 100:+.1f} %) | job, whole batches {whole_s:.1f} s "
            f"({(whole_s / sync_s - 1) * 100:+.1f} %) |"
        )

        job_id = submit(http, long)
        wait(http, job_id, lambda j: j["processed_seconds"] > 60)
        latencies = []
        for index in range(args.clips):
            latencies.append(post_sync(http, CLIP, f"bench-clip-{index}"))
            time.sleep(2.0)
        wait(http, job_id)
        served = scheduler.served
        waits, own = [], []
        for index, record in enumerate(served):
            if record.request_id.startswith("bench-clip-"):
                own.append(record.seconds)
                waits.append(sum(b.seconds for b in served[index - record.waited : index]))
        waves = [b.seconds / b.size for b in served if b.request_id == job_id]
        print(
            f"| 3 s clip during a job | median {statistics.median(latencies):.2f} s | "
            f"max {max(latencies):.2f} s | n={len(latencies)} | waited for the job: median "
            f"{statistics.median(waits):.2f} s, max {max(waits):.2f} s | own batch median "
            f"{statistics.median(own):.2f} s | job wave median {statistics.median(waves):.2f} s |"
        )
        alone = [post_sync(http, CLIP) for _ in range(5)]
        print(f"| 3 s clip, idle server | median {statistics.median(alone):.2f} s |")

        job_id = submit(http, long)
        duration = args.minutes * 60
        started = time.perf_counter()
        stopped = wait(http, job_id, lambda j: j["processed_seconds"] >= duration / 2)
        first_part = time.perf_counter() - started
    share = 1 - stopped["processed_seconds"] / duration
    restarted = time.perf_counter()
    with server(settings) as (url, app), httpx.Client(base_url=url, timeout=None) as http:
        ready = time.perf_counter() - restarted
        begun = time.perf_counter()
        assert wait(http, job_id)["status"] == "completed"
        second_part = time.perf_counter() - begun
    expected = share * job_s
    print(
        f"| resume at {stopped['processed_seconds']:.0f} s of {duration:.0f} s | first part "
        f"{first_part:.1f} s | model ready after restart {ready:.1f} s | rest {second_part:.1f} s "
        f"vs {expected:.1f} s expected ({second_part - expected:+.1f} s) |"
    )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
