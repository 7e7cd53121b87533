"""The Wyoming listener: started and stopped by the server's lifespan, next to the HTTP door.

It uses the ``wyoming`` library's ``AsyncServer`` for the listener (``tcp://`` or ``unix://``
from ``WYOMING_URI``) and hands each connection to a
:class:`~gigaam_api.wyoming.handler.WyomingHandler`, or, beyond ``WYOMING_MAX_CLIENTS``
connections, to a handler that says "busy" and closes. Shutdown closes the listener, ends
every connection (a transcription under way is cancelled, which frees its worker slot) and
waits briefly for them, so the model's worker can stop right after.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlparse

from wyoming.event import Event
from wyoming.server import AsyncEventHandler, AsyncServer

from gigaam_api.config import Settings
from gigaam_api.service.context import ServiceContext
from gigaam_api.service.metrics import Metrics
from gigaam_api.wyoming.handler import RefusingHandler, WyomingHandler
from gigaam_api.wyoming.info import build_info
from gigaam_api.wyoming.transcriber import Transcriber
from gigaam_api.wyoming.zeroconf import Advertiser, advertised_address, service_info

log = logging.getLogger(__name__)

#: How long shutdown waits for connections to wind down before cancelling what is left.
STOP_GRACE_S = 5.0


class WyomingServer:
    """The Wyoming door of one app."""

    def __init__(self, settings: Settings, transcriber: Transcriber, metrics: Metrics) -> None:
        self.settings = settings
        self.transcriber = transcriber
        self.metrics = metrics
        self.handlers: set[WyomingHandler] = set()
        self._server: AsyncServer | None = None
        self._advertiser: Advertiser | None = None

    @property
    def advertiser(self) -> Advertiser | None:
        """The mDNS advertisement (``WYOMING_ZEROCONF``), None when off."""
        return self._advertiser

    @classmethod
    def for_core(cls, ctx: ServiceContext) -> WyomingServer:
        """Build over the server's core: its settings, model service, metrics, spool folder."""
        return cls(ctx.settings, Transcriber.from_context(ctx), ctx.metrics)

    def info_event(self) -> Event:
        return build_info(self.transcriber.model_name, self.transcriber.languages).event()

    @property
    def connections(self) -> int:
        return len(self.handlers)

    async def start(self) -> None:
        uri = self.settings.wyoming_uri
        server = AsyncServer.from_uri(uri)
        await server.start(self._new_handler)
        self._server = server
        log.info("wyoming server listening on %s", uri)
        if self.settings.wyoming_zeroconf:
            parsed = urlparse(uri)
            host = parsed.hostname or ""
            address = advertised_address(host)
            # A server bound to one address is advertised on that interface only.
            interfaces = None if host in ("0.0.0.0", "", "::") else [address]
            self._advertiser = Advertiser(service_info(address, parsed.port or 0), interfaces)
            await self._advertiser.start()

    async def stop(self) -> None:
        """Stop listening and end every connection; returns once they are gone (or cut off)."""
        if self._advertiser is not None:
            await self._advertiser.stop()
        server, self._server = self._server, None
        if server is None:
            return
        handlers = list(self.handlers)
        if handlers:
            log.info("wyoming: closing %d client connection(s)", len(handlers))
        await server.stop()  # closes the listener and calls every handler's stop()
        tasks = [h.task for h in handlers if h.task is not None and not h.task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
        log.info("wyoming server stopped")

    def _new_handler(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> AsyncEventHandler:
        if len(self.handlers) >= self.settings.wyoming_max_clients:
            return RefusingHandler(reader, writer, self.settings.wyoming_max_clients)
        handler = WyomingHandler(reader, writer, self, on_exit=self._handler_done)
        self.handlers.add(handler)
        self.metrics.wyoming_connections.inc()
        return handler

    def _handler_done(self, handler: WyomingHandler) -> None:
        if handler in self.handlers:
            self.handlers.discard(handler)
            self.metrics.wyoming_connections.dec()
