"""The live door's two extensions of OpenAI's protocol: ``session.finish`` and ``save``.

OpenAI's Realtime API has no "the audio has ended" event: a client just closes the socket and
loses the final of the turn it was in. This server adds one, and a way to keep the session:

* the client event ``{"type": "session.finish"}`` ends the audio: what remains of it is
  committed as the last turn (a turn in progress gets its final), the door waits for the
  finals of every committed turn, answers ``{"type": "session.finished", "job": …}`` and
  closes the socket normally (1000);
* ``/v1/realtime?intent=transcription&save=true`` keeps the session as a job: the session's
  audio, converted to 16 kHz mono as it arrives (:class:`~gigaam_api.audio.PushedAudio`, the
  conversion the recogniser's audio gets), and its finals, one segment per turn with the
  turn's timed words (the player highlights them). At
  ``session.finish`` the job is created (``jobs/recordings.py``: completed at birth, its text
  the live finals by construction) and ``session.finished`` carries its ``transcription.job``
  object; a socket closed without a finish keeps what was heard, with the finals sent so far.

:class:`LiveRecording` is that state for one connection. The door calls it on its event loop
only: :meth:`push` with each append's PCM, :meth:`observe` with each core event before sending
it, :meth:`finish` when the client asks, :meth:`keep` when the socket went away. A finish asks
the session for a commit and then a clear: the session handles its commands in order, so the
clear's ``Cleared`` says every turn the audio ended has been committed, and the finish then
waits for their finals. Both answers are the finish's own, not sent to the client (nor is an
"empty commit" error: nothing was left to commit).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Final

from gigaam_api.audio import PushedAudio, RawFormat
from gigaam_api.jobs.model import job_object
from gigaam_api.jobs.recordings import RecordedTurn
from gigaam_api.jobs.service import JobLimit, JobService
from gigaam_api.service.live import LiveSession
from gigaam_api.service.live_events import (
    Cleared,
    Committed,
    LiveError,
    LiveEvent,
    TranscriptCompleted,
    TranscriptFailed,
)

__all__ = ["FINISHED_EVENT", "FINISH_EVENT", "LiveRecording", "finished_event", "wants_save"]

log = logging.getLogger(__name__)

FINISH_EVENT: Final = "session.finish"
FINISHED_EVENT: Final = "session.finished"
#: Seconds a finish waits for the last finals (each is one short interactive recognition).
FINISH_TIMEOUT_S: Final = 120.0
#: The core's answer to a commit of (almost) nothing: after a finish, simply "no last turn".
_EMPTY_COMMIT: Final = "input_audio_buffer_commit_empty"


def wants_save(value: str | None) -> bool:
    """The ``save`` query parameter: ``true``/``1``/``yes`` keep the session as a job."""
    return (value or "").strip().lower() in ("1", "true", "yes")


class LiveRecording:
    """One connection's finish and, with ``jobs``, its recording (see the module doc)."""

    def __init__(
        self,
        fmt: RawFormat,
        *,
        jobs: JobService | None,
    ) -> None:
        self.jobs = jobs
        self._audio = PushedAudio(fmt, max_seconds=0) if jobs is not None else None
        self._pcm = bytearray()
        self._drained = threading.Event()
        self._drained.set()  # take() never waits: it hands what is converted, then None
        self._turns: list[RecordedTurn] = []
        self._pending: set[str] = set()  # committed items whose final has not come yet
        self._finishing = False
        #: The finish's commit and clear are not handled yet: the session handles commands in
        #: order, so its ``Cleared`` says every earlier append and the commit were handled (every
        #: turn they ended is in ``_pending``).
        self._marker_open = False
        self._settled = asyncio.Event()
        self.saved = False
        #: Why the recording could not be kept (``session.finished`` says it), or None.
        self.error: dict[str, Any] | None = None

    @classmethod
    def for_app(cls, app: Any, fmt: RawFormat, save: bool) -> LiveRecording:
        """The state of a connection to ``app`` whose audio is ``fmt``; keeping it as a job
        when ``save`` was asked and the server has jobs (else ``session.finished`` says why)."""
        jobs = app.state.jobs.service if save else None
        recording = cls(fmt, jobs=jobs)
        if save and jobs is None:
            reason = app.state.jobs.error or "the server keeps no jobs"
            recording.error = {
                "type": "server_error",
                "code": "jobs_unavailable",
                "message": f"The recording cannot be saved: {reason}",
            }
        return recording

    # -- as the session goes -------------------------------------------------------------------

    def push(self, pcm: bytes) -> None:
        """An append's PCM (the session's format), kept as 16 kHz when saving."""
        if self._audio is None:
            return
        self._audio.push(pcm)
        self._collect()

    def _collect(self) -> None:
        assert self._audio is not None
        while (block := self._audio.take(self._drained)) is not None:
            self._pcm.extend(block.astype("<i2").tobytes())

    def observe(self, event: LiveEvent) -> bool:
        """Note a core event; True when the door should not send it (the finish's own empty
        commit)."""
        swallow = False
        if isinstance(event, Committed):
            self._pending.add(event.item_id)
        elif isinstance(event, TranscriptCompleted):
            self._pending.discard(event.item_id)
            self._turns.append(
                RecordedTurn(
                    event.audio_start_ms / 1000,
                    event.audio_end_ms / 1000,
                    event.transcript,
                    event.words,
                )
            )
        elif isinstance(event, TranscriptFailed):
            self._pending.discard(event.item_id)
        elif isinstance(event, LiveError) and event.code == _EMPTY_COMMIT and self._marker_open:
            swallow = True  # nothing was left to commit: no last turn
        elif isinstance(event, Cleared) and self._marker_open:
            self._marker_open = False
            swallow = True  # the finish's own marker, not the client's
        if self._finishing and not self._marker_open and not self._pending:
            self._settled.set()
        return swallow

    # -- the end -------------------------------------------------------------------------------

    async def finish(self, live: LiveSession | None, timeout: float) -> dict[str, Any]:
        """``session.finish``: commit what remains of ``live``'s audio (``None`` when no audio
        came), wait for the last finals, save; the ``session.finished`` event."""
        self._finishing = True
        if live is not None:
            self._marker_open = True
            live.commit()
            live.clear()  # handled after the commit: its Cleared marks the end of the audio
        else:
            self._settled.set()
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except TimeoutError:
            log.warning("live session finish: finals still missing after %g s", timeout)
        job = await asyncio.to_thread(self._save) if self.jobs is not None else None
        return {"type": FINISHED_EVENT, "job": job, "error": self.error}

    async def keep(self) -> None:
        """The socket went away without a finish: keep what was heard, with the finals sent."""
        if (
            self.jobs is not None
            and self._audio is not None
            and self._audio.frames
            and not self.saved
        ):
            await asyncio.to_thread(self._save)

    def _save(self) -> dict[str, Any] | None:
        assert self.jobs is not None and self._audio is not None
        if self.saved:
            return None
        self.saved = True
        self._audio.end()
        self._collect()
        try:
            job = self.jobs.save_recording(bytes(self._pcm), list(self._turns))
        except JobLimit as exc:
            log.warning("live recording not saved: %s", exc.message)
            self.error = {
                "type": "server_error",
                "code": "insufficient_storage",
                "message": exc.message,
            }
            return None
        except Exception:  # the database or the disk failed: say so (details in the log)
            log.exception("live recording not saved")
            self.error = {
                "type": "server_error",
                "code": "recording_not_saved",
                "message": "The recording could not be saved (the server's log says why).",
            }
            return None
        log.info("live recording saved as job %s (%d turns)", job.id, len(self._turns))
        return job_object(job)


async def finished_event(
    recording: LiveRecording | None, live: LiveSession | None
) -> dict[str, Any]:
    """The answer to ``session.finish`` (the door adds the ``event_id``)."""
    if recording is None:  # no audio came: nothing to commit, nothing to keep
        return {"type": FINISHED_EVENT, "job": None, "error": None}
    return await recording.finish(live, FINISH_TIMEOUT_S)
