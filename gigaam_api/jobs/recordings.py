"""A live session's recording kept as a job: the audio it heard and the text it already said.

Why a job that is completed at birth rather than an upload queued for the runner: the live
session has recognised every turn already, and the saved job must say *exactly* what the
person saw appear live. Running the recording through the runner again would recognise it a
second time — other chunk boundaries, another text, and the work done twice. So the saved
job's segments are the live finals, one per turn (start and end from the turn, its words
when the session had them), and ``GET /v1/jobs/{id}/result`` joins them like every format
does (:func:`gigaam_api.formats.transcript_text`): the live finals, trimmed, joined by spaces.

The audio is the session's 16 kHz mono PCM written as a plain WAV (the decoder reads it
without a process, the player streams and seeks it with ``Range``), received in
``JOBS_DIR/tmp`` and moved into the job's folder like an upload, so a crash never leaves a job
row without its audio: the row is written last, with its segments, in one transaction.
"""

from __future__ import annotations

import tempfile
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gigaam_api.constants import SAMPLE_RATE
from gigaam_api.jobs.files import JobFiles
from gigaam_api.jobs.model import Job, JobOptions, new_job_id
from gigaam_api.jobs.store import JobStore
from gigaam_api.transcript import Segment, Word

#: Bytes per sample of the PCM a live session keeps (int16 little-endian, mono).
SAMPLE_WIDTH = 2


@dataclass(frozen=True, slots=True)
class RecordedTurn:
    """One finished turn of a live session, as the client was told it (``.completed``).

    ``start`` and ``end`` are seconds from the start of the recording (the turn's
    ``audio_start_ms``/``audio_end_ms``); ``words``, when the session has them, carry times on
    the same clock.
    """

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()


def recording_name(now: float | None = None) -> str:
    """The saved job's file name: when it was recorded (UTC), and ``.wav`` for its player."""
    stamp = time.strftime("%Y-%m-%d %H-%M-%S", time.gmtime(time.time() if now is None else now))
    return f"Recording {stamp}.wav"


def recording_segments(turns: Sequence[RecordedTurn], duration: float) -> list[Segment]:
    """The job's segments: one per turn with text, in order, times kept inside the audio.

    The text of each is the turn's final as it was sent, so the job's text equals the live
    finals by construction; blank turns (noise the VAD took for speech) are left out, as the
    formats leave blank segments out of the text anyway.
    """

    def clip(value: float) -> float:
        return min(max(float(value), 0.0), duration)

    segments: list[Segment] = []
    for turn in turns:
        text = turn.text.strip()
        if not text:
            continue
        start = clip(turn.start)
        end = max(clip(turn.end), start)
        words = tuple(
            Word(w.text, clip(w.start), max(clip(w.end), clip(w.start)), speaker=w.speaker)
            for w in turn.words
        )
        segments.append(Segment(len(segments), start, end, text, words))
    return segments


def write_wav(folder: Path, pcm: bytes) -> Path:
    """``pcm`` (16 kHz mono int16) as a WAV file in ``folder``, returned for adoption."""
    fd, name = tempfile.mkstemp(dir=folder, prefix="live-", suffix=".wav")
    path = Path(name)
    try:
        with open(fd, "wb") as handle, wave.open(handle, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(SAMPLE_WIDTH)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(pcm)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def save_recording(
    store: JobStore,
    files: JobFiles,
    pcm: bytes,
    turns: Sequence[RecordedTurn],
    *,
    filename: str | None = None,
    language: str | None = None,
    replica: str | None = None,
) -> Job:
    """Keep a live session's audio and finals as a completed job, and return it.

    ``pcm`` is the whole session's 16 kHz mono int16 audio; ``turns`` its finals in order.
    The audio file is in place before the job's row exists (and removed again when the row
    cannot be written), so a listed job always has its audio.
    """
    if len(pcm) % SAMPLE_WIDTH:
        pcm = pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH]
    duration = len(pcm) / (SAMPLE_WIDTH * SAMPLE_RATE)
    now = time.time()
    job = Job(
        id=new_job_id(),
        status="completed",
        filename=filename or recording_name(now),
        created_at=now,  # listed on top, like an upload just made
        duration=round(duration, 3),
        started_at=now - duration,
        replica=replica,
        options=JobOptions(language=language),
    )
    segments = recording_segments(turns, duration)
    files.tmp_dir.mkdir(parents=True, exist_ok=True)
    files.adopt_upload(job.id, write_wav(files.tmp_dir, pcm))
    try:
        store.create_completed(job, segments)
    except BaseException:
        files.remove(job.id)
        raise
    return job
