"""A live session's listener thread: the client's audio → 16 kHz → Silero VAD → turns.

The door's calls reach a live session (:mod:`gigaam_api.service.live`) in the order they were
made, and the listener handles them one at a time on its own thread (so the VAD never runs on
the event loop): an append is kept as the client sent it, converted to 16 kHz mono by the one
resampler (:class:`~gigaam_api.audio.PushedAudio`) and scored by Silero one 32 ms window at a
time; the turn detector (:mod:`gigaam_api.service.live_turns`, OpenAI's ``server_vad``) says
where turns start and end, or the client commits them (``turn_detection: null``). Each ended
turn is handed to the recogniser (:mod:`gigaam_api.service.live_recogniser`) as its raw bytes,
with an interim of the open turn now and then, and the events of the audio
(``speech_started``, ``committed``…) are emitted here.

Memory is bounded: the raw audio kept is the open turn (at most ``max_turn_seconds``, cut at a
pause) plus the prefix padding or, with client commits, the uncommitted buffer (at most
``max_buffer_seconds``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

import numpy as np

from gigaam_api.audio import PushedAudio, RawFormat
from gigaam_api.service.live_events import (
    Cleared,
    Committed,
    LiveError,
    LiveEvent,
    LiveLimits,
    LiveOptions,
    SpeechStarted,
    SpeechStopped,
    TimeoutTriggered,
    new_item_id,
)
from gigaam_api.service.live_recogniser import Recogniser, Turn
from gigaam_api.service.live_turns import (
    WINDOW_MS,
    IdleTimeout,
    TurnDetection,
    TurnDetector,
    TurnEnded,
    TurnStarted,
)
from gigaam_api.vad import BATCH_WINDOWS, CONTEXT, WINDOW, SileroModel

__all__ = ["MIN_COMMIT_MS", "Listener"]

#: The shortest buffer a client may commit (OpenAI's rule).
MIN_COMMIT_MS: Final = 100


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


class Listener:
    """The audio side of one live session (see the module doc): the raw audio kept, the VAD
    stream and the open turn. Only the listener thread calls it, one command at a time."""

    def __init__(
        self,
        fmt: RawFormat,
        options: LiveOptions,
        limits: LiveLimits,
        emit: Callable[[LiveEvent], None],
        recogniser: Recogniser,
        vad_model: SileroModel,
    ) -> None:
        self.format = fmt
        self.options = options
        self.limits = limits
        self._emit = emit
        self._recogniser = recogniser
        self._vad_model = vad_model
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

    def handle(self, name: str, value: object) -> None:
        """One of the door's calls: ``append`` (bytes), ``commit``, ``clear``, ``configure``."""
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

    @property
    def kept_seconds(self) -> float:
        """Seconds of raw audio held now (the open turn, the prefix, or the uncommitted
        buffer): what bounds the session's memory."""
        return len(self._raw) / self.format.frame_bytes / self.format.rate

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
                self._recogniser.open_turn_changed()
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
            self._recogniser.open_turn_changed()
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
        turn = Turn(
            item,
            self._slice(start_ms, end_ms),
            start_ms,
            end_ms,
            final=True,
            queued_at=time.perf_counter(),
        )
        self._recogniser.queue_final(turn)

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
        if not self._recogniser.interim_welcome():
            return  # a final waits (or the last interim has not run yet): not now
        self._last_interim = now
        self._recogniser.offer_interim(
            Turn(
                self._item,
                self._slice(start_ms, self._received_ms),
                start_ms,
                self._received_ms,
                final=False,
            )
        )

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
        self._recogniser.open_turn_changed()
        self._finish_turn(item, start, end)
        self._after_turn(end)

    def _after_turn(self, end_ms: int) -> None:
        self._detector.end_turn(end_ms)
        self._keep_from(end_ms)

    def _on_clear(self) -> None:
        end = self._received_ms
        self._item = None
        self._recogniser.open_turn_changed()
        self._recogniser.drop_interim()
        self._detector.reset(end)
        self._keep_from(end)
        self._emit(Cleared())

    def _on_configure(self, options: LiveOptions) -> None:
        was_on = self._vad_on
        self.options = options
        self._recogniser.configure(options)
        if options.turn_detection is None:
            if was_on and self._item is not None:
                # detection turned off mid-turn: the open turn becomes the uncommitted buffer
                self._detector.floor_ms = self._detector.turn_start_ms or self._detector.floor_ms
                self._detector.reset(self._detector.floor_ms)
                self._item = None
                self._recogniser.open_turn_changed()
            return
        if not was_on:  # turned on: scored from here; a commit before speech takes what is kept
            self._item = None  # the buffer's item: a turn will have its own
            self._recogniser.open_turn_changed()
            self._start_vad(self._received_ms, floor_ms=self._detector.floor_ms)
        else:  # the open turn keeps its start; the new parameters apply to what follows
            self._detector.params = options.turn_detection
