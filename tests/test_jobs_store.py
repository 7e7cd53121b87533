"""The job store on real databases: migrations, claims, leases and fencing.

The same suite runs on the embedded SQLite and on a real PostgreSQL (the session's throw-away
server from tests/postgres.py, a fresh database per test). A fake clock drives lease expiry,
so "the lease ran out" is exact rather than a sleep.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gigaam_api.jobs.model import Job, JobError
from gigaam_api.jobs.store import SqlJobStore, sqlite_url
from gigaam_api.transcript import Segment, Word
from tests.postgres import PostgresServer

#: The newest Alembic revision in gigaam_api/jobs/migrations/versions/.
LATEST_REVISION = "0004"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "jobs.db")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture
def store(database_url: str, clock: Clock) -> Iterator[SqlJobStore]:
    opened = SqlJobStore(database_url, clock=clock)
    yield opened
    opened.close()


def add(store: SqlJobStore, job_id: str, created: float) -> None:
    store.create(Job(job_id, "queued", f"{job_id}.wav", created, duration=100.0))


def seg(seq: int, start: float) -> Segment:
    return Segment(seq, start, start + 1, f"w{seq}", (Word(f"w{seq}", start, start + 1),))


def test_migrations_run_once_and_keep_the_data(database_url: str, clock: Clock) -> None:
    first = SqlJobStore(database_url, clock=clock)
    add(first, "job_a", 1.0)
    first.close()
    again = SqlJobStore(database_url, clock=clock)  # re-opening upgrades nothing, keeps data
    assert again.get("job_a") is not None
    with again.engine.connect() as connection:
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        if again.embedded:
            assert connection.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    assert version == LATEST_REVISION
    again.close()


def test_replicas_starting_together_migrate_once(postgres_server: PostgresServer) -> None:
    """Four server processes opening one empty PostgreSQL database at once: the advisory lock
    lets one migrate at a time; the others find the schema done, and every one starts."""
    url = postgres_server.create_database()
    code = "import sys; from gigaam_api.jobs.store import SqlJobStore; SqlJobStore(sys.argv[1])"
    starts = [
        subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    failures = [p.communicate(timeout=120)[1] for p in starts if p.wait(timeout=120) != 0]
    assert failures == []
    store = SqlJobStore(url)
    add(store, "job_a", 1.0)
    assert store.get("job_a") is not None
    store.close()


def test_a_replica_releases_only_its_own_leases(store: SqlJobStore) -> None:
    """With a shared database a starting replica gives back what it held before a restart
    (same REPLICA_ID), never a live peer's job; the claim records who ran the job."""
    add(store, "job_a", 1.0)
    add(store, "job_b", 2.0)
    mine = store.claim("replica-a", 60)
    theirs = store.claim("replica-b", 60)
    assert mine is not None and theirs is not None
    assert (mine.replica, theirs.replica) == ("replica-a", "replica-b")
    assert store.release_leases_of("replica-a") == 1
    assert store.claim("replica-c", 60) is not None  # job_a again, at once
    assert store.claim("replica-c", 60) is None  # job_b still held by its live owner
    assert store.complete(theirs, 100.0)
    done = store.get("job_b")
    assert done is not None and done.replica == "replica-b" and done.lease_owner is None


def test_claims_take_the_oldest_job_and_each_job_once(store: SqlJobStore) -> None:
    for index in range(20):
        add(store, f"job_{index:02d}", float(index))
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(owner: str) -> None:
        while (job := store.claim(owner, 60)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claimer, args=(f"owner{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(claimed) == [f"job_{i:02d}" for i in range(20)]  # all, none twice


def test_segments_commit_with_progress_only_while_the_lease_is_held(
    store: SqlJobStore, clock: Clock
) -> None:
    add(store, "job_a", 1.0)
    mine = store.claim("me", 60)
    assert mine is not None and mine.attempt == 1 and mine.lease_owner == "me"
    assert store.commit_chunk(mine, 20.0, [seg(0, 1.0), seg(1, 5.0)])
    clock.now += 61  # my lease runs out; another replica takes the job over
    theirs = store.claim("other", 60)
    assert theirs is not None and theirs.attempt == 2 and theirs.resumed_from == 20.0
    assert theirs.segment_count == 2
    assert not store.commit_chunk(mine, 40.0, [seg(2, 25.0)])  # fenced: nothing written
    assert not store.complete(mine, 100.0)
    assert not store.renew(mine, 60)
    assert store.commit_chunk(theirs, 40.0, [seg(2, 25.0)])
    assert store.complete(theirs, 100.0)
    done = store.get("job_a")
    assert done is not None and done.status == "completed" and done.lease_owner is None
    assert [s.id for s in store.segments("job_a")] == [0, 1, 2]
    assert store.segments("job_a", first_seq=2) == [seg(2, 25.0)]


def test_cancel_fences_the_runner_and_drops_the_segments(store: SqlJobStore) -> None:
    add(store, "job_a", 1.0)
    job = store.claim("me", 60)
    assert job is not None and store.commit_chunk(job, 10.0, [seg(0, 1.0)])
    before = store.cancel("job_a")
    assert before is not None and before.status == "running"
    assert not store.commit_chunk(job, 20.0, [seg(1, 12.0)])
    assert not store.fail(job, JobError("x", "server_error", None))
    cancelled = store.get("job_a")
    assert cancelled is not None and cancelled.status == "cancelled"
    assert store.segments("job_a") == []
    assert store.claim("me", 60) is None  # a cancelled job is never claimed again
    assert store.delete("job_a") and store.get("job_a") is None


def test_released_and_crashed_jobs_are_claimable_again(store: SqlJobStore) -> None:
    add(store, "job_a", 1.0)
    add(store, "job_b", 2.0)
    a = store.claim("me", 60)
    b = store.claim("me", 60)
    assert a is not None and b is not None
    assert store.claim("other", 60) is None  # both held
    assert store.release(a)  # graceful stop
    again = store.claim("other", 60)
    assert again is not None and again.id == "job_a" and again.attempt == 2
    assert store.release_all_leases() == 2  # embedded start-up after a crash
    assert store.claim("third", 60) is not None


def test_list_pages_newest_first(store: SqlJobStore) -> None:
    for index in range(5):
        add(store, f"job_{index}", float(index))
    page, more = store.list_jobs(2)
    assert [j.id for j in page] == ["job_4", "job_3"] and more
    page, more = store.list_jobs(3, after="job_3")
    assert [j.id for j in page] == ["job_2", "job_1", "job_0"] and not more
    with pytest.raises(KeyError):
        store.list_jobs(2, after="job_missing")
    assert store.count_active() == 5
    assert store.counts_by_status()["queued"] == 5
