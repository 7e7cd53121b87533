"""One Wyoming connection: a small state machine around a recorded utterance.

The conversation Home Assistant holds for speech-to-text is ``describe`` → ``info`` on one
connection, and ``transcribe`` → ``audio-start`` → ``audio-chunk``… → ``audio-stop`` →
``transcript`` on another. States:

* idle: ``describe``, ``ping``, ``transcribe`` (optional) and ``audio-start`` are expected;
* recording (after ``audio-start``): ``audio-chunk`` and ``audio-stop``;
* transcribing (after ``audio-stop``): events are not read until the transcript is sent.

Anything else is answered with an ``error`` event: an event this server does not know keeps
the connection (a newer client may send more than we understand), an event out of order, a
chunk that contradicts its ``audio-start`` or a broken frame closes it — after such an event
the two sides no longer agree on where the utterance stands. An utterance that cannot be
transcribed (model still loading, queue full, undecodable audio) also gets ``error`` and a
closed connection: Home Assistant ignores error events and waits for a transcript or for the
connection to end. A client that sends nothing for
``WYOMING_TIMEOUT`` seconds is dropped (told why if it was mid-utterance), so a stalled
client never holds a connection slot or its audio. Nothing a client sends can raise out of
:meth:`WyomingHandler.run`: the worst outcome is this connection closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler

from gigaam_api.audio import RawFormat
from gigaam_api.service.languages import normalise_language
from gigaam_api.wyoming.audio import AudioFormatError, Utterance, format_of
from gigaam_api.wyoming.protocol import ProtocolError, read_event, supports_streaming_transcripts
from gigaam_api.wyoming.transcriber import TranscriptionFailed

if TYPE_CHECKING:
    from gigaam_api.config import Settings
    from gigaam_api.service.metrics import Metrics
    from gigaam_api.wyoming.transcriber import Transcriber


class ConnectionHost(Protocol):
    """What a connection needs from the server that accepted it (the server implements it).

    A protocol rather than an import of ``server``, so the two modules do not import each other.
    """

    settings: Settings
    metrics: Metrics
    transcriber: Transcriber

    def info_event(self) -> Event: ...


log = logging.getLogger(__name__)


class _Close(Exception):
    """Send ``error`` (when given) and close the connection."""

    def __init__(self, code: str | None = None, text: str = "") -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class _ClientGone(Exception):
    """The client stopped reading: an event could not be delivered within the timeout."""


class WyomingHandler(AsyncEventHandler):
    """Serves one client connection of :class:`~gigaam_api.wyoming.server.WyomingServer`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        server: ConnectionHost,
        on_exit: Callable[[WyomingHandler], None],
    ) -> None:
        super().__init__(reader, writer)
        self.server = server
        self.connection_id = uuid.uuid4().hex[:12]
        self.log = logging.LoggerAdapter(log, {"wyoming_connection": self.connection_id})
        self._on_exit = on_exit
        self._utterance: Utterance | None = None
        self._utterances = 0
        self._client_version: str | None = None
        self._task: asyncio.Task[Any] | None = None
        #: The language the last ``transcribe`` asked for (``None``: not asked, or auto).
        self._language: str | None = None

    # -- connection loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Read and handle events until the client leaves, breaks the protocol or stalls."""
        self._task = asyncio.current_task()
        self._is_running = True
        peer = self.writer.get_extra_info("peername")
        self.log.info("wyoming client connected from %s", peer)
        try:
            while self._is_running:
                try:
                    incoming = await asyncio.wait_for(
                        read_event(self.reader), self.server.settings.wyoming_timeout
                    )
                except TimeoutError:
                    self._timed_out()
                    raise _Close("timeout", self._timeout_text()) from None
                except ProtocolError as exc:
                    self.log.warning("wyoming protocol error: %s", exc.text)
                    raise _Close(exc.code, exc.text) from None
                if incoming is None:
                    break
                if incoming.version is not None:
                    self._client_version = incoming.version
                if not await self.handle_event(incoming.event):
                    break
        except _Close as close:
            if close.code is not None:
                await self._send_quietly(Error(text=close.text, code=close.code).event())
        except (ConnectionError, asyncio.IncompleteReadError, _ClientGone):
            self.log.info("wyoming client went away")
        except asyncio.CancelledError:
            self.log.info("wyoming connection closed by the server")
        except Exception:
            self.log.exception("wyoming connection failed")
            await self._send_quietly(Error(text="internal error", code="internal_error").event())
        finally:
            # Bookkeeping first: a second cancellation during the await below must not leak
            # the connection slot or the pushed audio.
            # the last line of the connection is written before its slot is given back
            self._discard_utterance()
            self.log.info("wyoming client disconnected")
            self._on_exit(self)
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 1.0)

    async def write_event(self, event: Event) -> None:
        """Send an event; a client that does not read it within the timeout is given up on."""
        try:
            await asyncio.wait_for(
                async_write_event(event, self.writer), self.server.settings.wyoming_timeout
            )
        except TimeoutError:
            raise _ClientGone() from None

    @property
    def task(self) -> asyncio.Task[Any] | None:
        """The task running :meth:`run` (None until it started)."""
        return self._task

    async def stop(self) -> None:
        """Server shutdown: end this connection now, cancelling a transcription under way."""
        self._is_running = False
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        else:
            self.writer.close()

    # -- events ----------------------------------------------------------------------------

    async def handle_event(self, event: Event) -> bool:
        kind = event.type
        if Describe.is_type(kind):
            info = self.server.info_event()
            await self.write_event(info)
            return True
        if Ping.is_type(kind):
            await self.write_event(Pong(text=event.data.get("text")).event())
            return True
        if Transcribe.is_type(kind):
            if self._utterance is not None:
                raise _Close("out_of_order", "transcribe while an utterance is being recorded")
            request = Transcribe.from_event(event)
            self.log.debug("transcribe name=%s language=%s", request.name, request.language)
            self._language = self._requested_language(request.language)
            return True
        if AudioStart.is_type(kind):
            if self._utterance is not None:
                raise _Close("out_of_order", "audio-start while an utterance is being recorded")
            self._utterance = Utterance(
                self._format(event), self.server.settings.wyoming_max_seconds
            )
            return True
        if AudioChunk.is_type(kind):
            utterance = self._recording("audio-chunk")
            try:
                cut = utterance.add(self._format(event), event.payload or b"")
            except AudioFormatError as exc:
                raise _Close("bad_audio", str(exc)) from None
            if cut:
                self.log.warning(
                    "wyoming utterance longer than WYOMING_MAX_SECONDS=%g s: the rest is dropped",
                    self.server.settings.wyoming_max_seconds,
                )
            return True
        if AudioStop.is_type(kind):
            utterance = self._recording("audio-stop")
            self._utterance = None
            await self._transcribe(utterance)
            return True
        self.log.info("wyoming: unsupported event %r", kind[:64])
        await self.write_event(
            Error(text=f"unsupported event type {kind[:64]!r}", code="unsupported_event").event()
        )
        return True

    def _requested_language(self, language: str | None) -> str | None:
        """``transcribe``'s language (``ru``, ``ru-RU``, empty: none), or close with an error
        naming it when the loaded model does not transcribe it (Home Assistant offers only the
        languages ``info`` lists)."""
        code = normalise_language(language)
        if code is None:
            return None
        served = self.server.transcriber.languages
        if code not in served:
            raise _Close(
                "unsupported_language",
                f"language {language!r} is not transcribed by this model ({', '.join(served)})",
            )
        return code

    def _recording(self, what: str) -> Utterance:
        if self._utterance is None:
            raise _Close("out_of_order", f"{what} without audio-start")
        return self._utterance

    @staticmethod
    def _format(event: Event) -> RawFormat:
        try:
            return format_of(event.data)
        except AudioFormatError as exc:
            raise _Close("bad_audio", str(exc)) from None

    # -- the transcript --------------------------------------------------------------------

    async def _transcribe(self, utterance: Utterance) -> None:
        pushed = utterance.finish()
        seconds = utterance.seconds
        stream = supports_streaming_transcripts(self._client_version)
        self._utterances += 1
        request_id = f"wyoming-{self.connection_id}-{self._utterances}"
        metrics = self.server.metrics
        language = self._language or self.server.transcriber.languages[0]
        if stream:
            await self.write_event(TranscriptStart(language=language).event())
        if utterance.frames == 0:  # audio-stop without audio: nothing was said
            await self._send_transcript("", stream, language)
            return

        async def send_delta(delta: str) -> None:
            await self.write_event(TranscriptChunk(text=delta).event())

        try:
            result = await self.server.transcriber.transcribe(
                pushed, request_id, send_delta if stream else None, language=self._language
            )
        except TranscriptionFailed as exc:
            metrics.wyoming_utterances.labels(outcome=exc.outcome).inc()
            self.log.warning("wyoming utterance %s failed: %s", request_id, exc.text)
            # Error, then close: Home Assistant waits for a transcript or the end of the
            # connection and ignores error events, so only closing ends its wait at once.
            raise _Close(exc.code, exc.text) from None
        except asyncio.CancelledError:
            metrics.wyoming_utterances.labels(outcome="cancelled").inc()
            raise
        metrics.observe_wyoming_utterance(seconds)
        self.log.info(
            "wyoming utterance %s: %.2f s of audio transcribed in %.2f s",
            request_id,
            seconds,
            result.processing_seconds,
        )
        await self._send_transcript(result.text, stream, language)

    async def _send_transcript(self, text: str, stream: bool, language: str) -> None:
        # Streaming clients get the plain transcript too, between the last chunk and the stop
        # (the protocol keeps it for compatibility); Home Assistant takes its text from it.
        await self.write_event(Transcript(text=text, language=language).event())
        if stream:
            await self.write_event(TranscriptStop().event())

    # -- helpers ---------------------------------------------------------------------------

    def _timed_out(self) -> None:
        if self._utterance is not None:
            self.log.warning(
                "wyoming client stalled mid-utterance for %g s: dropped",
                self.server.settings.wyoming_timeout,
            )
        else:
            self.log.info(
                "wyoming client idle for %g s: closed", self.server.settings.wyoming_timeout
            )

    def _timeout_text(self) -> str:
        return f"nothing received for {self.server.settings.wyoming_timeout:g} s"

    def _discard_utterance(self) -> None:
        if self._utterance is not None:
            self._utterance.discard()
            self._utterance = None

    async def _send_quietly(self, event: Event) -> None:
        """Best effort: the client may already be gone."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(async_write_event(event, self.writer), 1.0)


class RefusingHandler(AsyncEventHandler):
    """Answers a connection over ``WYOMING_MAX_CLIENTS`` with an ``error`` and closes it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int):
        super().__init__(reader, writer)
        self.limit = limit

    async def run(self) -> None:
        log.warning("wyoming connection refused: WYOMING_MAX_CLIENTS=%d reached", self.limit)
        with contextlib.suppress(Exception):
            text = f"the server is busy: {self.limit} Wyoming clients are connected"
            await asyncio.wait_for(
                async_write_event(Error(text=text, code="too_many_clients").event(), self.writer),
                1.0,
            )
        self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        return False
