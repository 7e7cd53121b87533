"""The job store: an interface, and its SQLAlchemy implementation (SQLite by default).

Why it looks like this:

* **One interface, any SQL database.** Every query is SQLAlchemy Core over portable types, so
  the embedded default (SQLite in WAL mode under ``JOBS_DIR``) and a server database shared by
  several replicas run the same code; :func:`open_store` takes a SQLAlchemy URL.
* **Migrations, not ``create_all``.** The schema is versioned with Alembic; the migrations
  ship inside the package and are applied when the store opens, so an upgraded server brings
  an old database up to date by itself.
* **Leases with fencing.** A runner *claims* a job with one conditional ``UPDATE`` (a
  compare-and-swap on the attempt counter; ``FOR UPDATE SKIP LOCKED`` where the dialect has it,
  so competing replicas do not queue on the same row). The claim sets ``lease_owner``,
  ``lease_expires_at`` and ``attempt + 1``. Every later write — committing segments,
  completing, failing, renewing — is conditional on still holding that owner *and* attempt,
  so a runner that lost its lease (expired, job cancelled or deleted) cannot write anything.
* **Segments commit with progress.** Each recognised chunk's segments are inserted in the
  same transaction that advances ``processed_seconds``, keyed ``(job_id, seq)``, so after a
  crash the database says exactly where to resume and a segment can never be stored twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gigaam_api.jobs.database import create_engine, is_sqlite, migrating, normalise_url
from gigaam_api.jobs.database import sqlite_url as sqlite_url
from gigaam_api.jobs.model import (
    ACTIVE,
    FINISHED,
    STATUSES,
    Job,
    JobError,
    JobOptions,
    JobStatus,
    words_from_json,
    words_to_json,
)
from gigaam_api.transcript import Segment

log = logging.getLogger(__name__)

#: Seconds a claim lasts without renewal; the runner renews well before it ends.
DEFAULT_LEASE_SECONDS = 60.0

metadata = sa.MetaData()

jobs_table = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("completed_at", sa.Float),
    sa.Column("duration", sa.Float),
    sa.Column("processed_seconds", sa.Float, nullable=False, default=0.0),
    sa.Column("segment_count", sa.Integer, nullable=False, default=0),
    sa.Column("error_message", sa.Text),
    sa.Column("error_type", sa.String(64)),
    sa.Column("error_code", sa.String(64)),
    sa.Column("lease_owner", sa.String(128)),
    sa.Column("lease_expires_at", sa.Float),
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    sa.Column("resumed_from", sa.Float, nullable=False, default=0.0),
    sa.Column("replica", sa.String(128)),
    sa.Column("options", sa.JSON),
    sa.Column("speakers", sa.JSON),
    sa.Column("speaker_names", sa.JSON),
    sa.Column("speaker_state", sa.LargeBinary),
)

#: What reading a job loads: every column but the diarization state (a blob only the runner
#: needs, read with ``speaker_state``).
JOB_COLUMNS = tuple(column for column in jobs_table.c if column.name != "speaker_state")

segments_table = sa.Table(
    "job_segments",
    metadata,
    sa.Column(
        "job_id", sa.String(40), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("start_s", sa.Float, nullable=False),
    sa.Column("end_s", sa.Float, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("words", sa.JSON, nullable=False),
    sa.Column("speaker", sa.String(128)),
    # who wrote the segment: with the lease fencing, one attempt's segments never interleave
    # with another's (tests/test_jobs_replicas.py checks it on PostgreSQL)
    sa.Column("attempt", sa.Integer),
    sa.Column("replica", sa.String(128)),
)


class JobStore(Protocol):
    """What the runner, the routes and retention need from a job store."""

    def create(self, job: Job) -> None: ...
    def create_completed(self, job: Job, segments: Sequence[Segment]) -> None: ...
    def get(self, job_id: str) -> Job | None: ...
    def list_jobs(self, limit: int, after: str | None = None) -> tuple[list[Job], bool]: ...
    def count_active(self) -> int: ...
    def counts_by_status(self) -> dict[str, int]: ...
    def claim(self, owner: str, lease_seconds: float) -> Job | None: ...
    def renew(self, job: Job, lease_seconds: float) -> bool: ...
    def commit_chunk(
        self,
        job: Job,
        processed_seconds: float,
        segments: Sequence[Segment],
        speaker_state: bytes | None = None,
    ) -> bool: ...
    def complete(self, job: Job, duration: float) -> bool: ...
    def complete_labelled(
        self, job: Job, duration: float, segments: Sequence[Segment], speakers: Sequence[str]
    ) -> bool: ...
    def speaker_state(self, job_id: str) -> bytes | None: ...
    def rename_speakers(self, job_id: str, names: dict[str, str]) -> bool: ...
    def fail(self, job: Job, error: JobError) -> bool: ...
    def release(self, job: Job) -> bool: ...
    def release_all_leases(self) -> int: ...
    def release_leases_of(self, owner: str) -> int: ...
    def cancel(self, job_id: str) -> Job | None: ...
    def delete(self, job_id: str) -> bool: ...
    def segments(self, job_id: str, first_seq: int = 0) -> list[Segment]: ...
    def finished_before(self, cutoff: float) -> list[str]: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


def _names(data: object) -> dict[str, str] | None:
    """Stored speaker names: a JSON object of label → name (anything else: none)."""
    if not isinstance(data, dict):
        return None
    return {str(k): str(v) for k, v in data.items()} or None


class LeaseLost(Exception):
    """The runner no longer holds the job (lease expired, cancelled, deleted)."""


def migrate(engine: Engine) -> None:
    """Apply the packaged Alembic migrations up to the newest (one replica at a time)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    location = resources.files("gigaam_api.jobs") / "migrations"
    config.set_main_option("script_location", str(location))
    with migrating(engine) as connection:  # jobs/database.py: one replica at a time
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class SqlJobStore:
    """:class:`JobStore` over any SQLAlchemy database."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.url = url = normalise_url(url)
        self._clock = clock
        #: SQLite under JOBS_DIR: one server owns it (see release_all_leases).
        self.embedded = is_sqlite(url)
        self.engine = create_engine(url)  # jobs/database.py: pools, pragmas, timeouts
        try:
            migrate(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    def ping(self) -> None:
        """One round trip; raises when the database cannot be reached (``/health``)."""
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    # -- reading ----------------------------------------------------------------------------

    @staticmethod
    def _job(row: Any) -> Job:
        error = None
        if row.error_message is not None:
            error = JobError(row.error_message, row.error_type or "server_error", row.error_code)
        status: JobStatus = row.status if row.status in STATUSES else "failed"
        return Job(
            id=row.id,
            status=status,
            filename=row.filename,
            created_at=row.created_at,
            duration=row.duration,
            processed_seconds=row.processed_seconds or 0.0,
            segment_count=row.segment_count or 0,
            started_at=row.started_at,
            completed_at=row.completed_at,
            error=error,
            lease_owner=row.lease_owner,
            lease_expires_at=row.lease_expires_at,
            attempt=row.attempt or 0,
            resumed_from=row.resumed_from or 0.0,
            replica=row.replica,
            options=JobOptions.from_json(row.options),
            speakers=tuple(str(s) for s in row.speakers or ()),
            speaker_names=_names(row.speaker_names),
        )

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(*JOB_COLUMNS).where(jobs_table.c.id == job_id)
            ).first()
        return None if row is None else self._job(row)

    def list_jobs(self, limit: int, after: str | None = None) -> tuple[list[Job], bool]:
        """Newest first; ``after`` is the id of the last job of the previous page."""
        c = jobs_table.c
        query = sa.select(*JOB_COLUMNS).order_by(c.created_at.desc(), c.id.desc())
        with self.engine.connect() as connection:
            if after is not None:
                cursor = connection.execute(
                    sa.select(c.created_at).where(c.id == after)
                ).scalar_one_or_none()
                if cursor is None:
                    raise KeyError(after)
                query = query.where(
                    sa.or_(c.created_at < cursor, sa.and_(c.created_at == cursor, c.id < after))
                )
            rows = connection.execute(query.limit(limit + 1)).all()
        return [self._job(r) for r in rows[:limit]], len(rows) > limit

    def count_active(self) -> int:
        c = jobs_table.c
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    sa.select(sa.func.count()).where(c.status.in_(sorted(ACTIVE)))
                ).scalar_one()
            )

    def counts_by_status(self) -> dict[str, int]:
        c = jobs_table.c
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        with self.engine.connect() as connection:
            for status, count in connection.execute(
                sa.select(c.status, sa.func.count()).group_by(c.status)
            ):
                counts[status] = int(count)
        return counts

    def segments(self, job_id: str, first_seq: int = 0) -> list[Segment]:
        c = segments_table.c
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(segments_table)
                .where(c.job_id == job_id, c.seq >= first_seq)
                .order_by(c.seq)
            ).all()
        return [
            Segment(r.seq, r.start_s, r.end_s, r.text, words_from_json(r.words), speaker=r.speaker)
            for r in rows
        ]

    def speaker_state(self, job_id: str) -> bytes | None:
        """The diarization committed with the job's last chunk (speaker labelling only)."""
        c = jobs_table.c
        with self.engine.connect() as connection:
            value = connection.execute(sa.select(c.speaker_state).where(c.id == job_id)).scalar()
        return bytes(value) if value is not None else None

    def rename_speakers(self, job_id: str, names: dict[str, str]) -> bool:
        """Set the names of a job's speaker labels (merged with earlier ones). False: no job."""
        c = jobs_table.c
        with self._tx() as connection:
            current = connection.execute(
                sa.select(c.speaker_names).where(c.id == job_id).with_for_update()
            ).first()
            if current is None:
                return False
            merged = {**(_names(current.speaker_names) or {}), **names}
            merged = {label: name for label, name in merged.items() if name and name != label}
            connection.execute(
                jobs_table.update()
                .where(c.id == job_id)
                .values(speaker_names=merged or None, updated_at=self._clock())
            )
        return True

    def finished_before(self, cutoff: float) -> list[str]:
        c = jobs_table.c
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    sa.select(c.id).where(c.status.in_(sorted(FINISHED)), c.completed_at < cutoff)
                ).scalars()
            )

    # -- writing ----------------------------------------------------------------------------

    def create(self, job: Job) -> None:
        with self._tx() as connection:
            connection.execute(
                jobs_table.insert().values(
                    id=job.id,
                    status=job.status,
                    filename=job.filename,
                    created_at=job.created_at,
                    updated_at=self._clock(),
                    duration=job.duration,
                    processed_seconds=0.0,
                    segment_count=0,
                    attempt=0,
                    resumed_from=0.0,
                    options=job.options.to_json(),
                )
            )

    def create_completed(self, job: Job, segments: Sequence[Segment]) -> None:
        """Insert a job that is finished at birth (a live recording, whose text the live
        session already recognised) with its segments, in one transaction: no runner ever
        claims it, and it is never seen half written."""
        now = self._clock()
        with self._tx() as connection:
            connection.execute(
                jobs_table.insert().values(
                    id=job.id,
                    status="completed",
                    filename=job.filename,
                    created_at=job.created_at,
                    updated_at=now,
                    started_at=job.started_at if job.started_at is not None else job.created_at,
                    completed_at=now,
                    duration=job.duration,
                    processed_seconds=job.duration or 0.0,
                    segment_count=len(segments),
                    attempt=0,
                    resumed_from=0.0,
                    replica=job.replica,
                    options=job.options.to_json(),
                )
            )
            self._insert_segments(connection, job, segments)

    def claim(self, owner: str, lease_seconds: float) -> Job | None:
        """Take the oldest claimable job: queued, or running with an expired lease.

        Returns the job as claimed (status running, the new attempt), or None. Safe against
        other claimers: the ``UPDATE`` only succeeds if the row still has the attempt we read.
        """
        c = jobs_table.c
        for _ in range(5):  # another claimer won the row: try the next one
            now = self._clock()
            claimable = sa.or_(
                c.status == "queued",
                sa.and_(
                    c.status == "running",
                    sa.or_(c.lease_expires_at.is_(None), c.lease_expires_at < now),
                ),
            )
            with self._tx() as connection:
                row = connection.execute(
                    sa.select(c.id, c.attempt, c.processed_seconds)
                    .where(claimable)
                    .order_by(c.created_at, c.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    return None
                result = connection.execute(
                    jobs_table.update()
                    .where(c.id == row.id, c.attempt == row.attempt, claimable)
                    .values(
                        status="running",
                        lease_owner=owner,
                        lease_expires_at=now + lease_seconds,
                        attempt=row.attempt + 1,
                        started_at=sa.func.coalesce(c.started_at, now),
                        resumed_from=row.processed_seconds,
                        replica=owner,
                        updated_at=now,
                    )
                )
                if result.rowcount != 1:
                    continue
            return self.get(row.id)
        return None

    def _held(self, job: Job) -> sa.ColumnElement[bool]:
        c = jobs_table.c
        return sa.and_(
            c.id == job.id,
            c.lease_owner == job.lease_owner,
            c.attempt == job.attempt,
            c.status == "running",
        )

    def _update_held(self, job: Job, **values: Any) -> bool:
        """Write ``values`` to the job's row only while this worker still holds its lease, so a
        replica whose lease expired (and was claimed by another) can never overwrite the new
        owner's state. True when the row was written."""
        with self._tx() as connection:
            result = connection.execute(jobs_table.update().where(self._held(job)).values(**values))
            return result.rowcount == 1

    def renew(self, job: Job, lease_seconds: float) -> bool:
        now = self._clock()
        return self._update_held(job, lease_expires_at=now + lease_seconds, updated_at=now)

    def commit_chunk(
        self,
        job: Job,
        processed_seconds: float,
        segments: Sequence[Segment],
        speaker_state: bytes | None = None,
    ) -> bool:
        """Store a chunk's segments (their ``id`` is the sequence number) and advance progress
        (and the diarization so far, when labelling speakers), in one transaction, only while
        holding the lease. False: lease lost, nothing written."""
        c = jobs_table.c
        now = self._clock()
        values: dict[str, Any] = {
            "processed_seconds": processed_seconds,
            "segment_count": c.segment_count + len(segments),
            "updated_at": now,
        }
        if speaker_state is not None:
            values["speaker_state"] = speaker_state
        with self._tx() as connection:
            result = connection.execute(
                jobs_table.update()
                .where(self._held(job), c.processed_seconds <= processed_seconds)
                .values(**values)
            )
            if result.rowcount != 1:
                return False  # nothing was written
            self._insert_segments(connection, job, segments)
        return True

    def _insert_segments(
        self, connection: Connection, job: Job, segments: Sequence[Segment]
    ) -> None:
        if segments:
            connection.execute(
                segments_table.insert(),
                [
                    {
                        "job_id": job.id,
                        "seq": s.id,
                        "start_s": s.start,
                        "end_s": s.end,
                        "text": s.text,
                        "words": words_to_json(s.words),
                        "speaker": s.speaker,
                        "attempt": job.attempt,
                        "replica": job.lease_owner,
                    }
                    for s in segments
                ],
            )

    def _finish(self, job: Job, status: str, **values: Any) -> bool:
        """Move a held job to its final ``status`` and drop the lease, in one guarded write."""
        now = self._clock()
        return self._update_held(
            job,
            status=status,
            completed_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
            **values,
        )

    def complete(self, job: Job, duration: float) -> bool:
        return self._finish(job, "completed", duration=duration, processed_seconds=duration)

    def complete_labelled(
        self, job: Job, duration: float, segments: Sequence[Segment], speakers: Sequence[str]
    ) -> bool:
        """Complete a job whose speakers were labelled: its segments replaced by the labelled
        ones (the same ids) in the same transaction, the diarization state dropped. False:
        lease lost, nothing written."""
        now = self._clock()
        with self._tx() as connection:
            result = connection.execute(
                jobs_table.update()
                .where(self._held(job))
                .values(
                    status="completed",
                    completed_at=now,
                    updated_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    duration=duration,
                    processed_seconds=duration,
                    segment_count=len(segments),
                    speakers=list(speakers),
                    speaker_state=None,
                )
            )
            if result.rowcount != 1:
                return False
            connection.execute(segments_table.delete().where(segments_table.c.job_id == job.id))
            self._insert_segments(connection, job, segments)
        return True

    def fail(self, job: Job, error: JobError) -> bool:
        return self._finish(
            job,
            "failed",
            error_message=error.message,
            error_type=error.type,
            error_code=error.code,
        )

    def release(self, job: Job) -> bool:
        """Give a running job back (graceful stop): it stays running, claimable at once."""
        return self._update_held(
            job, lease_owner=None, lease_expires_at=None, updated_at=self._clock()
        )

    def release_leases_of(self, owner: str) -> int:
        """At start-up with a shared database: the leases this replica (same ``REPLICA_ID``)
        held before it restarted are claimable now. Other replicas' leases are left alone:
        they may be alive, and a dead one's lease simply expires."""
        c = jobs_table.c
        with self._tx() as connection:
            result = connection.execute(
                jobs_table.update()
                .where(c.status == "running", c.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )
            return int(result.rowcount)

    def release_all_leases(self) -> int:
        """At start-up of the embedded store (one server per database): whatever ran before
        a crash is claimable now instead of after its lease runs out."""
        c = jobs_table.c
        with self._tx() as connection:
            result = connection.execute(
                jobs_table.update()
                .where(c.status == "running")
                .values(lease_owner=None, lease_expires_at=None)
            )
            return int(result.rowcount)

    def cancel(self, job_id: str) -> Job | None:
        """Queued/running → cancelled, segments dropped, any lease fenced off (attempt + 1).
        Returns the job as it was, or None when it does not exist."""
        c = jobs_table.c
        now = self._clock()
        with self._tx() as connection:
            row = connection.execute(sa.select(*JOB_COLUMNS).where(c.id == job_id)).first()
            if row is None:
                return None
            if row.status in ACTIVE:
                connection.execute(
                    jobs_table.update()
                    .where(c.id == job_id)
                    .values(
                        status="cancelled",
                        completed_at=now,
                        updated_at=now,
                        lease_owner=None,
                        lease_expires_at=None,
                        attempt=c.attempt + 1,
                    )
                )
                connection.execute(segments_table.delete().where(segments_table.c.job_id == job_id))
        return self._job(row)

    def delete(self, job_id: str) -> bool:
        with self._tx() as connection:
            connection.execute(segments_table.delete().where(segments_table.c.job_id == job_id))
            result = connection.execute(jobs_table.delete().where(jobs_table.c.id == job_id))
            return result.rowcount == 1


def open_store(url: str) -> SqlJobStore:
    """A store for a SQLAlchemy URL: ``sqlite:///…`` (embedded) or ``postgresql://…``."""
    return SqlJobStore(url)
