"""The one seam between the Wyoming door and the service core.

An utterance, pushed to the core as its chunks arrived (:class:`~gigaam_api.audio.PushedAudio`),
goes through exactly what ``POST /v1/audio/transcriptions`` does with an uploaded file: a core
session (:mod:`gigaam_api.service.session`) — admission on the shared scheduler (same
``MAX_QUEUE``, same round-robin worker, same priority as a synchronous HTTP request), the
pipeline on its own thread, the core's reading of a failure (the same code and message the
HTTP door sends) — and the ``json`` format's text joining. So the text is the HTTP ``text``
for the same audio, and this module is the only one of the door that runs work on the core.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gigaam_api.audio import PushedAudio
from gigaam_api.config import Settings, pipeline_options
from gigaam_api.formats import DeltaJoiner, transcript_text
from gigaam_api.service.context import ServiceContext
from gigaam_api.service.errors import Outcome, ServiceError
from gigaam_api.service.metrics import Metrics
from gigaam_api.service.model_service import ModelService
from gigaam_api.service.session import (
    DoneEvent,
    FailedEvent,
    SegmentEvent,
    SessionOptions,
    admit,
)
from gigaam_api.transcript import Segment, Transcript
from gigaam_api.wyoming.info import DEFAULT_LANGUAGES

#: How long one wait for the session's next event lasts (the utterance has no deadline).
_POLL_S = 1.0


class TranscriptionFailed(Exception):
    """The utterance could not be transcribed; ``code`` and ``text`` go into the error event."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(error.message)
        self.code = error.code or "error"
        self.text = error.message
        #: The metrics' outcome label (one reading of a failure, shared with HTTP).
        self.outcome: Outcome = error.outcome


@dataclass(frozen=True, slots=True)
class Recognised:
    text: str
    duration: float
    processing_seconds: float


class Transcriber:
    """Runs utterances through the core's sessions."""

    def __init__(self, settings: Settings, service: ModelService, metrics: Metrics):
        self.settings = settings
        self.service = service
        self.metrics = metrics

    @classmethod
    def from_context(cls, ctx: ServiceContext) -> Transcriber:
        return cls(ctx.settings, ctx.service, ctx.metrics)

    @property
    def model_name(self) -> str:
        """The loaded model's name, or the configured one while loading."""
        model = self.service.model
        return model.name if model is not None else self.settings.model

    @property
    def languages(self) -> tuple[str, ...]:
        """The ISO 639-1 codes an utterance may ask for: the loaded model's (while a local
        checkpoint loads: Russian, which every GigaAM model transcribes)."""
        return self.service.languages or DEFAULT_LANGUAGES

    async def transcribe(
        self,
        pushed: PushedAudio,
        request_id: str,
        on_delta: Callable[[str], Awaitable[None]] | None = None,
        *,
        language: str | None = None,
    ) -> Recognised:
        """Transcribe an utterance's audio.

        ``on_delta`` receives each piece of text as its segment is recognised (pieces joined
        give the final text). ``language`` (one of :attr:`languages`, or ``None``) restricts
        the output to that language's alphabet. Cancelling the awaiting task cancels the
        session: its place is released once the pipeline thread has let go of the audio.
        """
        try:
            place = admit(self.service, request_id)
        except ServiceError as exc:
            pushed.abort()
            raise TranscriptionFailed(exc) from None
        session = place.session(
            pushed,
            SessionOptions(pipeline=pipeline_options(self.settings), language=language),
            on_release=pushed.abort,
        )
        started = time.perf_counter()
        session.start(name=f"wyoming-{request_id[-8:]}")
        segments: list[Segment] = []
        joiner = DeltaJoiner()
        try:
            while True:
                event = await session.next(_POLL_S)
                if isinstance(event, SegmentEvent):
                    segments.append(event.segment)
                    delta = joiner.delta(event.segment.text)
                    if delta and on_delta is not None:
                        await on_delta(delta)
                elif isinstance(event, DoneEvent):
                    duration = event.duration
                    break
                elif isinstance(event, FailedEvent):
                    raise TranscriptionFailed(event.error)
        except BaseException:
            with contextlib.suppress(Exception):
                session.cancel()
            raise
        text = transcript_text(Transcript(segments=segments, duration=duration))
        return Recognised(text, duration, time.perf_counter() - started)
