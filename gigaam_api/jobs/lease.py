"""Who this replica is, and keeping (or knowingly losing) the leases of the jobs it runs.

A running job is held under a lease of ``JOB_LEASE_SECONDS``; the heartbeat renews it every
third of that, so two renewals can fail before it runs out. Each renewal is conditional on
still holding the job (owner *and* attempt, see ``jobs/store.py``), so a ``False`` means
another replica has taken the job over (this one was paused, partitioned or too slow), or it
was cancelled or deleted: the runner stops that job at once. When the database cannot be
reached at all, a lease is given up by this replica's own clock once the last successful
renewal is a whole lease old: by then another replica may hold it, and the work in flight
could never be committed anyway (every write is fenced).

:class:`Availability` keeps "the database is unreachable" to one warning per outage and
one line when it is back, instead of a traceback per poll.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Final

from gigaam_api.jobs.database import describe_error
from gigaam_api.jobs.model import Job
from gigaam_api.jobs.store import JobStore

__all__ = ["RENEWALS_PER_LEASE", "Availability", "LeaseKeeper", "replica_name"]

log = logging.getLogger(__name__)

#: Renewals per lease period: a lease survives two missed heartbeats.
RENEWALS_PER_LEASE: Final = 3

#: Runner events counted per replica (``/metrics``).
CLAIMED: Final = "claimed"
COMPLETED: Final = "completed"
FAILED: Final = "failed"
LEASE_RENEWED: Final = "lease_renewed"
LEASE_LOST: Final = "lease_lost"

EventSink = Callable[[str], None]


def replica_name(configured: str = "") -> str:
    """``REPLICA_ID`` when set, else ``<hostname>-<pid>-<random>``: unique per process, so
    a restarted process never mistakes a predecessor's lease for its own."""
    if configured.strip():
        return configured.strip()
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Availability:
    """Whether the database answered the last time this replica asked, logged on change."""

    def __init__(self, what: str = "job database") -> None:
        self._what = what
        self._lock = threading.Lock()
        self.error: str | None = None

    def failed(self, error: BaseException) -> None:
        reason = describe_error(error)
        with self._lock:
            first = self.error is None
            self.error = reason
        if first:
            log.warning("%s unavailable: %s (retrying)", self._what, reason)

    def succeeded(self) -> None:
        with self._lock:
            was = self.error
            self.error = None
        if was is not None:
            log.info("%s reachable again", self._what)


class LeaseKeeper:
    """Renews the leases of the jobs one replica runs; reports the ones it lost."""

    def __init__(
        self,
        store: JobStore,
        lease_seconds: float,
        availability: Availability,
        on_event: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.interval = lease_seconds / RENEWALS_PER_LEASE
        self._availability = availability
        self._on_event = on_event
        self._clock = clock
        self._renewed_at: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()

    def _event(self, name: str) -> None:
        if self._on_event is not None:
            self._on_event(name)

    def held(self, job: Job) -> None:
        """A job was just claimed (the claim set its lease)."""
        with self._lock:
            self._renewed_at[(job.id, job.attempt)] = self._clock()

    def released(self, job: Job) -> None:
        with self._lock:
            self._renewed_at.pop((job.id, job.attempt), None)

    def renew(self, jobs: Iterable[Job]) -> list[Job]:
        """Renew every lease once; returns the jobs this replica no longer holds."""
        lost: list[Job] = []
        for job in jobs:
            key = (job.id, job.attempt)
            try:
                held = self.store.renew(job, self.lease_seconds)
            except Exception as exc:  # the database is away: keep the lease until it expires
                self._availability.failed(exc)
                with self._lock:
                    since = self._clock() - self._renewed_at.get(key, self._clock())
                if since >= self.lease_seconds:
                    log.warning("job %s: lease not renewed for %.0f s; giving it up", job.id, since)
                    self._lose(job, lost)
                continue
            self._availability.succeeded()
            if held:
                with self._lock:
                    self._renewed_at[key] = self._clock()
                self._event(LEASE_RENEWED)
            else:
                self._lose(job, lost, counted=self.taken_over(job))
        return lost

    def taken_over(self, job: Job) -> bool:
        """Renewal refused: another replica's attempt (a lease loss), or a cancel/delete."""
        try:
            now = self.store.get(job.id)
        except Exception:
            return True
        if now is None or now.status == "cancelled":
            log.info("job %s was cancelled or deleted; stopping it", job.id)
            return False
        log.warning("job %s: lease lost (now %s); stopping it", job.id, now.lease_owner)
        return True

    def lost_on_write(self, job: Job) -> None:
        """A fenced write was refused: count it when another replica took the job over."""
        self.released(job)
        if self.taken_over(job):
            self._event(LEASE_LOST)

    def _lose(self, job: Job, lost: list[Job], counted: bool = True) -> None:
        self.released(job)
        if counted:
            self._event(LEASE_LOST)
        lost.append(job)
