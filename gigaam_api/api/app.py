"""The FastAPI application factory.

``create_app(settings)`` returns an app whose model starts loading in the background when the
server starts (``/health`` says 503 until then), with every route served both under ``/v1``
and at the root, every error in the OpenAI envelope and ``x-request-id`` on every response.
``gigaam-api serve`` runs it with uvicorn; ``create_app_from_env`` is the same thing for
``uvicorn --factory gigaam_api.api.app:create_app_from_env``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from gigaam_api import __version__, audio
from gigaam_api.api.errors import install_error_handlers
from gigaam_api.api.job_routes import JobsState, job_router, start_jobs
from gigaam_api.api.metrics import Metrics
from gigaam_api.api.middleware import RequestContextMiddleware
from gigaam_api.api.routes import AppContext, router
from gigaam_api.api.service import Loader, ModelService
from gigaam_api.api.spool import UploadFolder
from gigaam_api.config import Settings, load_settings
from gigaam_api.logging import configure_logging
from gigaam_api.web import install_web
from gigaam_api.wyoming.server import WyomingServer


def create_app(
    settings: Settings | None = None,
    *,
    loader: Loader | None = None,
    keepalive_seconds: float = 10.0,
    tmp_dir: Path | None = None,
) -> FastAPI:
    """Build the service app.

    ``loader`` replaces how the model is built from settings (default: weights per
    ``CHECKPOINT_PATH``/``MODEL`` → ``load_model``). ``keepalive_seconds`` is the SSE
    keep-alive interval (at most 15 s, see ``docs/api.md``; tests shorten it). ``tmp_dir`` is
    the base folder for uploads (default: ``UPLOAD_DIR``, else ``gigaam-uploads`` in the system
    temp folder); this server spools into a folder of its own there and removes what dead
    servers left behind (:mod:`gigaam_api.api.spool`).
    """
    settings = settings or load_settings()
    metrics = Metrics()
    service = ModelService(settings, metrics, loader)
    base = tmp_dir or settings.upload_dir or Path(tempfile.gettempdir()) / "gigaam-uploads"
    uploads = UploadFolder(base)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        audio.pool.prestart_soon()  # the first compressed upload does not wait for a worker
        wyoming = WyomingServer.for_app(app.state.ctx) if settings.wyoming_uri else None
        app.state.wyoming = wyoming
        jobs = start_jobs(app.state.jobs, settings, service, metrics)  # durable jobs
        try:
            if wyoming is not None:
                await wyoming.start()
            yield
        finally:
            if wyoming is not None:  # before the worker stops: cancels utterances under way
                await wyoming.stop()
            if jobs is not None:
                jobs.stop()  # before the worker: running jobs give their leases back
            service.stop()
            uploads.close()

    app = FastAPI(
        title="gigaam-api",
        version=__version__,
        summary="OpenAI-compatible Russian speech recognition on GigaAM",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ctx = AppContext(
        settings=settings,
        service=service,
        metrics=metrics,
        created=int(time.time()),
        keepalive_seconds=keepalive_seconds,
        tmp_dir=uploads.path,
    )
    app.state.jobs = JobsState()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.include_router(router, prefix="/v1")
    app.include_router(router)
    app.include_router(job_router, prefix="/v1")
    app.include_router(job_router)
    if settings.web_ui:
        install_web(app)
    return app


def create_app_from_env() -> FastAPI:
    """Settings from the environment/.env, logging configured: for ``uvicorn --factory``."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
