"""Starting and stopping the durable jobs of one server, and what they are while it runs.

Opening the job store can fail in two ways that must not take the server down with it: a
store that cannot be opened at all (``JOBS_DIR`` not writable, a broken database file)
disables jobs with a logged reason, so the synchronous API keeps serving; a shared database
(``JOBS_DATABASE_URL``) that cannot be reached yet is retried in the background, and until it
answers the replica reports not ready (``/health``) and the job routes answer 503. Both are
jobs' own business, not HTTP's: :mod:`gigaam_api.server` starts them in its lifespan like the
model service and the Wyoming door, and the HTTP layer only reads the resulting
:class:`JobsState` (``app.state.jobs``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from gigaam_api.config import Settings
from gigaam_api.jobs.database import describe_error, is_unavailable
from gigaam_api.jobs.service import JobService
from gigaam_api.service.model_service import ModelService

log = logging.getLogger(__name__)

#: Seconds between attempts to open a shared job database that was unreachable at start.
CONNECT_RETRY_S = 2.0


@dataclass
class JobsState:
    """``app.state.jobs``: the job service once started, or why it is not available."""

    service: JobService | None = None
    error: str | None = "starting"
    #: A shared job database is configured: its absence makes this replica not ready.
    shared: bool = False
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def stop(self) -> None:
        """At server shutdown: stop retrying to open the store, stop the runner."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(CONNECT_RETRY_S * 4)
        if self.service is not None:
            self.service.stop()


def start_jobs(
    state: JobsState,
    settings: Settings,
    core: ModelService,
    *,
    on_progress: Callable[[float], None] | None = None,
    on_event: Callable[[str], None] | None = None,
    on_open: Callable[[JobService], None] | None = None,
) -> JobsState:
    """Open the job store and start the runner (at server start-up), filling ``state``.

    ``core`` is the service core the runner admits its background work to (it runs jobs once
    the model is loaded);
    ``on_progress`` and ``on_event`` are the runner's metric hooks, and ``on_open`` is called
    with the job service once the store is open (the metrics read job counts from it).
    """
    state.shared = bool(settings.jobs_database_url)

    def open_service() -> bool:
        try:
            jobs = JobService(settings, core, on_progress=on_progress, on_event=on_event)
            jobs.start()
        except Exception as exc:
            if state.shared and is_unavailable(exc):
                state.error = f"job database unavailable: {describe_error(exc)}"
                return False
            state.error = f"{type(exc).__name__}: {exc}"
            log.error("durable jobs are disabled: %s", state.error)
            return True
        if on_open is not None:
            on_open(jobs)
        state.service, state.error = jobs, None
        return True

    if not open_service():
        log.warning("%s; retrying every %.0f s", state.error, CONNECT_RETRY_S)

        def retry() -> None:
            while not state._stopping.wait(CONNECT_RETRY_S):
                if open_service():
                    if state.service is not None:
                        log.info("job database reachable: durable jobs started")
                    return

        state._thread = threading.Thread(target=retry, name="job-store-connect", daemon=True)
        state._thread.start()
    return state
