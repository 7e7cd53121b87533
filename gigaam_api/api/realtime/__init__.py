"""Live transcription over WebSocket: OpenAI's Realtime API in transcription mode.

:mod:`.wire` reads and writes the events (GA and beta names), :mod:`.door` is the route
(``/v1/realtime`` and ``/realtime``): origin, key, limits, and the loop that hands audio to a
:class:`~gigaam_api.service.live.LiveSession` of the core. The protocol as implemented is in
``docs/realtime.md``.
"""

from gigaam_api.api.realtime.door import RealtimeSessions, realtime_router

__all__ = ["RealtimeSessions", "realtime_router"]
