"""The model and its inference worker, loaded in the background at start-up.

Loading can take minutes (the first run downloads ~880 MB of weights and builds the graph),
and the server must answer ``/health`` (503, ``loaded: false``) meanwhile so Docker's
HEALTHCHECK and clients can tell "starting" from "down". So the app starts at once and a
thread loads the model; transcription requests get 503 + ``Retry-After`` until it is ready.
A load failure is kept and reported (health and every transcription say why) rather than
crashing the process into a restart loop that would re-download forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from gigaam_api.api.errors import model_not_loaded, queue_full, shutting_down
from gigaam_api.api.metrics import Metrics
from gigaam_api.config import Settings
from gigaam_api.loading import load_model_from_settings
from gigaam_api.model import AsrModel, Result
from gigaam_api.scheduler import QueueFull, Scheduler, SchedulerClosed, Ticket

log = logging.getLogger(__name__)

State = Literal["loading", "ready", "failed", "stopped"]
#: Builds the model from settings; the default downloads/loads the real weights.
Loader = Callable[[Settings], AsrModel]


class ModelService:
    """Owns the loaded model and the :class:`Scheduler` that is its only user."""

    def __init__(self, settings: Settings, metrics: Metrics, loader: Loader | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self._loader = loader or load_model_from_settings
        self._lock = threading.Lock()
        self.state: State = "loading"
        self.error: str | None = None
        self.model: AsrModel | None = None
        self.scheduler: Scheduler[Result] | None = None
        self.load_seconds: float | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin loading on a background thread (returns immediately)."""
        self._thread = threading.Thread(target=self._load, name="model-loader", daemon=True)
        self._thread.start()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Block until loading ended (either way); True when ready. For the CLI and tests."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state == "ready"

    def _load(self) -> None:
        started = time.perf_counter()
        log.info("loading model %s", self.settings.model)
        try:
            model = self._loader(self.settings)
        except Exception as exc:
            with self._lock:
                if self.state == "loading":
                    self.state = "failed"
                    self.error = f"{type(exc).__name__}: {exc}"
            log.exception("model %s failed to load", self.settings.model)
            return
        scheduler: Scheduler[Result] = Scheduler(
            model.transcribe, self.settings.max_queue, on_batch=self.metrics.observe_batch
        )
        with self._lock:
            if self.state != "loading":  # shut down while loading: never start the worker
                return
            self.model = model
            self.scheduler = scheduler.start()
            self.load_seconds = time.perf_counter() - started
            self.state = "ready"
        self.metrics.bind_queue(
            lambda: scheduler.active, lambda: scheduler.pending_batches, scheduler.max_active
        )
        self.metrics.model_loaded.set(1)
        log.info(
            "model %s ready on %s in %.1f s",
            model.name,
            self.device,
            self.load_seconds,
        )

    @property
    def device(self) -> str:
        """The resolved device once loaded, the configured one before."""
        if self.model is not None:
            return self.model.device
        return self.settings.device

    def admit(self, request_id: str) -> Ticket[Result]:
        """A scheduler ticket, or ``ApiError`` 503 (loading, failed, queue full)."""
        scheduler = self.scheduler
        if self.state == "stopped":
            raise shutting_down()
        if self.state != "ready" or scheduler is None:
            raise model_not_loaded(self.error if self.state == "failed" else None)
        try:
            return scheduler.admit(request_id)
        except QueueFull as exc:
            raise queue_full(exc.limit) from None
        except SchedulerClosed:
            raise shutting_down() from None

    def stop(self) -> None:
        with self._lock:
            scheduler = self.scheduler
            self.state = "stopped"
        self.metrics.model_loaded.set(0)
        if scheduler is not None:
            scheduler.stop()
