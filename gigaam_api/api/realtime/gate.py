"""Who may open a live session: the ``Origin``, the key, the intent, readiness, the count.

Everything the realtime door decides before a session exists, in the order it decides it:

* **Origin** — a browser page from another origin cannot open a session in its visitor's
  browser: an ``Origin`` that is neither the server's own (its ``Host``) nor listed in
  ``ALLOWED_ORIGINS`` is refused before the handshake completes (HTTP 403). Programs send no
  ``Origin``.
* **Subprotocol** — the handshake answers ``realtime`` (or the beta ``openai-beta.realtime-v1``)
  when offered, never the key; the beta subprotocol or ``OpenAI-Beta: realtime=v1`` opens the
  session in the beta dialect.
* **Key** — with ``API_KEY`` set, ``Authorization: Bearer`` (programs) or the
  ``openai-insecure-api-key.<key>`` subprotocol (browsers, which cannot set headers). A wrong
  key gets an ``error`` event (``invalid_api_key``) and the close code 1008, so a page can say
  why; so does an ``intent`` other than transcription.
* **Readiness and count** — a model still loading, or ``REALTIME_MAX_SESSIONS`` open already:
  an ``error`` event and close 1013 (try again), never a hang.

A refusal after the handshake is one ``error`` event and a close; the session loop
(:mod:`.door`) starts only when :func:`admit` let the connection in.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import threading
from typing import Any, Final
from urllib.parse import urlsplit

from fastapi import WebSocket

from gigaam_api.api.auth import supplied_key
from gigaam_api.api.context import AppContext
from gigaam_api.api.realtime.server_events import error_event
from gigaam_api.api.realtime.session_config import Dialect

__all__ = [
    "BETA_PROTOCOL",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_TRY_LATER",
    "KEY_PROTOCOL",
    "RealtimeSessions",
    "admit",
    "origin_allowed",
]

log = logging.getLogger(__name__)

KEY_PROTOCOL: Final = "openai-insecure-api-key."
BETA_PROTOCOL: Final = "openai-beta.realtime-v1"
#: Close codes: policy violation (key, origin), try again later (full, not ready), normal.
CLOSE_POLICY: Final = 1008
CLOSE_TRY_LATER: Final = 1013
CLOSE_NORMAL: Final = 1000


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


async def admit(websocket: WebSocket) -> Dialect | None:
    """Let ``websocket`` in, or refuse it (see the module doc). On a dialect, the handshake is
    done and the caller holds one of ``app.state.realtime``'s places, to give back when the
    session ends; on ``None``, the connection was refused and closed."""
    ctx: AppContext = websocket.app.state.ctx
    headers = websocket.headers
    settings = ctx.settings
    if not origin_allowed(headers.get("origin"), headers.get("host"), settings.allowed_origins):
        log.warning("live session refused: origin %s not allowed", headers.get("origin"))
        await websocket.close(code=CLOSE_POLICY)
        return None
    protocols = list(websocket.scope.get("subprotocols") or [])
    chosen = next((p for p in ("realtime", BETA_PROTOCOL) if p in protocols), None)
    beta = BETA_PROTOCOL in protocols or "realtime=v1" in headers.get("openai-beta", "")
    await websocket.accept(subprotocol=chosen)
    refused = refusal(ctx, websocket, _key_from_protocols(protocols))
    if refused is not None:
        event, code = refused
        with contextlib.suppress(Exception):
            await websocket.send_text(json.dumps(event))
            await websocket.close(code=code)
        return None
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
        return None
    return "beta" if beta else "ga"


def refusal(
    ctx: AppContext, websocket: WebSocket, protocol_key: str | None
) -> tuple[dict[str, Any], int] | None:
    """Why this connection may not have a session (the event and close code), or None."""
    settings = ctx.settings
    api_key = settings.api_key
    if api_key:
        key = supplied_key(websocket.headers) or protocol_key
        if key is None or not hmac.compare_digest(key.encode(), api_key.encode()):
            message = (
                "Incorrect API key provided."
                if key is not None
                else "You didn't provide an API key. Send 'Authorization: Bearer <API_KEY>' "
                f"or the WebSocket subprotocol '{KEY_PROTOCOL}<API_KEY>'."
            )
            return error_event(message, code="invalid_api_key"), CLOSE_POLICY
    intent = websocket.query_params.get("intent")
    if intent not in (None, "transcription"):
        return (
            error_event(
                "Only transcription sessions are served here: connect with ?intent=transcription",
                param="intent",
            ),
            CLOSE_POLICY,
        )
    service = ctx.service
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
