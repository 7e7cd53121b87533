"""What the HTTP handlers are given: the service core, and what only HTTP needs.

Its own module, not the routes', so the composition root (``server.py``) and every route
module import the context without importing each other's handlers.
"""

from __future__ import annotations

from dataclasses import dataclass

from gigaam_api.api import audio_links
from gigaam_api.service.context import ServiceContext


@dataclass
class AppContext(ServiceContext):
    """What the handlers need, stored on ``app.state.ctx``: the service core every door shares,
    and what only HTTP needs."""

    #: The ``created`` time of the model cards (``/v1/models``): when the server started.
    created: int
    keepalive_seconds: float = 10.0  # well under the 15 s proxies and clients tolerate idle
    #: Lifetime of the signed links to a job's audio this server mints (tests shorten it).
    link_seconds: int = audio_links.LINK_SECONDS
