"""The job operations the HTTP routes and the retention loop share, over store + files + runner.

Kept free of HTTP: methods raise :class:`JobLimit` or return ``None`` for "no such job", and
the routes map those onto the OpenAI error envelope.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from gigaam_api.config import Settings
from gigaam_api.jobs.database import describe_error, is_sqlite, is_unavailable
from gigaam_api.jobs.files import JobFiles
from gigaam_api.jobs.model import ACTIVE, Job, JobOptions, new_job_id
from gigaam_api.jobs.recordings import RecordedTurn, save_recording
from gigaam_api.jobs.runner import JobRunner, apply_retention
from gigaam_api.jobs.store import SqlJobStore, open_store, sqlite_url
from gigaam_api.service.model_service import ModelService
from gigaam_api.speakers import split_labelled
from gigaam_api.transcript import Transcript

log = logging.getLogger(__name__)

#: With a shared JOBS_DIR, upload leftovers and job folders without a row are removed only
#: when older than this: younger ones may be another replica's submission in progress.
ORPHAN_MIN_AGE_S = 3600.0


class JobLimit(Exception):
    """A new job is refused: ``kind`` is ``"max_jobs"`` or ``"storage"``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class JobService:
    """Durable jobs of one server: submission, queries, deletion, results, the runner."""

    def __init__(
        self,
        settings: Settings,
        core: ModelService,
        *,
        database_url: str | None = None,
        on_progress: Callable[[float], None] | None = None,
        on_event: Callable[[str], None] | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.settings = settings
        self.files = JobFiles(settings.jobs_dir)
        url = database_url or settings.jobs_database_url or sqlite_url(self.files.database_path)
        # With a shared database, JOBS_DIR is shared too: other replicas' uploads in flight
        # are not leftovers of this process (files.py: only old ones are removed then).
        self.files.prepare(leftover_min_age_s=0.0 if is_sqlite(url) else ORPHAN_MIN_AGE_S)
        self.store: SqlJobStore = open_store(url)
        self.runner = JobRunner(
            self.store,
            self.files,
            settings,
            core,
            on_progress=on_progress,
            on_event=on_event,
            lease_seconds=lease_seconds or settings.job_lease_seconds,
        )

    def start(self) -> None:
        # Embedded: this process owns the database, so whatever ran before is interrupted.
        # Shared: only this replica's own leases (a restart with the same REPLICA_ID); a live
        # peer's jobs are left alone, and a dead peer's leases expire by themselves.
        if self.store.embedded:
            released = self.store.release_all_leases()
        else:
            released = self.store.release_leases_of(self.runner.owner)
        if released:
            log.info("%d interrupted job(s) will resume after their last committed chunk", released)
        self._remove_orphans()
        apply_retention(self.store, self.files, self.settings.job_retention_hours)
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()
        self.store.close()

    def _remove_orphans(self) -> None:
        """Folders of jobs that never made it into the store (a crash during submission)."""
        min_age = 0.0 if self.store.embedded else ORPHAN_MIN_AGE_S
        for job_id in self.files.job_folders(min_age_s=min_age):
            if self.store.get(job_id) is None:
                self.files.remove(job_id)

    def database_error(self) -> str | None:
        """Why the job database cannot be used now (one round trip), or None when it can."""
        try:
            self.store.ping()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self.runner.availability.failed(exc)
            return describe_error(exc)
        return None

    # -- submission --------------------------------------------------------------------------

    def check_capacity(self) -> None:
        """Raise :class:`JobLimit` when ``MAX_JOBS`` are active or the disk is nearly full."""
        active = self.store.count_active()
        if active >= self.settings.max_jobs:
            raise JobLimit(
                "max_jobs",
                f"Too many jobs: {active} are queued or running (MAX_JOBS="
                f"{self.settings.max_jobs}); retry later",
            )
        self.check_storage()

    def check_storage(self) -> None:
        """Raise :class:`JobLimit` when the disk is below ``JOBS_MIN_FREE_MB``."""
        free_mb = self.files.free_bytes() / (1024 * 1024)
        if free_mb < self.settings.jobs_min_free_mb:
            raise JobLimit(
                "storage",
                f"Not enough free space for new jobs: {free_mb:.0f} MB free, "
                f"JOBS_MIN_FREE_MB={self.settings.jobs_min_free_mb}",
            )

    def submit(
        self,
        upload: Path,
        filename: str,
        duration: float | None,
        options: JobOptions | None = None,
        references: list[bytes] | None = None,
    ) -> Job:
        """Store the upload with a new queued job (its options, the known speakers' clips) and
        wake the runner."""
        self.check_capacity()
        job = Job(
            id=new_job_id(),
            status="queued",
            filename=filename,
            created_at=time.time(),
            duration=duration,
            options=options or JobOptions(),
        )
        self.files.adopt_upload(job.id, upload)
        try:
            if references:
                self.files.write_references(job.id, references)
            self.store.create(job)
        except BaseException:
            self.files.remove(job.id)
            raise
        self.runner.wake()
        return job

    def save_recording(
        self,
        pcm: bytes,
        turns: list[RecordedTurn],
        *,
        filename: str | None = None,
        language: str | None = None,
    ) -> Job:
        """Keep a live session's 16 kHz audio and its finals as a completed job
        (:mod:`gigaam_api.jobs.recordings`). Only the disk is checked: the job is finished
        work, so it never counts against ``MAX_JOBS``."""
        self.check_storage()
        return save_recording(
            self.store,
            self.files,
            pcm,
            turns,
            filename=filename,
            language=language,
            replica=self.runner.owner,
        )

    # -- queries -----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)

    def list_jobs(self, limit: int, after: str | None) -> tuple[list[Job], bool]:
        return self.store.list_jobs(limit, after)

    def transcript(self, job: Job) -> Transcript:
        """The committed segments as a :class:`Transcript` (the formatters' input); a labelled
        job's split where the speaker changes, as the synchronous endpoint answers."""
        segments = self.store.segments(job.id)
        if job.speakers:
            segments = split_labelled(segments)
        duration = job.duration if job.status == "completed" else job.processed_seconds
        return Transcript(segments=segments, duration=float(duration or 0.0))

    # -- deletion ----------------------------------------------------------------------------

    def delete(self, job_id: str) -> bool:
        """Cancel a queued/running job (kept as ``cancelled`` until retention) or remove a
        finished one; the audio and the segments go in both cases. False: no such job."""
        before = self.store.cancel(job_id)
        if before is None:
            return False
        if before.status in ACTIVE:
            self.runner.cancel(job_id)
        else:
            self.store.delete(job_id)
        self.files.remove(job_id)
        return True
