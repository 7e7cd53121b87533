"""The job record, its statuses and the ``transcription.job`` wire object (pure code).

A job's state lives in the store; this module only describes it. ``processed_seconds`` is
the end of the last committed chunk: everything before it is final (its segments are
committed), which is where a resumed job starts decoding again.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal

from gigaam_api.transcript import Segment, Word

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
STATUSES: Final[tuple[JobStatus, ...]] = ("queued", "running", "completed", "failed", "cancelled")
#: Statuses a job never leaves (retention applies to them).
FINISHED: Final = frozenset({"completed", "failed", "cancelled"})
#: Statuses that count against ``MAX_JOBS``.
ACTIVE: Final = frozenset({"queued", "running"})

JOB_OBJECT = "transcription.job"
JOB_DELETED_OBJECT = "transcription.job.deleted"
ID_PREFIX = "job_"


def new_job_id() -> str:
    """``job_`` + 24 random hex digits: unguessable, URL-safe."""
    return ID_PREFIX + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class JobError:
    """Why a job failed, in the OpenAI error fields a client already knows."""

    message: str
    type: str
    code: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "type": self.type, "code": self.code}


@dataclass(frozen=True, slots=True)
class JobSpeakers:
    """Speaker labelling asked for at submission: the expected count, the known speakers'
    names (their reference clips are files in the job's folder, ``JobFiles.reference``)."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    known_names: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "num_speakers": self.num_speakers,
            "min_speakers": self.min_speakers,
            "max_speakers": self.max_speakers,
            "known_names": list(self.known_names),
        }

    @staticmethod
    def from_json(data: Any) -> JobSpeakers | None:
        if not isinstance(data, dict):
            return None

        def count(key: str) -> int | None:
            value = data.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        names = data.get("known_names")
        known = tuple(str(n) for n in names) if isinstance(names, list) else ()
        return JobSpeakers(
            count("num_speakers"), count("min_speakers"), count("max_speakers"), known
        )


@dataclass(frozen=True, slots=True)
class JobOptions:
    """What the client asked for at submission that changes how the job is run.

    Stored with the job (``jobs.options``, JSON) so a resumed attempt — after a restart, a
    ``kill -9``, on another replica — runs with the same options. A stored key this version
    does not know is ignored, a missing one takes its default, so rows written by an older or
    newer server still load.
    """

    #: The language the client named (ISO-639-1), ``None`` when not given.
    language: str | None = None
    #: Label speakers (``None``: do not).
    speakers: JobSpeakers | None = None
    #: The request's keywords as (phrase, boost) (``None``: the server's default boost), in
    #: order; the server's ``KEYWORDS`` are merged in by each attempt, not stored.
    keywords: tuple[tuple[str, float | None], ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"language": self.language}
        if self.speakers is not None:
            data["speakers"] = self.speakers.to_json()
        if self.keywords:
            data["keywords"] = [{"phrase": p, "boost": b} for p, b in self.keywords]
        return data

    @staticmethod
    def from_json(data: Any) -> JobOptions:
        if not isinstance(data, dict):
            return JobOptions()
        language = data.get("language")
        return JobOptions(
            language=language if isinstance(language, str) else None,
            speakers=JobSpeakers.from_json(data.get("speakers")),
            keywords=_keywords_from_json(data.get("keywords")),
        )


def _keywords_from_json(data: Any) -> tuple[tuple[str, float | None], ...]:
    """Stored keywords back; an entry this version cannot read is left out."""
    if not isinstance(data, list):
        return ()
    found: list[tuple[str, float | None]] = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("phrase"), str):
            continue
        boost = item.get("boost")
        number = boost if isinstance(boost, int | float) and not isinstance(boost, bool) else None
        found.append((item["phrase"], None if number is None else float(number)))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Job:
    """One row of the job store (times are Unix seconds)."""

    id: str
    status: JobStatus
    filename: str
    created_at: float
    duration: float | None = None
    processed_seconds: float = 0.0
    segment_count: int = 0
    started_at: float | None = None
    completed_at: float | None = None
    error: JobError | None = None
    #: Lease holder and fencing token: only the holder of the current attempt may write.
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    attempt: int = 0
    #: Where the latest attempt started decoding (0 for a fresh start, > 0 when resumed).
    resumed_from: float = 0.0
    #: The replica that claimed the latest attempt (kept after it finishes: who ran the job).
    replica: str | None = None
    #: The options given at submission (used again by every attempt).
    options: JobOptions = JobOptions()
    #: Speaker labels in order of first appearance, once the job is labelled.
    speakers: tuple[str, ...] = ()
    #: Names given to speaker labels (``PATCH /v1/jobs/{id}``): every format shows them.
    speaker_names: dict[str, str] | None = None

    @property
    def progress(self) -> float:
        if self.status == "completed":
            return 1.0
        if not self.duration:
            return 0.0
        return min(max(self.processed_seconds / self.duration, 0.0), 1.0)


def job_object(job: Job) -> dict[str, Any]:
    """The ``transcription.job`` object the API returns."""
    return {
        "id": job.id,
        "object": JOB_OBJECT,
        "status": job.status,
        "created_at": int(job.created_at),
        "filename": job.filename,
        "duration": job.duration,
        "processed_seconds": round(job.processed_seconds, 3),
        "progress": round(job.progress, 4),
        "started_at": None if job.started_at is None else int(job.started_at),
        "completed_at": None if job.completed_at is None else int(job.completed_at),
        "error": None if job.error is None else job.error.to_dict(),
        "replica": job.replica,
        # speaker labelling: the labels (once known) and the names given to them
        "speakers": [
            {"label": label, "name": (job.speaker_names or {}).get(label, label)}
            for label in job.speakers
        ]
        if job.options.speakers is not None
        else None,
    }


def deleted_object(job_id: str) -> dict[str, Any]:
    return {"id": job_id, "object": JOB_DELETED_OBJECT, "deleted": True}


def segment_payload(segment: Segment, names: dict[str, str] | None = None) -> dict[str, Any]:
    """A committed segment as JSON (SSE ``job.segment``): times absolute, with its words, and
    its speaker (by the name given to it, if any) once the job is labelled."""
    payload: dict[str, Any] = {
        "id": segment.id,
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "words": [{"word": w.text, "start": w.start, "end": w.end} for w in segment.words],
    }
    if segment.speaker is not None:
        payload["speaker"] = (names or {}).get(segment.speaker, segment.speaker)
    return payload


def words_to_json(words: tuple[Word, ...]) -> list[list[Any]]:
    """Compact storage of a segment's words: ``[[text, start, end(, speaker)], ...]``."""
    return [
        [w.text, w.start, w.end] if w.speaker is None else [w.text, w.start, w.end, w.speaker]
        for w in words
    ]


def words_from_json(data: Any) -> tuple[Word, ...]:
    return tuple(
        Word(str(w[0]), float(w[1]), float(w[2]), speaker=str(w[3]) if len(w) > 3 else None)
        for w in data or ()
    )
