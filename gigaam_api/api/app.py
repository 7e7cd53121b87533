"""The FastAPI application of the HTTP door, over a service core built elsewhere.

``build_app(ctx, lifespan=...)`` returns an app with every route served both under ``/v1``
and at the root, every error in the OpenAI envelope and ``x-request-id`` on every response,
plus the web page when ``WEB_UI`` is on. What the process runs — the core, the Wyoming door,
the durable jobs, and the lifespan that starts and stops them — is put together by
:func:`gigaam_api.server.create_app`, which the HTTP layer never imports: this module knows
only the HTTP side.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from gigaam_api import __version__
from gigaam_api.api.context import AppContext
from gigaam_api.api.errors import install_error_handlers
from gigaam_api.api.job_routes import job_router
from gigaam_api.api.middleware import RequestContextMiddleware
from gigaam_api.api.realtime import RealtimeSessions, realtime_router
from gigaam_api.api.routes import router
from gigaam_api.jobs.lifecycle import JobsState
from gigaam_api.web import install_web

#: The app's lifespan: starts what serves it, yields while it runs, stops it.
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def build_app(ctx: AppContext, *, lifespan: Lifespan | None = None) -> FastAPI:
    """The HTTP app over ``ctx`` (``app.state.ctx``); ``app.state.jobs`` starts empty and is
    filled by whoever starts the durable jobs."""
    app = FastAPI(
        title="gigaam-api",
        version=__version__,
        summary="OpenAI-compatible Russian speech recognition on GigaAM",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ctx = ctx
    app.state.jobs = JobsState()
    app.state.realtime = RealtimeSessions(ctx.settings.realtime_max_sessions)
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=ctx.metrics)
    app.include_router(router, prefix="/v1")
    app.include_router(router)
    app.include_router(job_router, prefix="/v1")
    app.include_router(job_router)
    app.include_router(realtime_router, prefix="/v1")
    app.include_router(realtime_router)
    if ctx.settings.web_ui:
        install_web(app)
    return app
