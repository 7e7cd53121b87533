"""Two real server processes share durable jobs through a real PostgreSQL and one JOBS_DIR.

Each replica is ``uvicorn`` in its own process (so it can be SIGKILLed or SIGSTOPped) with the
fixture checkpoint, ``JOBS_DATABASE_URL`` pointing at a fresh database of the session's
throw-away PostgreSQL (tests/postgres.py), a short ``JOB_LEASE_SECONDS`` and its own
``REPLICA_ID``. What is asserted is read back from the database: which replica ran each job,
which attempt wrote each segment, where each attempt started decoding.

* Jobs submitted to replica A are run by both replicas; every result is readable from B.
* The replica running a long job is SIGKILLed: the other resumes it after the lease expires,
  from the last committed chunk (decoding starts exactly there), with no duplicate and no
  gap; of 20 more jobs submitted while it is frozen none is lost and none is run twice.
* The replica running a job is SIGSTOPped past its lease, the other takes the job over, then
  the first is SIGCONTed: it writes nothing more to the job (no segment of its attempt after
  the takeover; completed by the new owner) and counts a lease loss.
* PostgreSQL goes away for a few seconds: both replicas answer ``/health`` 503 with the reason
  and job routes 503 ``database_unavailable`` while ``/metrics`` (liveness) still answers; they
  do not crash, and finish the job and take new ones once it is back.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gigaam_api.jobs.store import SqlJobStore, segments_table
from gigaam_api.transcript import Segment
from tests.api_server import tiled_wav
from tests.conftest import CORPUS_DIR
from tests.jobs_helpers import (
    freeze_mid_job,
    read_events,
    submit_ok,
    wait_for,
    wait_job,
)
from tests.postgres import PostgresServer
from tests.replica_server import LEASE_SECONDS, Replica

SPEECH = CORPUS_DIR / "pisets" / "test_sound_ru.wav"
LONG_SOURCE = CORPUS_DIR / "longform" / "longform_espeak_ru.wav"
LONG_SECONDS = 900.0
MEDIUM_SECONDS = 60.0
#: Some of the long job committed, most of it still to do, when its replica is killed or paused.
KILL_AFTER_SECONDS = 60.0


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture
def replicas(golden_dir: Path, tmp_path: Path, database_url: str) -> Iterator[dict[str, Replica]]:
    jobs_dir = tmp_path / "jobs"  # one folder, as a shared volume would be
    started: dict[str, Replica] = {}
    try:
        for name in ("replica-a", "replica-b"):
            started[name] = Replica(name, golden_dir, tmp_path, jobs_dir, database_url)
        yield started
    finally:
        for replica in started.values():
            replica.stop()


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiled_wav(LONG_SOURCE, tmp_path_factory.mktemp("long") / "long.wav", LONG_SECONDS)


@pytest.fixture(scope="module")
def medium_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiled_wav(LONG_SOURCE, tmp_path_factory.mktemp("medium") / "medium.wav", MEDIUM_SECONDS)


# -- reading the shared database ----------------------------------------------------------------


def segment_rows(database_url: str, job_id: str) -> list[Any]:
    """``(seq, start_s, end_s, attempt, replica)`` of a job's segments, in order."""
    store = SqlJobStore(database_url)
    try:
        c = segments_table.c
        with store.engine.connect() as connection:
            return list(
                connection.execute(
                    sa.select(c.seq, c.start_s, c.end_s, c.attempt, c.replica)
                    .where(c.job_id == job_id)
                    .order_by(c.seq)
                )
            )
    finally:
        store.close()


def read_job(database_url: str, job_id: str) -> tuple[Any, list[Segment]]:
    store = SqlJobStore(database_url)
    try:
        return store.get(job_id), store.segments(job_id)
    finally:
        store.close()


def check_one_run(database_url: str, job_id: str) -> list[Any]:
    """Completed once, no duplicate, no gap, time-ordered; each attempt's segments one block,
    written by the replica that held that attempt, older attempts strictly first."""
    job, segments = read_job(database_url, job_id)
    assert job is not None and job.status == "completed", job
    assert [s.id for s in segments] == list(range(len(segments))) == list(range(job.segment_count))
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(segments))
    rows = segment_rows(database_url, job_id)
    attempts = [row.attempt for row in rows]
    assert attempts == sorted(attempts) and set(attempts) <= set(range(1, job.attempt + 1))
    if rows:
        assert rows[-1].attempt == job.attempt or job.resumed_from >= rows[-1].end_s
    return rows


def owner_of(database_url: str, job_id: str) -> str | None:
    job, _ = read_job(database_url, job_id)
    return None if job is None else job.lease_owner


def started_job(
    replicas: dict[str, Replica], database_url: str, path: Path
) -> tuple[str, Replica, Replica]:
    """Submit ``path`` to replica A; once a replica runs it: (job id, its runner, the other)."""
    job_id = submit_ok(replicas["replica-a"].http, path)["id"]
    wait_for(lambda: owner_of(database_url, job_id) is not None, what="the job to start")
    runner = replicas[owner_of(database_url, job_id) or ""]
    return job_id, runner, next(r for r in replicas.values() if r is not runner)


def freeze_partly_committed(
    replica: Replica, database_url: str, job_id: str
) -> tuple[Any, list[Segment]]:
    """SIGSTOP ``replica`` with part of its job committed; the job and segments it leaves."""
    return freeze_mid_job(
        replica.proc.pid, lambda: read_job(database_url, job_id), KILL_AFTER_SECONDS
    )


# -- the tests -------------------------------------------------------------------------------------


def test_jobs_submitted_to_one_replica_are_run_by_both_and_readable_from_either(
    replicas: dict[str, Replica], database_url: str, medium_wav: Path
) -> None:
    a, b = replicas["replica-a"], replicas["replica-b"]
    jobs = [submit_ok(a.http, medium_wav)["id"] for _ in range(12)]
    done = [wait_job(b.http, job_id) for job_id in jobs]  # ids known to B at once
    assert [d["status"] for d in done] == ["completed"] * len(jobs)
    ran_by = {d["replica"] for d in done}
    assert ran_by == {"replica-a", "replica-b"}  # both worked on A's submissions
    for job_id in jobs:
        rows = check_one_run(database_url, job_id)
        job, _ = read_job(database_url, job_id)
        assert job.attempt == 1 and {row.replica for row in rows} == {job.replica}
        from_a = a.http.get(f"/v1/jobs/{job_id}/result", params={"response_format": "srt"})
        from_b = b.http.get(f"/v1/jobs/{job_id}/result", params={"response_format": "srt"})
        assert from_a.status_code == from_b.status_code == 200
        assert from_a.content == from_b.content and from_b.content
    # events follow the database: B streams the segments of a job that A ran, and vice versa
    for job_id, d in zip(jobs, done, strict=True):
        other = b if d["replica"] == "replica-a" else a
        events = read_events(other.http, job_id)
        segments = [e for e in events if e.get("event") == "job.segment"]
        assert len(segments) == read_job(database_url, job_id)[0].segment_count
        assert events[-1]["event"] == "job.completed"
    claimed = a.metric("gigaam_jobs_claimed_total") + b.metric("gigaam_jobs_claimed_total")
    assert claimed == len(jobs)
    assert a.metric("gigaam_job_queue_depth") == b.metric("gigaam_job_queue_depth") == 0


def test_a_killed_replica_s_job_is_resumed_by_the_other_and_no_job_is_lost_or_run_twice(
    replicas: dict[str, Replica], database_url: str, long_wav: Path, medium_wav: Path
) -> None:
    long_id, victim, survivor = started_job(replicas, database_url, long_wav)
    # Frozen first, so what is read is exactly what the killed replica leaves behind; the
    # other jobs go in while it is frozen (a replica runs one job at a time: the survivor
    # runs them, and takes the long job over once the frozen lease runs out or at the kill).
    killed, before = freeze_partly_committed(victim, database_url, long_id)
    others = [submit_ok(survivor.http, medium_wav)["id"] for _ in range(20)]
    victim.signal(signal.SIGKILL)
    victim.proc.wait(30)
    assert killed.status == "running" and killed.attempt == 1 and killed.replica == victim.name
    resumed_at = killed.processed_seconds
    assert 0 < resumed_at < LONG_SECONDS - 60 and len(before) == killed.segment_count > 0

    for job_id in [long_id, *others]:
        assert wait_job(survivor.http, job_id, timeout=300)["status"] == "completed"
    resumed, segments = read_job(database_url, long_id)
    assert resumed.replica == survivor.name and resumed.resumed_from == resumed_at
    # resumed, not restarted: the survivor's attempt decoded from the last committed chunk
    assert f"job {long_id} attempt {resumed.attempt}: decoding from {resumed_at:.3f} s" in (
        survivor.log()
    )
    assert segments[: len(before)] == before  # the dead replica's committed part is untouched
    assert all(s.start >= resumed_at for s in segments[len(before) :])
    rows = check_one_run(database_url, long_id)
    assert {row.replica for row in rows[: len(before)]} == {victim.name}
    assert {row.replica for row in rows[len(before) :]} == {survivor.name}
    for job_id in others:  # none lost (all completed above), none run twice
        check_one_run(database_url, job_id)
        job, _ = read_job(database_url, job_id)
        assert job.attempt == 1 or job.replica == survivor.name


def test_a_paused_replica_that_lost_its_lease_writes_nothing_more(
    replicas: dict[str, Replica], database_url: str, long_wav: Path
) -> None:
    job_id, paused, other = started_job(replicas, database_url, long_wav)
    freeze_partly_committed(paused, database_url, job_id)
    try:
        wait_for(
            lambda: owner_of(database_url, job_id) == other.name, what="the other to take over"
        )
        taken, _ = read_job(database_url, job_id)
        wait_for(
            lambda: read_job(database_url, job_id)[0].processed_seconds > taken.resumed_from,
            what="the new owner to commit",
        )
    finally:
        paused.signal(signal.SIGCONT)
    assert wait_job(other.http, job_id)["status"] == "completed"
    wait_for(lambda: paused.metric("gigaam_job_lease_losses_total") >= 1, what="a counted loss")
    done, _ = read_job(database_url, job_id)
    assert done.replica == other.name and done.attempt == taken.attempt
    rows = check_one_run(database_url, job_id)
    # nothing of the paused attempt after the takeover point; the rest all the new owner's
    old = [row for row in rows if row.attempt < taken.attempt]
    new = [row for row in rows if row.attempt == taken.attempt]
    assert len(old) == taken.segment_count and old + new == rows
    assert all(row.end_s <= taken.resumed_from + 1e-9 for row in old)
    assert {row.replica for row in new} == {other.name}
    assert paused.proc.poll() is None and paused.healthy()  # alive, and taking work again


def test_replicas_ride_out_a_database_outage(
    replicas: dict[str, Replica],
    database_url: str,
    postgres_server: PostgresServer,
    long_wav: Path,
) -> None:
    a, b = replicas["replica-a"], replicas["replica-b"]
    job_id = submit_ok(a.http, long_wav)["id"]
    wait_for(lambda: owner_of(database_url, job_id) is not None, what="the job to start")
    with postgres_server.outage():
        for replica in (a, b):
            wait_for(lambda r=replica: not r.healthy(), what=f"{replica.name} to be not ready")
            health = replica.http.get("/health")
            assert health.status_code == 503 and health.json()["jobs_database"] == "unavailable"
            assert health.json()["error"]
            response = replica.http.get(f"/v1/jobs/{job_id}")
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "database_unavailable"
            assert response.headers["retry-after"]
            assert replica.http.get("/metrics").status_code == 200  # liveness unaffected
        time.sleep(LEASE_SECONDS * 2)  # past the lease: the runner must give the job up quietly
    for replica in (a, b):
        wait_for(replica.healthy, what=f"{replica.name} to be ready again")
    assert wait_job(b.http, job_id, timeout=300)["status"] == "completed"
    check_one_run(database_url, job_id)
    after = submit_ok(b.http, SPEECH)["id"]
    assert wait_job(a.http, after)["status"] == "completed"
    for replica in (a, b):
        assert replica.proc.poll() is None
        log = replica.log()
        assert "Traceback" not in log, log[-4000:]
        assert log.count("job database unavailable") <= 3  # one line per outage, not per poll
