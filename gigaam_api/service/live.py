"""One live transcription session: audio pushed as it is spoken, turns, interim and final text.

The core side of OpenAI's Realtime transcription (the WebSocket door is
``api/realtime/``, which only parses and writes the wire). A :class:`LiveSession` takes the
client's raw audio (:meth:`~LiveSession.append`), finds turns with the Silero VAD the server
already has (:mod:`gigaam_api.service.live_turns`, OpenAI's ``server_vad``) or lets the client
commit them (``turn_detection: null``), and reports typed events
(:data:`~gigaam_api.service.live_events.LiveEvent`) through the ``emit`` callback it was
given. Every recognition is a core session (:mod:`gigaam_api.service.session`) over the turn's
own audio, pushed as the client sent it (:class:`~gigaam_api.audio.PushedAudio`, the same
conversion an uploaded WAV of those bytes gets), so:

* a turn's **final** text is exactly what ``POST /v1/audio/transcriptions`` answers for that
  audio; finals are *interactive* work like a short HTTP request (not counted against
  ``MAX_QUEUE``: the door bounds sessions with ``REALTIME_MAX_SESSIONS``);
* the **interim** text of the turn still being spoken is the same recognition of its audio so
  far, run at most every ``interim_seconds`` and as *interim* work, which the scheduler runs
  only while no interactive batch waits and skips rather than queues (``Skipped``); only
  words two successive hypotheses agree on are sent (:func:`~.live_turns.stable_delta`).

Two threads per session, so neither a model call nor the VAD ever runs on the event loop: the
*listener* (:mod:`~gigaam_api.service.live_listener`) converts, scores and cuts the audio in
the order the door's calls arrived; the *recogniser* (:mod:`~gigaam_api.service.live_recogniser`)
runs the finals in order and, when none waits, the latest interim. This module is what the
door holds: the calls, queued in order with a bounded backlog, the two threads, and the close
that ends them. Memory is bounded: the raw audio kept is the open turn (at most
``max_turn_seconds``, cut at a pause) or, with client commits, the uncommitted buffer (at most
``max_buffer_seconds``).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Final

from gigaam_api.audio import RawFormat
from gigaam_api.config import Settings
from gigaam_api.service.live_events import (
    LiveError,
    LiveEvent,
    LiveLimits,
    LiveOptions,
    SessionBusy,
)
from gigaam_api.service.live_listener import Listener
from gigaam_api.service.live_recogniser import Recogniser
from gigaam_api.service.model_service import ModelService
from gigaam_api.vad import SileroModel, default_model

__all__ = ["MAX_BACKLOG", "MAX_BACKLOG_SECONDS", "LiveSession"]

log = logging.getLogger(__name__)

#: Client calls waiting for the listener at most (a flood of appends beyond it is refused)…
MAX_BACKLOG: Final = 4096
#: …and seconds of audio waiting in them (one append of any size is taken when none waits).
MAX_BACKLOG_SECONDS: Final = 60.0


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
        self.limits = limits or LiveLimits.from_settings(settings)
        self.session_id = session_id
        self._emit = emit
        self._commands: deque[tuple[str, object]] = deque()
        self._pending_bytes = 0  # audio in the commands waiting
        self._max_pending = int(MAX_BACKLOG_SECONDS * fmt.rate) * fmt.frame_bytes
        self._cond = threading.Condition()  # the session's one lock, shared by both threads
        self._closed = False
        self._handling = False  # the listener is handling a call
        self._recogniser = Recogniser(
            service, settings, fmt, options, emit, session_id=session_id, cond=self._cond
        )
        self._listener = Listener(
            fmt, options, self.limits, emit, self._recogniser, vad_model or default_model()
        )
        self.finished = threading.Event()
        self._threads = [
            threading.Thread(target=self._listen, name=f"live-{session_id[-8:]}", daemon=True),
            threading.Thread(
                target=self._recogniser.run, name=f"live-asr-{session_id[-8:]}", daemon=True
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
        return self._listener.kept_seconds

    @property
    def settled(self) -> bool:
        """Every call so far has been handled and no recognition waits or runs."""
        with self._cond:
            busy = self._commands or self._handling or self._recogniser.busy
            return not busy

    def close(self) -> None:
        """End the session: drop what waits, cancel the recognition in flight. Returns at once;
        :attr:`finished` is set once both threads have ended."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._commands.clear()
            current = self._recogniser.close()  # under the same lock: one step
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
                self._listener.handle(name, value)
            except Exception:  # a bug: say so to the client, keep the session
                log.exception("live session %s: %s failed", self.session_id, name)
                self._emit(LiveError("server_error", f"Internal error while handling {name}"))
            finally:
                with self._cond:
                    self._handling = False
