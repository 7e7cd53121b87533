"""The one seam between the Wyoming door and the service core.

An utterance recorded to a WAV file goes through exactly what ``POST /v1/audio/transcriptions``
does with an uploaded file: admission on the shared scheduler (same ``MAX_QUEUE``, same
round-robin worker, same priority as a synchronous HTTP request), the pipeline producer
(decode → VAD → chunking → model) on its own thread as a ``PipelineRunner``, the core's
reading of a failure (``service/errors.py``: the same code and message the HTTP door sends),
and the ``json`` format's text joining. So the text is the HTTP ``text`` for the same audio,
and this module is the only one of the door that runs work on the core (``service/``) —
when the core's calling convention changes, this file is the only one to follow it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from gigaam_api.config import Settings
from gigaam_api.formats import DeltaJoiner, transcript_text
from gigaam_api.service.context import ServiceContext
from gigaam_api.service.errors import ServiceError, failure_of
from gigaam_api.service.metrics import Metrics
from gigaam_api.service.model_service import ModelService
from gigaam_api.service.runner import DoneEvent, PipelineRunner, SegmentEvent
from gigaam_api.service.transcribe import pipeline_producer
from gigaam_api.transcript import Segment, Transcript

#: How long one wait for the job's next event lasts (the job has no deadline of its own).
_POLL_S = 1.0


class TranscriptionFailed(Exception):
    """The utterance could not be transcribed; ``code`` and ``text`` go into the error event."""

    def __init__(self, code: str, text: str, *, client_error: bool) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.client_error = client_error


@dataclass(frozen=True, slots=True)
class Recognised:
    text: str
    duration: float
    processing_seconds: float


class Transcriber:
    """Runs utterances through the service's pipeline and scheduler."""

    def __init__(self, settings: Settings, service: ModelService, metrics: Metrics, tmp: Path):
        self.settings = settings
        self.service = service
        self.metrics = metrics
        #: Where utterances are recorded: the server's spool folder (HTTP uploads go there too).
        self.tmp_dir = tmp

    @classmethod
    def from_context(cls, ctx: ServiceContext) -> Transcriber:
        return cls(ctx.settings, ctx.service, ctx.metrics, ctx.tmp_dir)

    @property
    def model_name(self) -> str:
        """The loaded model's name, or the configured one while loading."""
        model = self.service.model
        return model.name if model is not None else self.settings.model

    async def transcribe(
        self,
        path: Path,
        request_id: str,
        on_delta: Callable[[str], Awaitable[None]] | None = None,
    ) -> Recognised:
        """Transcribe the WAV at ``path`` (this call takes it over and deletes it).

        ``on_delta`` receives each piece of text as its segment is recognised (pieces joined
        give the final text). Cancelling the awaiting task cancels the job: the ticket is
        released and the file removed once the pipeline thread has let go of it.
        """
        try:
            ticket = self.service.admit(request_id)
        except ServiceError as exc:
            path.unlink(missing_ok=True)
            raise TranscriptionFailed(
                exc.code or "unavailable", exc.message, client_error=False
            ) from None

        def release() -> None:
            ticket.close()
            path.unlink(missing_ok=True)

        job = PipelineRunner(
            pipeline_producer(path, ticket, self.settings),
            on_cancel=ticket.cancel,
            on_exit=release,
            name=f"wyoming-{request_id[-8:]}",
        )
        started = time.perf_counter()
        job.start()
        segments: list[Segment] = []
        joiner = DeltaJoiner()
        try:
            while True:
                event = await job.next(_POLL_S)
                if event is None:
                    continue
                if isinstance(event, SegmentEvent):
                    segments.append(event.segment)
                    delta = joiner.delta(event.segment.text)
                    if delta and on_delta is not None:
                        await on_delta(delta)
                elif isinstance(event, DoneEvent):
                    duration = event.duration
                    break
                else:
                    error = failure_of(event.error, request_id)
                    raise TranscriptionFailed(
                        error.code or "error", error.message, client_error=error.client_error
                    )
        except BaseException:
            with contextlib.suppress(Exception):
                job.cancel()
            raise
        text = transcript_text(Transcript(segments=segments, duration=duration))
        return Recognised(text, duration, time.perf_counter() - started)
