"""Several replicas sharing durable jobs through PostgreSQL: throughput and database cost.

Reported, never asserted. A throw-away PostgreSQL is started the way the tests start it
(tests/postgres.py: Debian's server, a temporary cluster on a free loopback port) and stopped
at the end.

1. **Throughput, 1 replica vs 2**: ``--jobs`` short jobs (the 3.2 s corpus clip, or a tiled
   ``--seconds`` clip) submitted round-robin to the replicas, which are ``gigaam-api`` server
   processes (the fixture checkpoint, ``NUM_THREADS=1``) sharing one database and one
   ``JOBS_DIR``; wall time from the first submission to the last completion. On a machine with
   fewer cores than replicas × threads the replicas share the CPU, so this measures the
   overheads of sharing (claims, polling) more than added capacity.
2. **Database time per job**: the store calls one job makes from submission to completion
   (create, claim, one lease renewal, one committed chunk of two segments, complete, three
   status reads), timed in-process against SQLite under a temp dir and against the same
   PostgreSQL over loopback. This is the per-job overhead that does not depend on the model.

    .venv/bin/python benchmarks/replicas.py --jobs 40
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GIGAAM_SHARED_DIR", ROOT.parent / "shared"))
CLIP = SHARED / "corpus" / "pisets" / "test_sound_ru.wav"
LONG = SHARED / "corpus" / "longform" / "longform_espeak_ru.wav"
sys.path.insert(0, str(ROOT))

from gigaam_api.jobs.model import Job  # noqa: E402
from gigaam_api.jobs.store import SqlJobStore, sqlite_url  # noqa: E402
from gigaam_api.transcript import Segment, Word  # noqa: E402
from tests.api_server import tiled_wav  # noqa: E402
from tests.jobs_helpers import submit_ok, wait_job  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402
from tests.replica_server import Replica  # noqa: E402


def throughput(
    server: PostgresServer, clip: Path, jobs: int, replicas: int, workdir: Path
) -> tuple[float, dict[str, int]]:
    """Seconds from the first submission to the last completion, and jobs per replica."""
    url = server.create_database()
    jobs_dir = workdir / f"jobs-{replicas}"
    golden = SHARED / "golden"
    started = [Replica(f"replica-{i}", golden, workdir, jobs_dir, url) for i in range(replicas)]
    try:
        begin = time.perf_counter()
        ids = [submit_ok(started[i % replicas].http, clip)["id"] for i in range(jobs)]
        done = [wait_job(started[0].http, job_id, timeout=600) for job_id in ids]
        seconds = time.perf_counter() - begin
    finally:
        for replica in started:
            replica.stop()
    assert all(d["status"] == "completed" for d in done)
    per_replica: dict[str, int] = {}
    for d in done:
        per_replica[d["replica"]] = per_replica.get(d["replica"], 0) + 1
    return seconds, per_replica


def job_lifecycle(store: SqlJobStore, index: int) -> None:
    """The store calls of one job: submit, claim, renew, commit a chunk, complete, reads."""
    job_id = f"job_{index:024x}"
    store.create(Job(job_id, "queued", "clip.wav", time.time(), duration=3.2))
    store.get(job_id)
    claimed = store.claim("bench", 60)
    assert claimed is not None
    store.renew(claimed, 60)
    words = (Word("привет", 0.1, 0.5), Word("мир", 0.6, 0.9))
    segments = [Segment(0, 0.1, 0.9, "привет мир", words), Segment(1, 1.0, 3.0, "ещё", words)]
    assert store.commit_chunk(claimed, 3.2, segments)
    assert store.complete(claimed, 3.2)
    store.get(job_id)
    store.segments(job_id)


def store_time(make: Callable[[], SqlJobStore], jobs: int) -> list[float]:
    store = make()
    try:
        for index in range(5):  # warm the pool and the caches
            job_lifecycle(store, 10_000_000 + index)
        times = []
        for index in range(jobs):
            start = time.perf_counter()
            job_lifecycle(store, index)
            times.append(time.perf_counter() - start)
        return times
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40, help="short jobs per throughput run")
    parser.add_argument(
        "--seconds", type=float, default=0, help="tile the clip to this length (0: 3.2 s clip)"
    )
    parser.add_argument("--store-jobs", type=int, default=300, help="jobs for the store timing")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp, PostgresServer() as server:
        workdir = Path(tmp)
        clip = CLIP if not args.seconds else tiled_wav(LONG, workdir / "clip.wav", args.seconds)
        for name, make in (
            ("sqlite", lambda: SqlJobStore(sqlite_url(workdir / "bench.db"))),
            ("postgresql", lambda: SqlJobStore(server.create_database())),
        ):
            times = store_time(make, args.store_jobs)
            print(
                f"store calls per job, {name}: median {statistics.median(times) * 1000:.2f} ms, "
                f"p90 {statistics.quantiles(times, n=10)[-1] * 1000:.2f} ms "
                f"({args.store_jobs} jobs)"
            )
        for replicas in (1, 2, 1, 2):
            seconds, per = throughput(server, clip, args.jobs, replicas, workdir)
            print(
                f"{replicas} replica(s): {args.jobs} jobs in {seconds:.1f} s = "
                f"{args.jobs / seconds:.2f} jobs/s; jobs per replica {sorted(per.values())}"
            )


if __name__ == "__main__":
    main()
