"""One server: the service core and its doors, started and stopped together.

The composition root, the one module that imports every door. ``create_app(settings)`` builds
the core (metrics, the model service, this server's spool folder), the HTTP app over it
(``api/app.py``) and, when ``WYOMING_URI`` is set, the Wyoming door (``wyoming/``), and gives
the app the lifespan that runs them all: the model starts loading in the background when the
server starts (``/health`` says 503 until then), then the durable jobs and the Wyoming
listener start; at shutdown the doors stop before the worker they share. The doors never
import each other; each sees only the core (``service/``).

``gigaam-api serve`` runs the app with uvicorn; ``create_app_from_env`` is the same thing for
``uvicorn --factory gigaam_api.server:create_app_from_env``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from gigaam_api import audio
from gigaam_api.api.app import build_app
from gigaam_api.api.context import AppContext
from gigaam_api.config import Settings, load_settings
from gigaam_api.jobs.lifecycle import JobsState, start_jobs
from gigaam_api.jobs.metrics import JobMetrics
from gigaam_api.logging import configure_logging
from gigaam_api.service.metrics import Metrics
from gigaam_api.service.model_service import Loader, ModelService
from gigaam_api.service.spool import UploadFolder
from gigaam_api.wyoming.server import WyomingServer


def create_app(
    settings: Settings | None = None,
    *,
    loader: Loader | None = None,
    keepalive_seconds: float = 10.0,
    tmp_dir: Path | None = None,
) -> FastAPI:
    """Build the server: its core, its doors, and the app whose lifespan runs them.

    ``loader`` replaces how the model is built from settings (default: weights per
    ``CHECKPOINT_PATH``/``MODEL`` → ``load_model``). ``keepalive_seconds`` is the SSE
    keep-alive interval (at most 15 s, see ``docs/api.md``; tests shorten it). ``tmp_dir`` is
    the base folder for uploads (default: ``UPLOAD_DIR``, else ``gigaam-uploads`` in the system
    temp folder); this server spools into a folder of its own there and removes what dead
    servers left behind (:mod:`gigaam_api.service.spool`).
    """
    settings = settings or load_settings()
    metrics = Metrics()
    service = ModelService(settings, metrics, loader)
    base = tmp_dir or settings.upload_dir or Path(tempfile.gettempdir()) / "gigaam-uploads"
    uploads = UploadFolder(base)
    ctx = AppContext(
        settings=settings,
        service=service,
        metrics=metrics,
        tmp_dir=uploads.path,
        created=int(time.time()),
        keepalive_seconds=keepalive_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        audio.pool.prestart_soon()  # the first compressed upload does not wait for a worker
        wyoming = WyomingServer.for_core(ctx) if settings.wyoming_uri else None
        app.state.wyoming = wyoming
        jobs = _start_jobs(app.state.jobs, settings, service, metrics)
        try:
            if wyoming is not None:
                await wyoming.start()
            yield
        finally:
            if wyoming is not None:  # before the worker stops: cancels utterances under way
                await wyoming.stop()
            jobs.stop()  # before the worker: running jobs give their leases back
            service.stop()
            uploads.close()

    return build_app(ctx, lifespan=lifespan)


def _start_jobs(
    state: JobsState, settings: Settings, service: ModelService, metrics: Metrics
) -> JobsState:
    """The durable jobs, admitted to the service core as background work, counted in the
    server's metrics."""
    job_metrics = JobMetrics(metrics.registry)
    return start_jobs(
        state,
        settings,
        service,
        on_progress=job_metrics.add_processed,
        on_event=job_metrics.count,
        on_open=lambda jobs: job_metrics.bind(jobs.store.counts_by_status),
    )


def create_app_from_env() -> FastAPI:
    """Settings from the environment/.env, logging configured: for ``uvicorn --factory``."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
