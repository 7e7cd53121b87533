"""One transcription, however it came in: the core's session, the seam every door uses.

Every way in — a synchronous or SSE HTTP request, a Wyoming utterance, a durable job, the CLI
(and, next, speakers and live text) — runs the same four steps, written here once:

1. **admit** (:func:`admit`): a place in the core's queue with its priority class —
   *interactive* (a person waits: HTTP, Wyoming) or *background* (a durable job). A door may
   admit before its audio is there (HTTP admits before the upload, so a full server answers
   503 at once); the place is an :class:`Admission` until a session takes it;
2. **run** the pipeline over a :class:`~gigaam_api.audio.PcmSource` — a stored file, or PCM
   the door pushes (:class:`~gigaam_api.audio.PushedAudio`) — with the request's
   :class:`SessionOptions`;
3. **report** a stream of typed events: :class:`SegmentEvent` per finished segment,
   :class:`ProgressEvent` when everything before a point is final (the end of a recognised
   chunk: what a job commits), with speaker labelling on a :class:`SpeakersEvent` once the
   audio is done (who spoke when: the turns the doors give their segments' words to), then
   :class:`DoneEvent` or :class:`FailedEvent` — a failure
   already read by the core's one classifier (:func:`~gigaam_api.service.errors.failure_of`),
   so every door says the same thing for the same failure;
4. **release** the place and the source (the upload, the pushed buffer) once the pipeline has
   unwound — also after a cancel, which stops the pipeline between steps and wakes a thread
   waiting for the model.

The events can be read synchronously (:meth:`Session.events`, on the caller's thread: the job
runner, the CLI) or from the event loop (:meth:`Session.start` + :meth:`Session.next`, the
pipeline on a thread of its own: HTTP, Wyoming). Nothing else in the server calls the pipeline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from gigaam_api import audio, pipeline
from gigaam_api.audio import PcmSource, read_spans
from gigaam_api.cancellation import Cancelled
from gigaam_api.constants import SAMPLE_RATE
from gigaam_api.model import Result
from gigaam_api.options import PipelineOptions
from gigaam_api.pipeline import Form
from gigaam_api.service.bridge import ThreadBridge
from gigaam_api.service.errors import ServiceError, failure_of
from gigaam_api.service.keywords import ContextGraph, Keyword
from gigaam_api.service.model_service import PLAIN, Decoding, ModelService, decode_waves
from gigaam_api.service.speakers import SpeakerOptions, reference_embeddings
from gigaam_api.speakers import Diarizer, SpeakerEmbedder, SpeakerTurn
from gigaam_api.transcript import Segment

#: Gives the speaker-embedding model (loaded on first use), or raises a ``ServiceError``.
SpeakerModelGetter = Callable[[], SpeakerEmbedder]
#: A request's keywords (with the server's) → the model's graph (``None``: none at all), or
#: a ``ServiceError`` naming a phrase the model cannot write.
KeywordCompiler = Callable[[Sequence[Keyword]], ContextGraph | None]

__all__ = [
    "Admission",
    "DirectWorker",
    "DoneEvent",
    "FailedEvent",
    "Priority",
    "ProgressEvent",
    "SegmentEvent",
    "Session",
    "SessionEvent",
    "SessionOptions",
    "Worker",
    "admit",
]

log = logging.getLogger(__name__)

#: Who waits for the result: a person (*interactive*: served first, counted against
#: ``MAX_QUEUE``), nobody right now (*background*: durable jobs, served in between), or a
#: person watching a draft (*interim*: a live turn's re-recognition, run only while no
#: interactive work waits and skipped rather than queued — the run fails with ``skipped``).
Priority = Literal["interactive", "background", "interim"]


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Everything one request asked for that changes how it is run, as one value.

    A durable job stores these (``jobs.options``) and runs with them again on resume.
    """

    #: The server's pipeline settings (VAD, chunking, subtitle limits, batch size, limits).
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)
    #: ``"auto"`` (audio up to 25 s in one pass) or ``"long"`` (always chunked at pauses).
    form: Form = "auto"
    #: Where to start (a resumed job: the end of its last committed chunk).
    start_seconds: float = 0.0
    #: The id of the first segment produced (a resumed job continues its numbering).
    first_segment_id: int = 0
    #: The language the client named (ISO-639-1), ``None`` when not given. Kept with a job.
    language: str | None = None
    #: Label speakers (who spoke when); ``None``: do not.
    speakers: SpeakerOptions | None = None
    #: Phrases the decoder favours (with the server's ``KEYWORDS``); ``()``: the request's none.
    keywords: tuple[Keyword, ...] = ()


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentEvent:
    segment: Segment


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Everything before ``seconds`` is final: its segments were all sent.

    With speaker labelling and ``SpeakerOptions.keep_state``, ``speaker_state`` is the
    diarization up to this point, for a job to commit with the segments and resume from.
    """

    seconds: float
    speaker_state: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SpeakersEvent:
    """Who spoke when (speaker labelling only), sent once the audio is done, before
    :class:`DoneEvent`: the turns, and the labels in order of first appearance (``A``, ``B``…
    or a known speaker's name)."""

    turns: tuple[SpeakerTurn, ...]
    speakers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DoneEvent:
    duration: float


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """The run failed: ``error`` in the core's words, ``cause`` as raised."""

    error: ServiceError
    cause: BaseException


SessionEvent = SegmentEvent | ProgressEvent | SpeakersEvent | DoneEvent | FailedEvent


# -- what runs the model -------------------------------------------------------------------------


class Worker(Protocol):
    """What recognises a session's batches: a scheduler ticket in the server.

    ``decoding`` is the request's language and compiled keywords: a ticket passes it to the
    model call as its batch's tag, so a call that combines requests keeps each one's own.
    """

    def infer(
        self, batch: list[NDArray[np.float32]], decoding: Decoding = PLAIN, /
    ) -> Sequence[Result]: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


class DirectWorker:
    """The model called directly, with no scheduler (the CLI: one file at a time).

    ``infer`` is ``model.transcribe`` (or a function like it): called ``infer(batch)``, with
    ``language=`` and ``keywords=`` (one per wave) only when the request has them.
    """

    def __init__(self, infer: Callable[..., Sequence[Result]]) -> None:
        self._infer = infer

    def infer(
        self, batch: list[NDArray[np.float32]], decoding: Decoding = PLAIN, /
    ) -> Sequence[Result]:
        return decode_waves(self._infer, batch, [decoding] * len(batch))

    def cancel(self) -> None:
        """Nothing waits for a turn: the pipeline's own cancel flag stops the run."""

    def close(self) -> None:
        """Nothing to give back."""


# -- admission -----------------------------------------------------------------------------------


class Admission:
    """A place in the core's queue, held until a :class:`Session` takes it (or :meth:`close`)."""

    def __init__(
        self,
        worker: Worker,
        request_id: str,
        *,
        what: str = "request",
        speaker_model: SpeakerModelGetter | None = None,
        keywords: KeywordCompiler | None = None,
    ) -> None:
        self.worker = worker
        self.request_id = request_id
        #: What the work is called in logs and internal-error messages ("request", "job").
        self.what = what
        self.speaker_model = speaker_model
        #: Compiles a request's keywords for the model this place runs on.
        self.keywords = keywords
        self._taken = False

    def session(
        self,
        source: PcmSource,
        options: SessionOptions,
        *,
        on_release: Callable[[], None] | None = None,
    ) -> Session:
        """The session that runs ``source`` in this place (which it then owns and releases)."""
        if self._taken:
            raise RuntimeError("an admission runs one session")
        self._taken = True
        return Session(
            source,
            options,
            self.worker,
            self.request_id,
            what=self.what,
            on_release=on_release,
            speaker_model=self.speaker_model,
            keywords=self.keywords,
        )

    def close(self) -> None:
        """Give the place back unused (the upload failed, the fields were invalid)."""
        if not self._taken:
            self._taken = True
            self.worker.close()


def admit(
    service: ModelService,
    request_id: str,
    priority: Priority = "interactive",
    *,
    bounded: bool = True,
) -> Admission:
    """A place in the queue, or a :class:`ServiceError` saying why not (loading, full, stopping).

    ``bounded=False``: an interactive place not counted against ``MAX_QUEUE`` (a live
    session's final, bounded by the door's session limit instead).
    """
    ticket = service.admit(
        request_id,
        background=priority == "background",
        interim=priority == "interim",
        bounded=bounded,
    )
    what = "job" if priority == "background" else "request"
    return Admission(
        ticket,
        request_id,
        what=what,
        speaker_model=service.speakers.get,
        keywords=service.compile_keywords,
    )


# -- the session ---------------------------------------------------------------------------------


class Session:
    """One pipeline run over one source, as events (see the module doc)."""

    def __init__(
        self,
        source: PcmSource,
        options: SessionOptions,
        worker: Worker,
        request_id: str,
        *,
        what: str = "request",
        on_release: Callable[[], None] | None = None,
        speaker_model: SpeakerModelGetter | None = None,
        keywords: KeywordCompiler | None = None,
    ) -> None:
        self.source = source
        self._speaker_model = speaker_model
        self._keywords = keywords
        self._decoding = PLAIN
        self.options = options
        self.request_id = request_id
        self._worker = worker
        self._what = what
        self._on_release = on_release
        self._cancel = threading.Event()
        self._released = False
        self._release_lock = threading.Lock()
        self._bridge: ThreadBridge[SessionEvent] | None = None
        #: The audio's duration: the source's once the run started (a file's probe; not read
        #: here, so a door never probes on its event loop), exactly what was decoded at the end.
        self.duration: float = 0.0

    # -- synchronous face --------------------------------------------------------------------

    def events(self) -> Generator[SessionEvent, None, None]:
        """Run on this thread; ends with a :class:`DoneEvent` or a :class:`FailedEvent`.

        Never raises for a failed run. The place and the source are released when the
        iteration ends, however it ends (a consumer that stops early cancels the run).
        """
        try:
            yield from self._run()
        finally:
            self._release()

    def _run(self) -> Iterator[SessionEvent]:
        options = self.options
        run: pipeline.Transcription | None = None
        labelling: _Labelling | None = None
        try:
            self._decoding = Decoding(options.language, self._keyword_graph())
            labelling = self._speaker_labelling()
            run = pipeline.transcribe(
                self.source,
                self._infer,
                options.pipeline,
                self._cancel,
                start_seconds=options.start_seconds,
                first_segment_id=options.first_segment_id,
                form=options.form,
                on_speech=labelling.feed if labelling is not None else None,
            )
            self.duration = run.duration
            for chunk in run.chunks():
                for segment in chunk.segments:
                    yield SegmentEvent(segment)
                yield ProgressEvent(chunk.end, labelling.state() if labelling else None)
            if self._cancel.is_set():  # an aborted pushed source ends early: not the audio's end
                raise Cancelled("transcription cancelled")
            self.duration = float(run.duration)
            if labelling is not None:
                yield labelling.finish()
        except GeneratorExit:
            raise
        except audio.EmptyAudio as exc:
            if self._cancel.is_set():  # the cancel aborted pushed audio before any was read
                yield self._failed(Cancelled("transcription cancelled"))
                return
            if options.start_seconds <= 0:
                yield self._failed(exc)
                return
            # a resumed run with nothing left after its start: done, labelling included
            self.duration = options.start_seconds
            if labelling is not None:
                yield labelling.finish()
        except BaseException as exc:
            yield self._failed(exc)
            return
        finally:
            if run is not None:
                run.close()  # stops the decoder now, not at garbage collection
        yield DoneEvent(self.duration)

    def _infer(self, batch: list[NDArray[np.float32]]) -> Sequence[Result]:
        """The pipeline's model call: the worker, with this request's language and keywords."""
        return self._worker.infer(batch, self._decoding)

    def _keyword_graph(self) -> ContextGraph | None:
        """The request's keywords (and the server's) compiled once, before any audio is read."""
        if self._keywords is not None:
            return self._keywords(self.options.keywords)
        if self.options.keywords:
            raise ServiceError("internal", "keywords are not available on this path")
        return None

    def _speaker_labelling(self) -> _Labelling | None:
        """The diarizer this run feeds, when speakers are to be labelled."""
        speakers = self.options.speakers
        if speakers is None:
            return None
        if self._speaker_model is None:
            raise ServiceError("internal", "speaker labelling is not available on this path")
        embedder = self._speaker_model()
        known = reference_embeddings(embedder, speakers.known)
        if speakers.state is not None:
            source = self.source
            diarizer = Diarizer.restore(
                embedder, speakers.state, read=lambda spans: read_spans(source, spans)
            )
        else:
            diarizer = Diarizer(embedder)
        return _Labelling(diarizer, speakers, known)

    def _failed(self, exc: BaseException) -> FailedEvent:
        return FailedEvent(failure_of(exc, self.request_id, what=self._what), exc)

    # -- asynchronous face -------------------------------------------------------------------

    def start(self, *, name: str | None = None) -> None:
        """Run on a thread of its own; read the events with :meth:`next` (event loop only)."""
        self._bridge = ThreadBridge(
            self.events,
            on_error=self._failed,
            on_cancel=self._stop,
            on_exit=self._release,
            name=name or f"transcribe-{self.request_id[-8:]}",
        )
        self._bridge.start()

    async def next(self, timeout: float) -> SessionEvent | None:
        """The next event, or None if none came within ``timeout`` seconds."""
        if self._bridge is None:
            raise RuntimeError("start() the session first")
        return await self._bridge.next(timeout)

    @property
    def finished(self) -> threading.Event:
        """Set once a started session has released everything."""
        if self._bridge is None:
            raise RuntimeError("start() the session first")
        return self._bridge.finished

    # -- both --------------------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Stop at the next step; idempotent, from any thread. A started session then still
        delivers its last event (a :class:`FailedEvent` saying ``cancelled``)."""
        if self._bridge is not None:
            self._bridge.cancel()
        else:
            self._stop()

    def _stop(self) -> None:
        self._cancel.set()
        try:
            self._worker.cancel()
        except Exception:
            log.exception("cancelling %s %s failed", self._what, self.request_id)
        self.source.abort()  # pushed audio: wake a reader waiting for more

    def _release(self) -> None:
        with self._release_lock:
            if self._released:
                return
            self._released = True
        try:
            self._worker.close()
        finally:
            if self._on_release is not None:
                self._on_release()


class _Labelling:
    """A run's speaker labelling: the diarizer fed each recognised chunk's audio."""

    def __init__(
        self,
        diarizer: Diarizer,
        options: SpeakerOptions,
        known: list[tuple[str, NDArray[np.float32]]],
    ) -> None:
        self.diarizer = diarizer
        self.options = options
        self.known = known
        self._end = 0.0

    def feed(self, start: float, end: float, wave: NDArray[np.float32]) -> None:
        """A recognised chunk; a chunk that overlaps the previous one gives only what is new."""
        if start < self._end:
            wave = wave[round((self._end - start) * SAMPLE_RATE) :]
            start = self._end
        if end > start and wave.size:
            self.diarizer.add_region(start, end, wave)
            self._end = end

    def state(self) -> bytes | None:
        return self.diarizer.snapshot() if self.options.keep_state else None

    def finish(self) -> SpeakersEvent:
        result = self.diarizer.finish(self.options.count, self.known)
        return SpeakersEvent(tuple(result.turns), tuple(result.speakers))
