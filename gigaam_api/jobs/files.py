"""Where a job's files live: one folder per job under ``JOBS_DIR``.

``JOBS_DIR/<job id>/audio`` is the upload, kept until the job is deleted (a resumed job
decodes it again from its last committed chunk). Uploads are received into ``JOBS_DIR/tmp``
first, on the same file system, so moving one into its job folder is an atomic rename. The
SQLite database (the default store) lives in ``JOBS_DIR/jobs.db``.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

from gigaam_api.jobs.model import ID_PREFIX

AUDIO_NAME = "audio"
TMP_NAME = "tmp"
DATABASE_NAME = "jobs.db"


class JobFiles:
    """The folder layout of ``JOBS_DIR``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def prepare(self, leftover_min_age_s: float = 0.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(exist_ok=True)
        # uploads of a process that died while receiving them (with a shared JOBS_DIR, only
        # old ones: a younger file may be another replica's upload in progress)
        for leftover in self.tmp_dir.iterdir():
            with contextlib.suppress(OSError):
                if _age(leftover) >= leftover_min_age_s:
                    leftover.unlink()

    @property
    def tmp_dir(self) -> Path:
        return self.root / TMP_NAME

    @property
    def database_path(self) -> Path:
        return self.root / DATABASE_NAME

    def folder(self, job_id: str) -> Path:
        if not job_id.startswith(ID_PREFIX) or not job_id[len(ID_PREFIX) :].isalnum():
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id

    def audio(self, job_id: str) -> Path:
        return self.folder(job_id) / AUDIO_NAME

    def adopt_upload(self, job_id: str, upload: Path) -> Path:
        """Move a received upload into the job's folder (atomic on one file system)."""
        folder = self.folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / AUDIO_NAME
        shutil.move(str(upload), target)
        return target

    def reference(self, job_id: str, index: int) -> Path:
        """A known speaker's reference clip (speaker labelling), ``index`` in the given order."""
        return self.folder(job_id) / f"speaker-{int(index)}"

    def write_references(self, job_id: str, clips: list[bytes]) -> None:
        """Keep the known speakers' clips with the job (every attempt reads them again)."""
        folder = self.folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        for index, clip in enumerate(clips):
            self.reference(job_id, index).write_bytes(clip)

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def job_folders(self, min_age_s: float = 0.0) -> list[str]:
        """Ids of the job folders on disk at least ``min_age_s`` old (for removing orphans)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and p.name.startswith(ID_PREFIX) and _age(p) >= min_age_s
        )

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free


def _age(path: Path) -> float:
    """Seconds since ``path`` was last modified (0 when it vanished meanwhile)."""
    try:
        return max(time.time() - path.stat().st_mtime, 0.0)
    except OSError:
        return 0.0
