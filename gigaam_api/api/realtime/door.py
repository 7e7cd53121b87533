"""The WebSocket door at ``/v1/realtime`` (and ``/realtime``): OpenAI's Realtime transcription.

A thin handler over the core's :class:`~gigaam_api.service.live.LiveSession` (the turns, the
recognitions). The route lets a connection in (:mod:`.gate`: ``Origin``, key, intent,
readiness, ``REALTIME_MAX_SESSIONS``), then runs its session loop, which is this module:

* **receive** — one client message at a time, bounded by ``REALTIME_MAX_MESSAGE_KB``, with
  ``REALTIME_IDLE_TIMEOUT`` (no client message for that long) and
  ``REALTIME_MAX_SESSION_SECONDS``; each event parsed as JSON and handed to the connection's
  :class:`~.client_session.ClientSession`, whose errors become ``error`` events and the session
  goes on; a ``session.finish`` answered with ``session.finished`` (:mod:`.recording`);
* **send** — the core's events, which arrive on the session's threads, moved onto the event
  loop, noted by the recording and written as server events (:mod:`.server_events`) by one
  sender task, through an outbox bounded at :data:`MAX_OUTBOX` (a client that sends but never
  reads is closed).

The session's threads end with the connection, whatever ends it, and a recording asked for is
kept even when the socket just goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Final

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from gigaam_api.api.context import AppContext
from gigaam_api.api.errors import ApiError
from gigaam_api.api.realtime.client_session import ClientSession
from gigaam_api.api.realtime.gate import CLOSE_NORMAL, RealtimeSessions, admit
from gigaam_api.api.realtime.recording import finished_event, wants_save
from gigaam_api.api.realtime.server_events import error_event, event_id, live_event
from gigaam_api.api.realtime.session_config import Dialect, WireError
from gigaam_api.service.errors import ServiceError
from gigaam_api.service.live_events import LiveEvent, SessionBusy

__all__ = ["MAX_OUTBOX", "realtime_router"]

log = logging.getLogger(__name__)

#: Server events waiting to be sent at most: a client that sends but never reads is dropped.
MAX_OUTBOX: Final = 2000

realtime_router = APIRouter()


@realtime_router.websocket("/realtime")
async def realtime(websocket: WebSocket) -> None:
    dialect = await admit(websocket)
    if dialect is None:
        return
    ctx: AppContext = websocket.app.state.ctx
    sessions: RealtimeSessions = websocket.app.state.realtime
    metrics = ctx.metrics.live_sessions
    metrics.inc()
    try:
        await _Connection(ctx, websocket, dialect).run()
    finally:
        metrics.dec()
        sessions.give_back()


class _Connection:
    """One client's live session on the wire: the receive loop, the outbox and its sender."""

    def __init__(self, ctx: AppContext, websocket: WebSocket, dialect: Dialect) -> None:
        self.settings = ctx.settings
        self.websocket = websocket
        self.session = ClientSession(
            ctx,
            dialect,
            app=websocket.app,
            save=wants_save(websocket.query_params.get("save")),
            send=self._send,
            emit=self._emit,
        )
        self._out: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        #: Set when the outbox overflowed: the connection is closed.
        self._stalled = False
        self._loop = asyncio.get_running_loop()

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        self._send(self.session.created())
        opened = self._loop.time()
        log.info("live session %s opened", self.session.id)
        try:
            await self._receive_loop()
        finally:
            log.info(
                "live session %s closed after %.1f s", self.session.id, self._loop.time() - opened
            )
            if self.session.live is not None:
                self.session.live.close()
            if self.session.recording is not None:
                await self.session.recording.keep()  # gone without a finish: keep what was heard
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
                log.warning("live session %s: the client reads nothing; closed", self.session.id)
                return
            if self.session.finishing:  # the client's audio ended: last finals, the job, bye
                event = await finished_event(self.session.recording, self.session.live)
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
            await self.session.dispatch(event)
        except WireError as exc:
            self._error(exc.message, code=exc.code, param=exc.param, client_event_id=client_id)
        except ApiError as exc:
            self._error(exc.message, code=exc.code, param=exc.param, client_event_id=client_id)
        except ServiceError as exc:
            self._error(exc.message, code=exc.code, param=exc.param, client_event_id=client_id)
        except SessionBusy as exc:
            self._error(str(exc), code="rate_limit_exceeded", client_event_id=client_id)

    # -- sending -------------------------------------------------------------------------

    def _emit(self, event: LiveEvent) -> None:
        """From the session's threads: queue the event for the sender (loop thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to tell
            self._loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: LiveEvent) -> None:
        recording = self.session.recording
        if recording is None or not recording.observe(event):
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
