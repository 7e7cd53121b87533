"""The WebSocket door at ``/v1/realtime`` (and ``/realtime``): OpenAI's Realtime transcription.

A thin handler: it checks who may connect, reads each client event
(:mod:`~gigaam_api.api.realtime.wire`), hands audio and commands to a
:class:`~gigaam_api.service.live.LiveSession` (the turns, the recognitions: the core's) and
writes the core's events back. Per connection:

* **Origin** — a browser page from another origin cannot open a session in its visitor's
  browser: an ``Origin`` that is neither the server's own (its ``Host``) nor listed in
  ``ALLOWED_ORIGINS`` is refused before the handshake completes (HTTP 403). Programs send no
  ``Origin``.
* **Key** — with ``API_KEY`` set, ``Authorization: Bearer`` (programs) or the
  ``openai-insecure-api-key.<key>`` subprotocol (browsers, which cannot set headers). The key
  subprotocol is never echoed: the handshake answers ``realtime`` (or the beta
  ``openai-beta.realtime-v1``) when offered. A wrong key gets an ``error`` event
  (``invalid_api_key``) and the close code 1008, so a page can say why.
* **Limits** — ``REALTIME_MAX_SESSIONS`` open at once (one more: an ``error`` event and close
  1013, never a hang), ``REALTIME_MAX_SESSION_SECONDS``, ``REALTIME_IDLE_TIMEOUT`` (no client
  message for that long), ``REALTIME_MAX_MESSAGE_KB`` per message, and the session's bounded
  backlog of audio not yet scored. Every bad event is an ``error`` event and the session goes
  on; the session's threads end with the connection, whatever ends it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import threading
import uuid
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from gigaam_api.api.auth import supplied_key
from gigaam_api.api.context import AppContext
from gigaam_api.api.errors import ApiError
from gigaam_api.api.live_recording import FINISH_EVENT, LiveRecording, finished_event, wants_save
from gigaam_api.api.params import check_language, check_model
from gigaam_api.api.realtime.wire import (
    Dialect,
    SessionConfig,
    WireError,
    error_event,
    event_id,
    expiry,
    live_event,
    parse_session_update,
    session_event,
)
from gigaam_api.audio import RawFormat
from gigaam_api.audio.g711 import expand
from gigaam_api.keyword_list import KeywordListError, parse_entries
from gigaam_api.service.errors import ServiceError
from gigaam_api.service.keywords import Keyword, keywords_of
from gigaam_api.service.languages import normalise_language
from gigaam_api.service.live import LiveEvent, LiveOptions, LiveSession, SessionBusy

__all__ = ["RealtimeSessions", "realtime_router"]

log = logging.getLogger(__name__)

KEY_PROTOCOL: Final = "openai-insecure-api-key."
BETA_PROTOCOL: Final = "openai-beta.realtime-v1"
#: Close codes: policy violation (key, origin), try again later (full, not ready), normal.
CLOSE_POLICY: Final = 1008
CLOSE_TRY_LATER: Final = 1013
CLOSE_NORMAL: Final = 1000
#: Server events waiting to be sent at most: a client that sends but never reads is dropped.
MAX_OUTBOX: Final = 2000

realtime_router = APIRouter()


class RealtimeSessions:
    """How many live sessions are open (``app.state.realtime``), bounded by the setting."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        with self._lock:
            return self._open

    def take(self) -> bool:
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self._open -= 1


_DEFAULT_PORTS: Final = (80, 443)


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """Whether a page at ``origin`` may open a session on the server reached as ``host``.

    The server's own origin is the ``Host`` the browser connected to: same host name and port
    (a default port, 80 or 443, equals no port — behind a TLS proxy the server sees ``ws`` while
    the page is ``https``, so the scheme is not compared).
    """
    if origin is None:
        return True  # not a browser page: programs are judged by their key
    if "*" in allowed or origin.rstrip("/") in (a.rstrip("/") for a in allowed):
        return True
    try:
        page = urlsplit(origin)
        own = urlsplit(f"//{host}") if host else None
        page_port, own_port = page.port, own.port if own else None
    except ValueError:
        return False
    if own is None or not page.hostname or page.hostname != own.hostname:
        return False
    return (page_port if page_port not in _DEFAULT_PORTS else None) == (
        own_port if own_port not in _DEFAULT_PORTS else None
    )


def _key_from_protocols(protocols: list[str]) -> str | None:
    for protocol in protocols:
        if protocol.startswith(KEY_PROTOCOL):
            return protocol[len(KEY_PROTOCOL) :]
    return None


@realtime_router.websocket("/realtime")
async def realtime(websocket: WebSocket) -> None:
    ctx: AppContext = websocket.app.state.ctx
    headers = websocket.headers
    settings = ctx.settings
    if not origin_allowed(headers.get("origin"), headers.get("host"), settings.allowed_origins):
        log.warning("live session refused: origin %s not allowed", headers.get("origin"))
        await websocket.close(code=CLOSE_POLICY)
        return
    protocols = list(websocket.scope.get("subprotocols") or [])
    chosen = next((p for p in ("realtime", BETA_PROTOCOL) if p in protocols), None)
    beta = BETA_PROTOCOL in protocols or "realtime=v1" in headers.get("openai-beta", "")
    await websocket.accept(subprotocol=chosen)
    connection = _Connection(ctx, websocket, "beta" if beta else "ga")
    refusal = connection.refusal(_key_from_protocols(protocols))
    if refusal is not None:
        event, code = refusal
        with contextlib.suppress(Exception):
            await websocket.send_text(json.dumps(event))
            await websocket.close(code=code)
        return
    sessions: RealtimeSessions = websocket.app.state.realtime
    if not sessions.take():
        with contextlib.suppress(Exception):
            await websocket.send_text(
                json.dumps(
                    error_event(
                        f"The server has {sessions.limit} live sessions open, its maximum; "
                        "try again later.",
                        code="session_limit_reached",
                        type="server_error",
                    )
                )
            )
            await websocket.close(code=CLOSE_TRY_LATER)
        return
    metrics = ctx.metrics.live_sessions
    metrics.inc()
    try:
        await connection.run()
    finally:
        metrics.dec()
        sessions.give_back()


class _Connection:
    """One client's live session on the wire."""

    def __init__(self, ctx: AppContext, websocket: WebSocket, dialect: Dialect) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.websocket = websocket
        self.dialect: Dialect = dialect
        self.id = f"sess_{uuid.uuid4().hex[:20]}"
        self.config = SessionConfig()
        self.expires_at = expiry(self.settings.realtime_max_session_seconds)
        self.live: LiveSession | None = None
        #: ``audio.input.transcription.keywords`` as read and checked (``KEYWORDS`` is merged
        #: in when each turn's session compiles them).
        self.keywords: tuple[Keyword, ...] = ()
        # this server's extensions (api/live_recording.py): session.finish, and ?save=true
        self.recording: LiveRecording | None = None
        self._finishing = False
        self._out: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        #: Set when the outbox overflowed: the connection is closed.
        self._stalled = False
        self._loop = asyncio.get_running_loop()

    def refusal(self, protocol_key: str | None) -> tuple[dict[str, Any], int] | None:
        """Why this connection may not have a session (the event and close code), or None."""
        api_key = self.settings.api_key
        if api_key:
            key = supplied_key(self.websocket.headers) or protocol_key
            if key is None or not hmac.compare_digest(key.encode(), api_key.encode()):
                message = (
                    "Incorrect API key provided."
                    if key is not None
                    else "You didn't provide an API key. Send 'Authorization: Bearer <API_KEY>' "
                    f"or the WebSocket subprotocol '{KEY_PROTOCOL}<API_KEY>'."
                )
                return error_event(message, code="invalid_api_key"), CLOSE_POLICY
        intent = self.websocket.query_params.get("intent")
        if intent not in (None, "transcription"):
            return (
                error_event(
                    "Only transcription sessions are served here: connect with "
                    "?intent=transcription",
                    param="intent",
                ),
                CLOSE_POLICY,
            )
        service = self.ctx.service
        if not service.ready:
            reason = service.error if service.state == "failed" else "the model is loading"
            return (
                error_event(
                    f"The service is not ready: {reason}; try again later.",
                    code="model_not_ready",
                    type="server_error",
                ),
                CLOSE_TRY_LATER,
            )
        return None

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        self._send(session_event("created", self.dialect, self.id, self.config, self.expires_at))
        opened = self._loop.time()
        log.info("live session %s opened", self.id)
        try:
            await self._receive_loop()
        finally:
            log.info("live session %s closed after %.1f s", self.id, self._loop.time() - opened)
            if self.live is not None:
                self.live.close()
            if self.recording is not None:
                await self.recording.keep()  # gone without a finish: keep what was heard
            self._out.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, 5)
            sender.cancel()
            if self.websocket.client_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await self.websocket.close(code=CLOSE_NORMAL)

    async def _receive_loop(self) -> None:
        limit = self.settings.realtime_max_message_kb * 1024
        deadline = self._loop.time() + self.settings.realtime_max_session_seconds
        while True:
            remaining = deadline - self._loop.time()
            wait = min(self.settings.realtime_idle_timeout, remaining)
            try:
                message = await asyncio.wait_for(self.websocket.receive(), max(wait, 0.001))
            except (WebSocketDisconnect, RuntimeError):  # gone mid-read
                return
            except TimeoutError:
                if self._loop.time() >= deadline:
                    self._fail("Your session hit its maximum duration.", "session_expired")
                else:
                    self._fail(
                        f"No event for {self.settings.realtime_idle_timeout:g} s: the session "
                        "was closed.",
                        "idle_timeout",
                    )
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                size = len(message.get("bytes") or b"")
                if size > limit:
                    self._oversize(size, limit)
                else:
                    self._error(
                        "Binary frames are not taken: send JSON events as text.",
                        code="invalid_event",
                    )
                continue
            if len(text) > limit:
                self._oversize(len(text), limit)
            else:
                await self._handle_text(text)
            if self._stalled:
                log.warning("live session %s: the client reads nothing; closed", self.id)
                return
            if self._finishing:  # the client's audio ended: last finals, the saved job, bye
                event = await finished_event(self.recording, self.live)
                self._send({"event_id": event_id(), **event})
                return

    def _oversize(self, size: int, limit: int) -> None:
        self._error(
            f"The message is {size} bytes; at most {limit} are taken (REALTIME_MAX_MESSAGE_KB): "
            "send the audio in smaller appends.",
            code="message_too_large",
        )

    async def _handle_text(self, text: str) -> None:
        try:
            event = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python goes
            self._error("The message is not valid JSON.", code="invalid_json")
            return
        if not isinstance(event, dict):
            self._error("An event must be a JSON object.", code="invalid_event")
            return
        client_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        try:
            await self._dispatch(event)
        except WireError as exc:
            self._error(exc.message, code=exc.code, param=exc.param, client_event_id=client_id)
        except ApiError as exc:
            self._error(exc.message, code=exc.code, param=exc.param, client_event_id=client_id)
        except ServiceError as exc:
            self._error(exc.message, code=exc.code, param=exc.param, client_event_id=client_id)
        except SessionBusy as exc:
            self._error(str(exc), code="rate_limit_exceeded", client_event_id=client_id)

    async def _dispatch(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind in ("session.update", "transcription_session.update"):
            await self._update(event, "beta" if kind == "transcription_session.update" else "ga")
        elif kind == "input_audio_buffer.append":
            self._append(event)
        elif kind == "input_audio_buffer.commit":
            self._only(event, "input_audio_buffer.commit")
            self._session().commit()
        elif kind == FINISH_EVENT:
            self._only(event, FINISH_EVENT)
            self._finishing = True
        elif kind == "input_audio_buffer.clear":
            self._only(event, "input_audio_buffer.clear")
            self._session().clear()
        elif isinstance(kind, str):
            raise WireError(
                f"Invalid value: '{kind}'. This server serves transcription sessions: "
                "session.update, transcription_session.update, input_audio_buffer.append, "
                "input_audio_buffer.commit and input_audio_buffer.clear.",
                param="type",
                code="invalid_event",
            )
        else:
            raise WireError("An event needs a string 'type'.", param="type", code="invalid_event")

    @staticmethod
    def _only(event: Mapping[str, Any], name: str, *extra: str) -> None:
        for key in event:
            if key not in ("type", "event_id", *extra):
                raise WireError(
                    f"Unknown parameter: '{key}' in {name}.", param=key, code="unknown_parameter"
                )

    async def _update(self, event: Mapping[str, Any], dialect: Dialect) -> None:
        self._only(event, str(event.get("type")), "session")
        config = parse_session_update(event, self.config)
        where = (
            "session.audio.input.transcription"
            if dialect == "ga"
            else "session.input_audio_transcription"
        )
        try:  # the HTTP door's own checks, their param named as the session's field
            check_model(config.model, self.settings)
            language = normalise_language(config.language)
            check_language(language, self.ctx.service.languages, self.settings.model)
        except ApiError as exc:
            raise WireError(
                exc.message, param=f"{where}.{exc.param}", code=exc.code or ""
            ) from None
        keywords = self.keywords
        if config.keywords != self.config.keywords:
            keywords = await self._keywords(config.keywords, f"{where}.keywords")
        if self.live is not None and config.format != self.config.format:
            raise WireError(
                "The audio format cannot change once audio was sent: open a new session.",
                param="session.audio.input.format"
                if dialect == "ga"
                else "session.input_audio_format",
            )
        self.config = config
        self.keywords = keywords
        self.dialect = dialect
        if self.live is not None:
            self.live.configure(self._options())
        self._send(session_event("updated", dialect, self.id, config, self.expires_at))

    async def _keywords(self, entries: tuple[str, ...], param: str) -> tuple[Keyword, ...]:
        """The session's ``keywords`` read as every door reads them (``keyword_list.py``) and
        checked against the served model, off the event loop (a first compile of a long list
        takes a moment), so a phrase it cannot write is an ``error`` naming it now rather than
        a failed turn later."""
        try:
            specs = parse_entries(entries, max_boost=self.settings.keywords_max_boost)
        except KeywordListError as exc:
            raise WireError(exc.message, param=param, code="invalid_value") from None
        keywords = keywords_of(specs)
        try:
            await anyio.to_thread.run_sync(self.ctx.service.check_keywords, keywords)
        except ServiceError as exc:
            raise WireError(exc.message, param=param, code=exc.code or "invalid_value") from None
        return keywords

    def _options(self) -> LiveOptions:
        return LiveOptions(
            turn_detection=self.config.turn_detection,
            language=normalise_language(self.config.language),
            keywords=self.keywords,
        )

    def _session(self) -> LiveSession:
        if self.live is None:
            fmt = self.config.format
            self.live = LiveSession(
                self.ctx.service,
                self.settings,
                RawFormat(fmt.pcm_rate, 2, 1),
                self._options(),
                self._emit,
                session_id=self.id,
            )
            save = wants_save(self.websocket.query_params.get("save"))
            self.recording = LiveRecording.for_app(self.websocket.app, self.live.format, save)
        return self.live

    def _append(self, event: Mapping[str, Any]) -> None:
        self._only(event, "input_audio_buffer.append", "audio")
        audio = event.get("audio")
        if not isinstance(audio, str):
            raise WireError("'audio' must be a base64 string.", param="audio")
        try:
            payload = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise WireError("'audio' is not valid base64.", param="audio") from None
        law = self.config.format.law
        if law is not None:
            payload = expand(payload, law)
        elif len(payload) % 2:
            raise WireError(
                f"'audio' holds {len(payload)} bytes: 16-bit PCM needs a whole number of "
                "2-byte samples.",
                param="audio",
                code="invalid_audio_format",
            )
        if payload:
            self._session().append(payload)
            if self.recording is not None:
                self.recording.push(payload)

    # -- sending -------------------------------------------------------------------------

    def _emit(self, event: LiveEvent) -> None:
        """From the session's threads: queue the event for the sender (loop thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to tell
            self._loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: LiveEvent) -> None:
        if self.recording is None or not self.recording.observe(event):
            self._send(live_event(event))

    def _send(self, event: dict[str, Any]) -> None:
        if self._out.qsize() >= MAX_OUTBOX:
            self._stalled = True
            return
        self._out.put_nowait(event)

    def _error(
        self,
        message: str,
        *,
        code: str | None,
        param: str | None = None,
        client_event_id: str | None = None,
    ) -> None:
        self._send(error_event(message, code=code, param=param, client_event_id=client_event_id))

    def _fail(self, message: str, code: str) -> None:
        self._send(error_event(message, code=code))

    async def _send_loop(self) -> None:
        while True:
            event = await self._out.get()
            if event is None:
                return
            try:
                await self.websocket.send_text(json.dumps(event, ensure_ascii=False))
            except (WebSocketDisconnect, RuntimeError, OSError):
                return
