"""Prometheus series for durable jobs, registered on the app's own registry.

Read live at scrape time from the job store (so they follow the database, whichever process
wrote it): jobs by status and the job queue depth; plus a counter of audio seconds the jobs
of this process have committed.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from gigaam_api.jobs.model import STATUSES


class JobMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs = Gauge("gigaam_jobs", "Durable jobs by status", ["status"], registry=registry)
        self.queue_depth = Gauge(
            "gigaam_job_queue_depth", "Durable jobs waiting to run (queued)", registry=registry
        )
        self.processed_seconds = Counter(
            "gigaam_job_processed_seconds",
            "Seconds of audio committed by durable jobs in this process",
            registry=registry,
        )

    def bind(self, counts: Callable[[], dict[str, int]]) -> None:
        def reader(status: str) -> Callable[[], float]:
            def read() -> float:
                return float(counts().get(status, 0))

            return read

        for status in STATUSES:
            self.jobs.labels(status=status).set_function(reader(status))
        self.queue_depth.set_function(reader("queued"))

    def add_processed(self, seconds: float) -> None:
        self.processed_seconds.inc(max(seconds, 0.0))
