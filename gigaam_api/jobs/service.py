"""The job operations the HTTP routes and the retention loop share, over store + files + runner.

Kept free of HTTP: methods raise :class:`JobLimit` or return ``None`` for "no such job", and
the routes map those onto the OpenAI error envelope.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gigaam_api.config import Settings
from gigaam_api.jobs.files import JobFiles
from gigaam_api.jobs.model import ACTIVE, Job, new_job_id
from gigaam_api.jobs.runner import JobRunner, apply_retention
from gigaam_api.jobs.store import SqlJobStore, open_store, sqlite_url
from gigaam_api.scheduler import Scheduler
from gigaam_api.transcript import Transcript

log = logging.getLogger(__name__)


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
        scheduler: Callable[[], Scheduler[Any] | None],
        *,
        database_url: str | None = None,
        on_progress: Callable[[float], None] | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.settings = settings
        self.files = JobFiles(settings.jobs_dir)
        self.files.prepare()
        self.store: SqlJobStore = open_store(database_url or sqlite_url(self.files.database_path))
        kwargs: dict[str, Any] = {"on_progress": on_progress}
        if lease_seconds is not None:
            kwargs["lease_seconds"] = lease_seconds
        self.runner = JobRunner(self.store, self.files, settings, scheduler, **kwargs)

    def start(self) -> None:
        if self.store.embedded:
            released = self.store.release_all_leases()
            if released:
                log.info(
                    "%d interrupted job(s) will resume after their last committed chunk", released
                )
        self._remove_orphans()
        apply_retention(self.store, self.files, self.settings.job_retention_hours)
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()
        self.store.close()

    def _remove_orphans(self) -> None:
        """Folders of jobs that never made it into the store (a crash during submission)."""
        for job_id in self.files.job_folders():
            if self.store.get(job_id) is None:
                self.files.remove(job_id)

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
        free_mb = self.files.free_bytes() / (1024 * 1024)
        if free_mb < self.settings.jobs_min_free_mb:
            raise JobLimit(
                "storage",
                f"Not enough free space for new jobs: {free_mb:.0f} MB free, "
                f"JOBS_MIN_FREE_MB={self.settings.jobs_min_free_mb}",
            )

    def submit(self, upload: Path, filename: str, duration: float | None) -> Job:
        """Store the upload with a new queued job and wake the runner."""
        self.check_capacity()
        job = Job(
            id=new_job_id(),
            status="queued",
            filename=filename,
            created_at=time.time(),
            duration=duration,
        )
        self.files.adopt_upload(job.id, upload)
        try:
            self.store.create(job)
        except BaseException:
            self.files.remove(job.id)
            raise
        self.runner.wake()
        return job

    # -- queries -----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)

    def list_jobs(self, limit: int, after: str | None) -> tuple[list[Job], bool]:
        return self.store.list_jobs(limit, after)

    def transcript(self, job: Job) -> Transcript:
        """The committed segments as a :class:`Transcript` (the formatters' input)."""
        segments = self.store.segments(job.id)
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
