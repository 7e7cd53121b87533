"""One live transcription session: audio pushed as it is spoken, turns, interim and final text.

The core side of OpenAI's Realtime transcription (the WebSocket door is
``api/realtime/``, which only parses and writes the wire). A :class:`LiveSession` takes the
client's raw audio (:meth:`~LiveSession.append`), finds turns with the Silero VAD the server
already has (:mod:`gigaam_api.service.live_turns`, OpenAI's ``server_vad``) or lets the client
commit them (``turn_detection: null``), and reports typed events (:data:`LiveEvent`) through
the ``emit`` callback it was given. Every recognition is a core session
(:mod:`gigaam_api.service.session`) over the turn's own audio, pushed as the client sent it
(:class:`~gigaam_api.audio.PushedAudio`, the same conversion an uploaded WAV of those bytes
gets), so:

* a turn's **final** text is exactly what ``POST /v1/audio/transcriptions`` answers for that
  audio; finals are *interactive* work like a short HTTP request (not counted against
  ``MAX_QUEUE``: the door bounds sessions with ``REALTIME_MAX_SESSIONS``);
* the **interim** text of the turn still being spoken is the same recognition of its audio so
  far, run at most every ``interim_seconds`` and as *interim* work, which the scheduler runs
  only while no interactive batch waits and skips rather than queues (``Skipped``); only
  words two successive hypotheses agree on are sent (:func:`~.live_turns.stable_delta`).

Two threads per session, so neither a model call nor the VAD ever runs on the event loop: the
*listener* converts, scores and cuts the audio in the order the door's calls arrived; the
*recogniser* runs the finals in order and, when none waits, the latest interim. Memory is
bounded: the raw audio kept is the open turn (at most ``max_turn_seconds``, cut at a pause)
or, with client commits, the uncommitted buffer (at most ``max_buffer_seconds``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from gigaam_api.audio import PushedAudio, RawFormat
from gigaam_api.config import Settings, pipeline_options
from gigaam_api.formats import transcript_text
from gigaam_api.service.errors import ServiceError
from gigaam_api.service.keywords import Keyword
from gigaam_api.service.live_turns import (
    WINDOW_MS,
    IdleTimeout,
    TurnDetection,
    TurnDetector,
    TurnEnded,
    TurnStarted,
    final_delta,
    stable_delta,
)
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
from gigaam_api.vad import BATCH_WINDOWS, CONTEXT, WINDOW, SileroModel, default_model

__all__ = [
    "Cleared",
    "Committed",
    "LiveError",
    "LiveEvent",
    "LiveLimits",
    "LiveOptions",
    "LiveSession",
    "SessionBusy",
    "SpeechStarted",
    "SpeechStopped",
    "TimeoutTriggered",
    "TranscriptCompleted",
    "TranscriptDelta",
    "TranscriptFailed",
]

log = logging.getLogger(__name__)

#: The shortest buffer a client may commit (OpenAI's rule).
MIN_COMMIT_MS: Final = 100
#: Client calls waiting for the listener at most (a flood of appends beyond it is refused)…
MAX_BACKLOG: Final = 4096
#: …and seconds of audio waiting in them (one append of any size is taken when none waits).
MAX_BACKLOG_SECONDS: Final = 60.0


class SessionBusy(Exception):
    """The session's backlog of calls not yet handled is full: the client sends too fast."""


# -- what a session is told --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """What the client chose (``session.update``); changeable between turns."""

    #: ``None``: the client commits turns itself.
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    #: ISO 639-1, already checked against the served model; ``None``: the model chooses.
    language: str | None = None
    #: Names and terms to listen for, already checked against the served model (``KEYWORDS``
    #: is merged in by each turn's session, as for an HTTP request).
    keywords: tuple[Keyword, ...] = ()


@dataclass(frozen=True, slots=True)
class LiveLimits:
    """The server's bounds on one session (settings)."""

    #: Longest turn: longer speech is cut at a pause into turns of at most this.
    max_turn_seconds: float = 22.0
    #: Most uncommitted audio kept with client commits (``REALTIME_MAX_BUFFER_SECONDS``).
    max_buffer_seconds: float = 300.0
    #: Least time between two interim recognitions of a turn; 0: no interim text.
    interim_seconds: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LiveLimits:
        return cls(
            max_turn_seconds=settings.vad_max_duration,
            max_buffer_seconds=settings.realtime_max_buffer_seconds,
            interim_seconds=settings.realtime_interim_seconds,
        )


# -- what a session reports --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    item_id: str
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class Committed:
    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class Cleared:
    pass


@dataclass(frozen=True, slots=True)
class TimeoutTriggered:
    item_id: str
    audio_start_ms: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class TranscriptCompleted:
    item_id: str
    transcript: str
    #: Seconds of audio in the turn (OpenAI's ``usage`` of type ``duration``).
    seconds: float
    audio_start_ms: int
    audio_end_ms: int
    #: The turn's timed words, seconds from the start of the session's audio (not on the wire:
    #: a saved recording's word timings, api/live_recording.py).
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class TranscriptFailed:
    item_id: str
    error: ServiceError


@dataclass(frozen=True, slots=True)
class LiveError:
    """A client's request the session could not follow (the door sends an ``error`` event)."""

    code: str
    message: str
    param: str | None = None


LiveEvent = (
    SpeechStarted
    | SpeechStopped
    | Committed
    | Cleared
    | TimeoutTriggered
    | TranscriptDelta
    | TranscriptCompleted
    | TranscriptFailed
    | LiveError
)


def new_item_id() -> str:
    return f"item_{uuid.uuid4().hex[:20]}"


# -- the VAD's probabilities, streamed ---------------------------------------------------------


class _Scorer:
    """Silero's speech probability for every whole 32 ms window of a 16 kHz stream."""

    def __init__(self, model: SileroModel) -> None:
        self._model = model
        self._state = model.initial_state()
        self._buffer = np.zeros(CONTEXT, dtype=np.float32)

    def feed(self, pcm: np.ndarray) -> list[float]:
        audio = pcm.astype(np.float32) / np.float32(32768.0)
        buffer = np.concatenate([self._buffer, audio])
        windows = (buffer.size - CONTEXT) // WINDOW
        out: list[float] = []
        for first in range(0, windows, BATCH_WINDOWS):
            count = min(BATCH_WINDOWS, windows - first)
            part = buffer[first * WINDOW : (first + count) * WINDOW + CONTEXT]
            probs, self._state = self._model.run(part, self._state)
            out.extend(float(p) for p in probs)
        self._buffer = buffer[windows * WINDOW :].copy()
        return out


# -- the session -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Turn:
    """A turn handed to the recogniser: its audio as the client sent it."""

    item_id: str
    pcm: bytes
    start_ms: int
    end_ms: int
    final: bool
    generation: int = 0
    #: When the turn was handed over (``time.perf_counter``): what a final's latency counts.
    queued_at: float = 0.0


class LiveSession:
    """One live session over the core (see the module doc). Its methods may be called from any
    thread and never block on recognition; events arrive through ``emit`` from its threads."""

    def __init__(
        self,
        service: ModelService,
        settings: Settings,
        fmt: RawFormat,
        options: LiveOptions,
        emit: Callable[[LiveEvent], None],
        *,
        session_id: str,
        limits: LiveLimits | None = None,
        vad_model: SileroModel | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.format = fmt
        self.options = options
        self.limits = limits or LiveLimits.from_settings(settings)
        self.session_id = session_id
        self._emit = emit
        self._commands: deque[tuple[str, object]] = deque()
        self._pending_bytes = 0  # audio in the commands waiting
        self._max_pending = int(MAX_BACKLOG_SECONDS * fmt.rate) * fmt.frame_bytes
        self._cond = threading.Condition()
        self._closed = False
        self._handling = False  # the listener is handling a call
        self._recognising = False  # the recogniser is running a recognition
        # listener state (its thread only)
        self._vad_model = vad_model or default_model()
        self._drain = threading.Event()
        self._drain.set()
        self._start_vad(0)
        self._raw = bytearray()  # raw input kept, from frame ``_raw_start``
        self._raw_start = 0
        self._frames = 0  # raw input frames received
        self._item: str | None = None  # the open turn's item (VAD) or the buffer's (commits)
        self._turn_start_ms = 0
        self._previous_item: str | None = None
        self._last_interim = 0.0
        self._generation = 0
        # recogniser state (shared under _cond)
        self._finals: deque[_Turn] = deque()
        self._interim: _Turn | None = None
        self._current: Session | None = None
        self._current_final = False  # whether the recognition in flight is a final
        self._interim_text: dict[str, tuple[str | None, str]] = {}  # item → (last hyp, sent)
        self.finished = threading.Event()
        self._threads = [
            threading.Thread(target=self._listen, name=f"live-{session_id[-8:]}", daemon=True),
            threading.Thread(
                target=self._recognise, name=f"live-asr-{session_id[-8:]}", daemon=True
            ),
        ]
        for thread in self._threads:
            thread.start()

    # -- the door's calls (any thread) -------------------------------------------------------

    def append(self, pcm: bytes) -> None:
        """Raw audio in the session's format (a whole number of frames).

        Raises :class:`SessionBusy` (the audio is dropped) while :data:`MAX_BACKLOG` calls
        wait: a client flooding the session is told, and its memory stays bounded.
        """
        with self._cond:
            if len(self._commands) >= MAX_BACKLOG:
                raise SessionBusy(
                    f"{MAX_BACKLOG} events are waiting to be handled: this audio was dropped; "
                    "send fewer, larger appends."
                )
            if self._pending_bytes and self._pending_bytes + len(pcm) > self._max_pending:
                raise SessionBusy(
                    f"{MAX_BACKLOG_SECONDS:g} s of audio are waiting to be handled: this audio "
                    "was dropped; send it no faster than the server takes it."
                )
            self._pending_bytes += len(pcm)
        self._command("append", pcm)

    def commit(self) -> None:
        self._command("commit", None)

    def clear(self) -> None:
        self._command("clear", None)

    def configure(self, options: LiveOptions) -> None:
        """New options: the turn detection applies from the next turn, the language to every
        recognition that starts from now on."""
        self._command("configure", options)

    @property
    def kept_seconds(self) -> float:
        """Seconds of raw audio the session holds now (the open turn, the prefix, or the
        uncommitted buffer): what bounds its memory."""
        return len(self._raw) / self.format.frame_bytes / self.format.rate

    @property
    def settled(self) -> bool:
        """Every call so far has been handled and no recognition waits or runs."""
        with self._cond:
            busy = self._commands or self._finals or self._interim or self._recognising
            return not busy and not self._handling

    def close(self) -> None:
        """End the session: drop what waits, cancel the recognition in flight. Returns at once;
        :attr:`finished` is set once both threads have ended."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._commands.clear()
            self._finals.clear()
            self._interim = None
            current = self._current
            self._cond.notify_all()
        if current is not None:
            current.cancel()
        threading.Thread(target=self._join, name="live-close", daemon=True).start()

    def _join(self) -> None:
        for thread in self._threads:
            thread.join()
        self.finished.set()

    def _command(self, name: str, value: object) -> None:
        with self._cond:
            if self._closed:
                return
            self._commands.append((name, value))
            self._cond.notify_all()

    # -- the listener thread -----------------------------------------------------------------

    def _listen(self) -> None:
        while True:
            with self._cond:
                while not self._commands and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                name, value = self._commands.popleft()
                if name == "append":  # appends waiting together are handled as one
                    parts = [value]
                    while self._commands and self._commands[0][0] == "append":
                        parts.append(self._commands.popleft()[1])
                    value = b"".join(p for p in parts if isinstance(p, bytes))
                    self._pending_bytes -= len(value)
                self._handling = True
            try:
                self._handle(name, value)
            except Exception:  # a bug: say so to the client, keep the session
                log.exception("live session %s: %s failed", self.session_id, name)
                self._emit(LiveError("server_error", f"Internal error while handling {name}"))
            finally:
                with self._cond:
                    self._handling = False

    def _handle(self, name: str, value: object) -> None:
        if name == "append":
            assert isinstance(value, bytes)
            self._on_audio(value)
        elif name == "commit":
            self._on_commit()
        elif name == "clear":
            self._on_clear()
        elif name == "configure":
            assert isinstance(value, LiveOptions)
            self._on_configure(value)

    def _start_vad(self, at_ms: int, floor_ms: int | None = None) -> None:
        """A fresh VAD stream from ``at_ms`` of the session's audio (its start, or where the
        client turned detection on): the converter, Silero's state and the turn detector.

        With client commits nothing is scored (the detector only keeps the buffer's start).
        """
        # blocks of one VAD window: the end of a turn is heard 32 ms after it, not a block later
        self._vad_audio = PushedAudio(self.format, max_seconds=0, block_samples=WINDOW)
        self._scorer = _Scorer(self._vad_model)
        params = self.options.turn_detection or TurnDetection()
        max_turn = max(round(self.limits.max_turn_seconds * 1000), 4 * WINDOW_MS)
        self._detector = TurnDetector(params, max_turn_ms=max_turn, start_ms=at_ms)
        if floor_ms is not None:
            self._detector.floor_ms = floor_ms

    @property
    def _vad_on(self) -> bool:
        return self.options.turn_detection is not None

    def _ms_to_frame(self, ms: int) -> int:
        return ms * self.format.rate // 1000

    @property
    def _received_ms(self) -> int:
        return self._frames * 1000 // self.format.rate

    def _slice(self, start_ms: int, end_ms: int) -> bytes:
        """The raw bytes of ``[start_ms, end_ms)`` (what is still kept of it)."""
        width = self.format.frame_bytes
        first = max(self._ms_to_frame(start_ms) - self._raw_start, 0)
        last = max(min(self._ms_to_frame(end_ms), self._frames) - self._raw_start, first)
        return bytes(self._raw[first * width : last * width])

    def _keep_from(self, ms: int) -> None:
        """Drop the raw audio before ``ms`` (nothing will need it any more)."""
        frame = max(self._ms_to_frame(ms), self._raw_start)
        drop = min(frame - self._raw_start, self._frames - self._raw_start)
        if drop > 0:
            del self._raw[: drop * self.format.frame_bytes]
            self._raw_start += drop

    def _on_audio(self, pcm: bytes) -> None:
        if not self._vad_on:
            room = int(self.limits.max_buffer_seconds * self.format.rate) - (
                self._frames - self._raw_start
            )
            if len(pcm) > max(room, 0) * self.format.frame_bytes:
                pcm = pcm[: max(room, 0) * self.format.frame_bytes]
                self._emit(
                    LiveError(
                        "input_audio_buffer_full",
                        f"The input audio buffer holds {self.limits.max_buffer_seconds:g} s at "
                        "most: commit or clear it; the audio past that was dropped.",
                    )
                )
                if not pcm:
                    return
        self._raw.extend(pcm)
        self._frames += len(pcm) // self.format.frame_bytes
        if not self._vad_on:  # the client commits: nothing to score, all since the commit kept
            if self._item is None:  # the item the buffer will be committed as
                self._item = new_item_id()
                self._generation += 1
                self._last_interim = time.monotonic()
            self._maybe_interim(self._detector.floor_ms)
            return
        self._vad_audio.push(pcm)
        blocks = []
        while (block := self._vad_audio.take(self._drain)) is not None:
            blocks.append(block)
        if not blocks:
            return
        for change in self._detector.feed(self._scorer.feed(np.concatenate(blocks))):
            self._on_change(change)
        start = self._detector.turn_start_ms
        if start is None:
            prefix = self._detector.params.prefix_padding_ms
            self._keep_from(max(self._detector.now_ms - prefix - WINDOW_MS, 0))
        else:
            self._keep_from(start)
            self._maybe_interim(start)

    def _on_change(self, change: TurnStarted | TurnEnded | IdleTimeout) -> None:
        if isinstance(change, TurnStarted):
            self._item = new_item_id()
            self._generation += 1
            self._last_interim = time.monotonic()
            self._emit(SpeechStarted(self._item, change.start_ms))
            self._turn_start_ms = change.start_ms
        elif isinstance(change, TurnEnded):
            item = self._item or new_item_id()
            self._item = None
            self._emit(SpeechStopped(item, change.end_ms))
            self._finish_turn(item, self._turn_start_ms, change.end_ms)
        else:
            item = new_item_id()
            self._emit(TimeoutTriggered(item, change.start_ms, change.end_ms))

    def _finish_turn(self, item: str, start_ms: int, end_ms: int) -> None:
        """Commit ``[start_ms, end_ms)`` as item ``item`` and queue its final recognition."""
        self._emit(Committed(item, self._previous_item))
        self._previous_item = item
        turn = _Turn(
            item,
            self._slice(start_ms, end_ms),
            start_ms,
            end_ms,
            final=True,
            queued_at=time.perf_counter(),
        )
        with self._cond:
            if self._interim is not None and self._interim.item_id == item:
                self._interim = None
            self._finals.append(turn)
            interim = None if self._current_final else self._current
            self._cond.notify_all()
        if interim is not None:  # a draft in flight would hold up the final: drop it
            interim.cancel()

    def _maybe_interim(self, start_ms: int) -> None:
        interval = self.limits.interim_seconds
        if interval <= 0 or self._item is None:
            return
        now = time.monotonic()
        if now - self._last_interim < interval:
            return
        if self._received_ms - start_ms < 500 or self._detector.pausing:
            return  # too little to say, or the turn may be ending: keep the worker for its final
        if self._received_ms - start_ms > self.limits.max_turn_seconds * 1000:
            return  # a long uncommitted buffer: one pass would no longer do, wait for the commit
        with self._cond:
            if self._finals or self._interim is not None:
                return  # a final waits (or the last interim has not run yet): not now
            self._last_interim = now
            self._interim = _Turn(
                self._item,
                self._slice(start_ms, self._received_ms),
                start_ms,
                self._received_ms,
                final=False,
                generation=self._generation,
            )
            self._cond.notify_all()

    def _on_commit(self) -> None:
        end = self._received_ms
        if self._vad_on:
            start = self._detector.turn_start_ms
            if start is None:  # no speech heard: what is kept since the last turn
                start = max(self._detector.floor_ms, -(-self._raw_start * 1000 // self.format.rate))
            item = self._item or new_item_id()
            was_open = self._item is not None
        else:
            start = self._detector.floor_ms
            item = self._item or new_item_id()
            was_open = False
        if end - start < MIN_COMMIT_MS:
            self._emit(
                LiveError(
                    "input_audio_buffer_commit_empty",
                    "Error committing input audio buffer: buffer too small. Expected at least "
                    f"{MIN_COMMIT_MS}ms of audio, but buffer only has {max(end - start, 0)}ms "
                    "of audio.",
                )
            )
            return
        if was_open:
            self._emit(SpeechStopped(item, end))
        self._item = None
        self._generation += 1
        self._finish_turn(item, start, end)
        self._after_turn(end)

    def _after_turn(self, end_ms: int) -> None:
        self._detector.end_turn(end_ms)
        self._keep_from(end_ms)

    def _on_clear(self) -> None:
        end = self._received_ms
        self._item = None
        self._generation += 1
        with self._cond:
            self._interim = None
        self._detector.reset(end)
        self._keep_from(end)
        self._emit(Cleared())

    def _on_configure(self, options: LiveOptions) -> None:
        was_on = self._vad_on
        self.options = options
        if options.turn_detection is None:
            if was_on and self._item is not None:
                # detection turned off mid-turn: the open turn becomes the uncommitted buffer
                self._detector.floor_ms = self._detector.turn_start_ms or self._detector.floor_ms
                self._detector.reset(self._detector.floor_ms)
                self._item = None
                self._generation += 1
            return
        if not was_on:  # turned on: scored from here; a commit before speech takes what is kept
            self._item = None  # the buffer's item: a turn will have its own
            self._generation += 1
            self._start_vad(self._received_ms, floor_ms=self._detector.floor_ms)
        else:  # the open turn keeps its start; the new parameters apply to what follows
            self._detector.params = options.turn_detection

    # -- the recogniser thread ---------------------------------------------------------------

    def _recognise(self) -> None:
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

    def _final(self, turn: _Turn) -> None:
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

    def _interim_of(self, turn: _Turn) -> None:
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
        self, turn: _Turn, priority: Priority, words: list[Word] | None = None
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
            language=self.options.language,
            keywords=self.options.keywords,
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
