"""Prometheus series for durable jobs, registered on the app's own registry.

Two kinds, on purpose:

* **Read from the job store at scrape time** (so they follow the database, whichever replica
  wrote it, and are the same on every replica): jobs by status and the queue depth, which an
  autoscaler can scale on. One query per scrape, cached for a second; while the database
  cannot be reached they read NaN (unknown) instead of failing the scrape, because
  ``/metrics`` is also the liveness probe in ``deploy/k8s/deployment.yaml``.
* **Counted by this replica** (each replica its own): jobs it claimed, completed and failed,
  lease renewals and losses, and the audio seconds it committed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from gigaam_api.jobs.model import STATUSES

#: Seconds one read of the store serves the scrape's gauges.
COUNTS_CACHE_S = 1.0


class JobMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs = Gauge("gigaam_jobs", "Durable jobs by status", ["status"], registry=registry)
        self.queue_depth = Gauge(
            "gigaam_job_queue_depth",
            "Durable jobs waiting to run (queued), the same on every replica",
            registry=registry,
        )
        self.processed_seconds = Counter(
            "gigaam_job_processed_seconds",
            "Seconds of audio committed by durable jobs in this process",
            registry=registry,
        )
        self.events = {
            "claimed": Counter(
                "gigaam_jobs_claimed",
                "Jobs this replica claimed (new or resumed)",
                registry=registry,
            ),
            "completed": Counter(
                "gigaam_jobs_completed", "Jobs this replica completed", registry=registry
            ),
            "failed": Counter("gigaam_jobs_failed", "Jobs this replica failed", registry=registry),
            "lease_renewed": Counter(
                "gigaam_job_lease_renewals", "Job leases this replica renewed", registry=registry
            ),
            "lease_lost": Counter(
                "gigaam_job_lease_losses",
                "Jobs this replica stopped because its lease was taken over or ran out",
                registry=registry,
            ),
        }
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, int] | None] = (-math.inf, None)

    def bind(self, counts: Callable[[], dict[str, int]]) -> None:
        def current() -> dict[str, int] | None:
            with self._lock:
                at, value = self._cached
                if time.monotonic() - at >= COUNTS_CACHE_S:
                    try:
                        value = counts()
                    except Exception:  # database away: unknown, and the scrape still works
                        value = None
                    self._cached = (time.monotonic(), value)
                return value

        def reader(status: str) -> Callable[[], float]:
            def read() -> float:
                value = current()
                return math.nan if value is None else float(value.get(status, 0))

            return read

        for status in STATUSES:
            self.jobs.labels(status=status).set_function(reader(status))
        self.queue_depth.set_function(reader("queued"))

    def add_processed(self, seconds: float) -> None:
        self.processed_seconds.inc(max(seconds, 0.0))

    def count(self, event: str) -> None:
        """A runner event (``jobs/lease.py`` names them); unknown names are ignored."""
        counter = self.events.get(event)
        if counter is not None:
            counter.inc()
