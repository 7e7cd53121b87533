"""Durable jobs across restarts, and the capacity limits.

* ``kill -9`` mid-job → restart → the job resumes after its last committed chunk: the
  restarted process decodes from exactly the committed ``processed_seconds`` (read from the
  store and from its log), the committed segments are untouched, the new ones follow without
  duplicate or gap, and the text equals an uninterrupted run's except within the chunk at the
  resume point.
* A graceful stop mid-job gives the lease back; the next start resumes at once and recognises
  less audio than a whole run does.
* 100 queued jobs survive a restart and all complete; the 101st is 503 (``MAX_JOBS``).
* Too little free disk is 507; an unusable ``JOBS_DIR`` disables jobs (503) but not the rest.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gigaam_api.config import Settings
from gigaam_api.jobs.files import DATABASE_NAME
from gigaam_api.jobs.model import JobOptions
from gigaam_api.jobs.runner import DecodeStart
from gigaam_api.jobs.store import SqlJobStore, sqlite_url
from gigaam_api.server import create_app
from gigaam_api.transcript import Segment
from tests.api_server import free_port, real_model_settings, serve, server_process, tiled_wav
from tests.conftest import CORPUS_DIR, REPO_ROOT
from tests.helpers import records_of
from tests.jobs_helpers import TIMEOUT, freeze_mid_job, submit, submit_ok, wait_job

SPEECH = CORPUS_DIR / "pisets" / "test_sound_ru.wav"
LONG_SOURCE = CORPUS_DIR / "longform" / "longform_espeak_ru.wav"
LONG_SECONDS = 900.0
#: Some of the job committed, most of it still to do, when the server is killed or stopped.
STOP_AFTER_SECONDS = 60.0
#: Segments starting this long after the resume point come from the second resumed chunk on
#: (a chunk is at most VAD_STRICT_LIMIT = 30 s), which must equal the uninterrupted run's.
AFTER_RESUME_CHUNK_S = 31.0


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiled_wav(LONG_SOURCE, tmp_path_factory.mktemp("long") / "long.wav", LONG_SECONDS)


def read_store(jobs_dir: Path, job_id: str) -> tuple[Any, list[Segment]]:
    store = SqlJobStore(sqlite_url(jobs_dir / DATABASE_NAME))
    try:
        return store.get(job_id), store.segments(job_id)
    finally:
        store.close()


def check_resumed(
    segments: list[Segment], before: list[Segment], reference: list[Segment], resumed_at: float
) -> None:
    """No duplicate, no gap, monotonic, committed part untouched, text as uninterrupted."""
    assert [s.id for s in segments] == list(range(len(segments)))
    assert segments[: len(before)] == before  # never re-transcribed what was committed
    new = segments[len(before) :]
    assert new and all(s.start >= resumed_at for s in new)
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(segments))
    words = [w for s in segments for w in s.words]
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(words))
    committed_in_reference = [s for s in reference if s.end <= resumed_at]
    assert [(s.start, s.end, s.text, s.words) for s in before] == [
        (s.start, s.end, s.text, s.words) for s in committed_in_reference
    ]

    def tail(items: list[Segment]) -> list[tuple[float, float, str]]:
        # times to the microsecond: offset + chunk-relative time differs in the last bits
        return [
            (round(s.start, 6), round(s.end, 6), s.text)
            for s in items
            if s.start >= resumed_at + AFTER_RESUME_CHUNK_S
        ]

    assert tail(reference) and tail(segments) == tail(reference)


# -- kill -9 ----------------------------------------------------------------------------------


class ServerProcess:
    """``gigaam-api``'s app in its own process (so it can be killed), configured by env."""

    def __init__(self, golden_dir: Path, workdir: Path, jobs_dir: Path, log_name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / log_name
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "CHECKPOINT_PATH": str(golden_dir / "v3_ctc" / "v3_ctc.ckpt"),
            "MODELS_DIR": str(workdir / "models"),
            "JOBS_DIR": str(jobs_dir),
            "NUM_THREADS": "1",
            "LOG_LEVEL": "INFO",
        }
        self.proc = server_process(self.port, env, cwd=workdir, log_path=self.log_path)
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert self.proc.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, "server never became healthy"
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def test_kill_9_mid_job_resumes_after_the_last_committed_chunk(
    golden_dir: Path, long_wav: Path, tmp_path: Path
) -> None:
    jobs_dir = tmp_path / "jobs"
    first = ServerProcess(golden_dir, tmp_path, jobs_dir, "first.log")
    try:
        with httpx.Client(base_url=first.url, timeout=TIMEOUT) as http:
            # options stored with the job (ru: the language the Russian fixture model serves)
            job = submit_ok(http, long_wav, language="ru-RU")
            # Frozen first, so what is read is exactly what the killed process leaves behind.
            killed, before = freeze_mid_job(
                first.proc.pid, lambda: read_store(jobs_dir, job["id"]), STOP_AFTER_SECONDS
            )
    finally:
        first.kill()
    assert killed.status == "running" and killed.attempt == 1
    assert killed.options == JobOptions(language="ru")  # committed at submission
    resumed_at = killed.processed_seconds
    assert 0 < resumed_at < LONG_SECONDS - 60 and len(before) == killed.segment_count > 0

    second = ServerProcess(golden_dir, tmp_path, jobs_dir, "second.log")
    try:
        with httpx.Client(base_url=second.url, timeout=TIMEOUT) as http:
            done = wait_job(http, job["id"])
            assert done["status"] == "completed", done
            assert done["duration"] == pytest.approx(LONG_SECONDS, abs=0.01)
            reference_job = submit_ok(http, long_wav)  # the same file, uninterrupted
            assert wait_job(http, reference_job["id"])["status"] == "completed"
    finally:
        second.stop()
    resumed, segments = read_store(jobs_dir, job["id"])
    assert resumed.attempt == 2 and resumed.resumed_from == resumed_at
    assert resumed.options == JobOptions(language="ru")
    log = second.log_path.read_text()
    # the resumed attempt ran with the stored options, its segment ids going on from the last
    assert (
        f"job {job['id']} attempt 2: decoding from {resumed_at:.3f} s (resumed), "
        f"segments from {killed.segment_count}, options {{'language': 'ru'}}"
    ) in log
    _, reference = read_store(jobs_dir, reference_job["id"])
    check_resumed(segments, before, reference, resumed_at)


# -- graceful stop --------------------------------------------------------------------------


def app_for(golden_dir: Path, models: Path, jobs_dir: Path, **overrides: Any) -> FastAPI:
    settings = real_model_settings(golden_dir, models, jobs_dir=jobs_dir, **overrides)
    return create_app(settings, keepalive_seconds=0.5)


def job_audio_samples(app: FastAPI, job_id: str) -> int:
    """Samples of audio the model computed for a job in this app (its served records).

    Audio, not batches: a batch count also depends on how the batches were sliced and split by
    length, so a job resumed a minute in could need as many batches as a whole run.
    """
    served = records_of(app.state.ctx.service.scheduler)
    return sum(b.audio_samples for b in served if b.request_id == job_id and not b.failed)


def hold_after_commit(app: FastAPI, at_least: float) -> threading.Event:
    """Hold the job runner after its first commit of ``at_least`` seconds until it is stopping.

    The stop then lands mid-job whatever the speed of the machine (the fixture model
    recognises the whole 900 s file in about a second). The commit itself is the real one;
    the returned event is set once it is written.
    """
    runner = app.state.jobs.service.runner
    commit = runner.store.commit_chunk
    committed = threading.Event()

    def commit_then_hold(job: Any, end: float, segments: Any, *state: Any) -> bool:
        written: bool = commit(job, end, segments, *state)
        if end >= at_least and not committed.is_set():
            committed.set()
            runner._stopping.wait(TIMEOUT)  # the server's shutdown has begun
        return written

    runner.store.commit_chunk = commit_then_hold
    return committed


def test_graceful_stop_mid_job_resumes_at_the_next_start(
    golden_dir: Path, long_wav: Path, tmp_path: Path
) -> None:
    jobs_dir = tmp_path / "jobs"
    app = app_for(golden_dir, tmp_path / "models", jobs_dir)
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        assert app.state.ctx.service.wait_loaded(TIMEOUT)
        committed = hold_after_commit(app, STOP_AFTER_SECONDS)
        job = submit_ok(http, long_wav)
        reference_job = submit_ok(http, long_wav)  # runs after the first: its reference
        assert committed.wait(TIMEOUT)
    stopped, before = read_store(jobs_dir, job["id"])
    assert stopped.status == "running" and stopped.lease_owner is None  # lease given back
    resumed_at = stopped.processed_seconds
    assert 0 < resumed_at < LONG_SECONDS

    app = app_for(golden_dir, tmp_path / "models", jobs_dir)
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        assert app.state.ctx.service.wait_loaded(TIMEOUT)
        # Recorded from here: the resumed job's first call (a decode and a model call after its
        # claim) comes later, and a record missed would only make its count smaller.
        app.state.ctx.service.scheduler.record_served()
        assert wait_job(http, job["id"])["status"] == "completed"
        assert wait_job(http, reference_job["id"])["status"] == "completed"
        runner = app.state.jobs.service.runner
        assert DecodeStart(job["id"], 2, resumed_at) in runner.decode_starts
        assert DecodeStart(reference_job["id"], 1, 0.0) in runner.decode_starts
        # what was recognised again: less audio than the uninterrupted run of the same file
        assert job_audio_samples(app, job["id"]) < job_audio_samples(app, reference_job["id"])
    _, segments = read_store(jobs_dir, job["id"])
    _, reference = read_store(jobs_dir, reference_job["id"])
    check_resumed(segments, before, reference, resumed_at)


# -- queued jobs across a restart, capacity -------------------------------------------------


def loading_app(settings: Settings) -> tuple[FastAPI, threading.Event]:
    """An app whose model never finishes loading: jobs stay queued."""
    release = threading.Event()

    def loader(_: Settings) -> Any:
        release.wait()
        raise RuntimeError("test over")

    return create_app(settings, loader=loader), release


@pytest.fixture
def loading_settings(golden_dir: Path, tmp_path: Path) -> Iterator[Any]:
    def make(**overrides: Any) -> Settings:
        return real_model_settings(golden_dir, tmp_path / "models", **overrides)

    yield make


def test_100_queued_jobs_survive_a_restart_and_the_101st_is_503(
    golden_dir: Path, tmp_path: Path, loading_settings: Any
) -> None:
    jobs_dir = tmp_path / "jobs"
    app, release = loading_app(loading_settings(jobs_dir=jobs_dir, max_jobs=100))
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        ids = [submit_ok(http, SPEECH)["id"] for _ in range(100)]
        refused = submit(http, SPEECH)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "too_many_jobs"
        assert int(refused.headers["retry-after"]) >= 1
        listed = http.get("/v1/jobs", params={"limit": 100}).json()
        assert {j["id"] for j in listed["data"]} == set(ids) and not listed["has_more"]
        assert {j["status"] for j in listed["data"]} == {"queued"}
        queued = ids[0]
        assert http.get(f"/v1/jobs/{queued}/result").status_code == 409
        partial = http.get(f"/v1/jobs/{queued}/result", params={"partial": "true"})
        assert partial.status_code == 200 and partial.json()["text"] == ""
        release.set()

    app = app_for(golden_dir, tmp_path / "models", jobs_dir)
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        assert app.state.ctx.service.wait_loaded(TIMEOUT)
        texts = {
            http.get(f"/v1/jobs/{i}/result", params={"response_format": "text"}).text
            for i in ids
            if wait_job(http, i, timeout=300)["status"] == "completed"
        }
        statuses = {http.get(f"/v1/jobs/{i}").json()["status"] for i in ids}
        assert statuses == {"completed"}
        assert len(texts) == 1 and texts.pop().strip()  # the same clip, the same transcript
        order = [d.job_id for d in app.state.jobs.service.runner.decode_starts]
        assert order == ids  # oldest first


def test_too_little_free_disk_is_507(tmp_path: Path, loading_settings: Any) -> None:
    app, release = loading_app(loading_settings(jobs_dir=tmp_path / "jobs", jobs_min_free_mb=10**9))
    with serve(app) as url:
        response = submit(httpx.Client(base_url=url, timeout=TIMEOUT), SPEECH)
        release.set()
    assert response.status_code == 507
    error = response.json()["error"]
    assert error["code"] == "insufficient_storage" and "JOBS_MIN_FREE_MB" in error["message"]


def test_an_unusable_jobs_dir_disables_jobs_only(tmp_path: Path, loading_settings: Any) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    app, release = loading_app(loading_settings(jobs_dir=blocker / "jobs"))
    with serve(app) as url:
        response = httpx.get(f"{url}/v1/jobs", timeout=TIMEOUT)
        health = httpx.get(f"{url}/health", timeout=TIMEOUT)
        release.set()
    assert response.status_code == 503 and response.json()["error"]["code"] == "jobs_unavailable"
    assert health.status_code == 503 and health.json()["status"] == "loading"  # still serving
