"""Per-request context: ``x-request-id``, the access log line, HTTP metrics, crash envelope.

A plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: that one re-wraps
streaming bodies and hides client disconnects, which would break SSE and cancellation.

* Every response carries ``x-request-id`` (the SDKs expose it as ``request_id``); a sane id
  sent by the client or a proxy is kept so logs correlate across hops.
* One log line per request with id, method, path, status, audio seconds and processing time,
  written when the response has finished (for SSE: when the stream ends).
* An exception nothing else handled becomes a 500 OpenAI envelope (with the request id)
  instead of Starlette's plain-text page.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gigaam_api.api.errors import error_response, internal_error
from gigaam_api.api.record import RequestRecord, attach_record
from gigaam_api.service.metrics import Metrics

access_log = logging.getLogger("gigaam_api.access")
log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Status logged and counted when the client went away before the response was complete.
CLIENT_CLOSED = 499


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SANE_ID.match(candidate):
                return str(candidate)
    return new_request_id()


def route_label(scope: Scope) -> str:
    """The matched route's template (bounded label values), else ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        record = attach_record(scope.setdefault("state", {}), request_id)
        started = time.perf_counter()
        status: int | None = None
        complete = False
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status, complete
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [h for h in message.get("headers", []) if h[0].lower() != header[0]]
                message = {**message, "headers": [*headers, header]}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if status is None:
                response = error_response(internal_error())
                await response(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            final = status if (status is not None and complete) else CLIENT_CLOSED
            if record.client_disconnected:
                final = CLIENT_CLOSED
            self._record(scope, record, final, seconds)

    def _record(self, scope: Scope, record: RequestRecord, status: int, seconds: float) -> None:
        route = route_label(scope)
        method = str(scope.get("method", ""))
        self.metrics.observe_request(route, method, status, seconds)
        extra: dict[str, Any] = {
            "request_id": record.request_id,
            "method": method,
            "path": scope.get("path", ""),
            "status": status,
            "processing_seconds": round(seconds, 4),
        }
        extra.update(record.log_fields())
        access_log.info("%s %s %s", method, scope.get("path", ""), status, extra=extra)
