"""Live transcription over WebSocket: OpenAI's Realtime API in transcription mode.

The door, one module per idea: :mod:`.gate` decides who may open a session (``Origin``, key,
intent, readiness, the session count), :mod:`.door` is the route (``/v1/realtime`` and
``/realtime``) and each connection's receive and send loop, :mod:`.client_session` acts on
each client event over a :class:`~gigaam_api.service.live.LiveSession` of the core;
:mod:`.session_update` reads ``session.update`` (GA and beta names) into a
:class:`~.session_config.SessionConfig`, and :mod:`.server_events` writes the server events;
:mod:`.recording` is this server's ``session.finish`` and ``?save=true``. The protocol as
implemented is in ``docs/realtime.md``.
"""

from gigaam_api.api.realtime.door import realtime_router
from gigaam_api.api.realtime.gate import RealtimeSessions

__all__ = ["RealtimeSessions", "realtime_router"]
