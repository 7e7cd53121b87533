"""A live session's recogniser thread: every turn's final, and interim text while it is spoken.

The listener (:mod:`gigaam_api.service.live_listener`) cuts the session's audio into turns and
hands them here as :class:`Turn` values: a *final* for every committed turn, in order, and at
most one *interim* (the open turn so far) at a time. One thread runs them one after the other,
each as a core session (:mod:`gigaam_api.service.session`) over the turn's own audio pushed as
the client sent it, so:

* a **final** is interactive work, exactly what ``POST /v1/audio/transcriptions`` answers for
  that audio (not counted against ``MAX_QUEUE``: the door bounds sessions); a final that
  arrives while an interim runs cancels the interim;
* an **interim** is *interim* work, which the scheduler runs only while no interactive batch
  waits and skips rather than queues; of its text only the words two successive hypotheses
  agree on are sent (:func:`~.live_turns.stable_delta`), and none of a turn that has moved on
  (cleared, committed, or replaced by a new one: :meth:`Recogniser.open_turn_changed`).

It is apart from the listener because it is the one place that runs the model; the two share
the session's lock (a :class:`threading.Condition`), under which the handoff happens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gigaam_api.audio import PushedAudio, RawFormat
from gigaam_api.config import Settings, pipeline_options
from gigaam_api.formats import transcript_text
from gigaam_api.service.errors import ServiceError
from gigaam_api.service.live_events import (
    LiveEvent,
    LiveOptions,
    TranscriptCompleted,
    TranscriptDelta,
    TranscriptFailed,
)
from gigaam_api.service.live_turns import final_delta, stable_delta
from gigaam_api.service.model_service import ModelService
from gigaam_api.service.session import (
    DoneEvent,
    FailedEvent,
    Priority,
    SegmentEvent,
    Session,
    SessionOptions,
    admit,
)
from gigaam_api.transcript import Segment, Transcript, Word

__all__ = ["Recogniser", "Turn"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Turn:
    """A turn handed to the recogniser: its audio as the client sent it."""

    item_id: str
    pcm: bytes
    start_ms: int
    end_ms: int
    final: bool
    generation: int = 0
    #: When the turn was handed over (``time.perf_counter``): what a final's latency counts.
    queued_at: float = 0.0


class Recogniser:
    """The recognitions of one live session (see the module doc). The listener's calls
    (:meth:`queue_final`, :meth:`offer_interim`, …) come from its thread; :meth:`run` is the
    recogniser's thread; :meth:`close` and :attr:`busy` may be called from any thread."""

    def __init__(
        self,
        service: ModelService,
        settings: Settings,
        fmt: RawFormat,
        options: LiveOptions,
        emit: Callable[[LiveEvent], None],
        *,
        session_id: str,
        cond: threading.Condition,
    ) -> None:
        self.service = service
        self.settings = settings
        self.format = fmt
        self.session_id = session_id
        self._options = options
        self._emit = emit
        self._cond = cond  # the session's lock: guards everything below but _interim_text
        self._closed = False
        self._recognising = False  # a recognition is running
        self._finals: deque[Turn] = deque()
        self._interim: Turn | None = None
        self._generation = 0  # the open turn's: an interim of an older one is stale
        self._current: Session | None = None
        self._current_final = False  # whether the recognition in flight is a final
        self._interim_text: dict[str, tuple[str | None, str]] = {}  # item → (last hyp, sent)

    # -- the listener's calls ----------------------------------------------------------------

    def configure(self, options: LiveOptions) -> None:
        """The language and keywords of every recognition that starts from now on."""
        self._options = options

    def open_turn_changed(self) -> None:
        """The open turn (or buffer) is another one now: an interim of the old one is stale."""
        with self._cond:
            self._generation += 1

    def queue_final(self, turn: Turn) -> None:
        """Queue ``turn``'s final; an interim in flight would hold it up, so it is cancelled."""
        with self._cond:
            if self._interim is not None and self._interim.item_id == turn.item_id:
                self._interim = None
            self._finals.append(turn)
            interim = None if self._current_final else self._current
            self._cond.notify_all()
        if interim is not None:  # a draft in flight would hold up the final: drop it
            interim.cancel()

    def interim_welcome(self) -> bool:
        """Whether an interim may be offered now: no final waits and the last interim has run.
        Only the listener adds work, so the answer holds until it offers one."""
        with self._cond:
            return not self._finals and self._interim is None

    def offer_interim(self, turn: Turn) -> None:
        """Recognise ``turn`` (the open turn so far) when no final waits."""
        with self._cond:
            turn.generation = self._generation
            self._interim = turn
            self._cond.notify_all()

    def drop_interim(self) -> None:
        """The open turn was cleared: its waiting interim is not run."""
        with self._cond:
            self._interim = None

    # -- any thread --------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A recognition waits or runs."""
        with self._cond:
            return bool(self._finals or self._interim or self._recognising)

    def close(self) -> Session | None:
        """Drop what waits and stop the thread; the recognition in flight, for the caller to
        cancel once it has let go of the lock."""
        with self._cond:
            self._closed = True
            self._finals.clear()
            self._interim = None
            self._cond.notify_all()
            return self._current

    # -- the recogniser thread ---------------------------------------------------------------

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._finals and self._interim is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                if self._finals:
                    turn = self._finals.popleft()
                else:
                    assert self._interim is not None
                    turn = self._interim
                    self._interim = None
                self._recognising = True
            try:
                if turn.final:
                    self._final(turn)
                else:
                    self._interim_of(turn)
            except Exception:
                log.exception("live session %s: recognition failed", self.session_id)
                if turn.final:
                    error = ServiceError("internal", "Internal error while transcribing")
                    self._emit(TranscriptFailed(turn.item_id, error))
            finally:
                with self._cond:
                    self._recognising = False

    def _final(self, turn: Turn) -> None:
        words: list[Word] = []
        text = self._run(turn, "interactive", words)
        self._count("final", text)
        if isinstance(text, ServiceError):
            self._interim_text.pop(turn.item_id, None)
            if text.kind != "cancelled" or not self._closed:
                self._emit(TranscriptFailed(turn.item_id, text))
            return
        _, sent = self._interim_text.pop(turn.item_id, (None, ""))
        delta = final_delta(sent, text)
        if delta:
            self._emit(TranscriptDelta(turn.item_id, delta))
        seconds = len(turn.pcm) / self.format.frame_bytes / self.format.rate
        self.service.metrics.live_final_seconds.observe(time.perf_counter() - turn.queued_at)
        self._emit(
            TranscriptCompleted(
                turn.item_id, text, seconds, turn.start_ms, turn.end_ms, tuple(words)
            )
        )

    def _count(self, kind: str, result: str | ServiceError) -> None:
        if isinstance(result, str):
            outcome = "ok"
        elif result.code == "skipped":
            outcome = "skipped"
        else:
            outcome = result.outcome
        self.service.metrics.live_recognitions.labels(kind=kind, outcome=outcome).inc()

    def _interim_of(self, turn: Turn) -> None:
        text = self._run(turn, "interim")
        self._count("interim", text)
        if isinstance(text, ServiceError):
            return  # skipped (more urgent work waits) or failed: the final will tell
        with self._cond:
            stale = turn.generation != self._generation or any(
                final.item_id == turn.item_id for final in self._finals
            )
        previous, sent = self._interim_text.get(turn.item_id, (None, ""))
        delta = stable_delta(sent, previous, text)
        if stale:
            return
        for item in [i for i in self._interim_text if i != turn.item_id]:
            with self._cond:  # an item whose turn was cleared never gets its final
                pending = any(final.item_id == item for final in self._finals)
            if not pending:
                del self._interim_text[item]
        self._interim_text[turn.item_id] = (text, sent + delta)
        if delta:
            self._emit(TranscriptDelta(turn.item_id, delta))

    def _run(
        self, turn: Turn, priority: Priority, words: list[Word] | None = None
    ) -> str | ServiceError:
        """The text of ``turn``'s audio, as ``POST /v1/audio/transcriptions`` gives it (and its
        words, on the session's clock, added to ``words`` when given)."""
        if not turn.pcm:
            return ""
        request_id = f"{self.session_id}-{turn.item_id[-8:]}"
        try:
            place = admit(self.service, request_id, priority, bounded=False)
        except ServiceError as exc:
            return exc
        pushed = PushedAudio(self.format, max_seconds=0)
        pushed.push(turn.pcm)
        pushed.end()
        options = SessionOptions(
            pipeline=pipeline_options(self.settings),
            language=self._options.language,
            keywords=self._options.keywords,
        )
        session = place.session(pushed, options, on_release=pushed.abort)
        with self._cond:
            if self._closed or (priority == "interim" and self._finals):
                session.cancel()
            self._current = session
            self._current_final = priority != "interim"
        segments: list[Segment] = []
        try:
            for event in session.events():
                if isinstance(event, SegmentEvent):
                    segments.append(event.segment)
                elif isinstance(event, DoneEvent):
                    if words is not None:
                        offset = turn.start_ms / 1000
                        words.extend(
                            Word(w.text, w.start + offset, w.end + offset)
                            for segment in segments
                            for w in segment.words
                        )
                    return transcript_text(Transcript(segments=segments, duration=event.duration))
                elif isinstance(event, FailedEvent):
                    return event.error
        finally:
            with self._cond:
                self._current = None
        return ServiceError("internal", "the recognition ended without a result")
