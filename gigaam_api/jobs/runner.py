"""Runs durable jobs on the shared inference worker, committing as it goes.

``JOB_CONCURRENCY`` threads each loop: claim the oldest claimable job from the store (under a
lease), admit it to the service core as *background* work and run a core session on its audio
from ``processed_seconds`` (0 for a new job, the end of the last committed chunk for a resumed
one) with the options stored at submission, segment ids continuing from the ones committed;
commit each recognised chunk's segments together with the new ``processed_seconds`` (the
session's progress event), and complete or fail the job. Every write is fenced by the lease,
so a runner that lost its job (cancelled, deleted, lease expired) stops at its next commit
without writing.

A heartbeat thread renews the leases of the jobs this process runs (``jobs/lease.py``: every
third of ``JOB_LEASE_SECONDS``; a job whose lease was taken over is stopped at once) and, now
and then, applies ``JOB_RETENTION_HOURS``. On a graceful stop the pipelines are cancelled and
the leases given back, so the next start resumes the jobs after their last committed chunk at
once; after a ``kill -9`` the embedded store releases them at start-up (see
``release_all_leases``), and with a shared database the leases simply expire and another
replica resumes the jobs. A database that cannot be reached stops no thread: the claim loop
waits for it, and a job whose commit cannot be written is left to be resumed after its lease.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gigaam_api import audio
from gigaam_api.config import Settings, pipeline_options
from gigaam_api.jobs import lease
from gigaam_api.jobs.database import describe_error, is_unavailable
from gigaam_api.jobs.files import JobFiles
from gigaam_api.jobs.model import Job, JobError
from gigaam_api.jobs.store import DEFAULT_LEASE_SECONDS, JobStore, LeaseLost
from gigaam_api.service.errors import ServiceError
from gigaam_api.service.keywords import keywords_of
from gigaam_api.service.model_service import ModelService
from gigaam_api.service.session import (
    Admission,
    DoneEvent,
    FailedEvent,
    ProgressEvent,
    SegmentEvent,
    Session,
    SessionOptions,
    SpeakersEvent,
    admit,
)
from gigaam_api.service.speakers import KnownSpeaker, SpeakerOptions
from gigaam_api.speakers import SpeakerCount, label_segments
from gigaam_api.transcript import Segment

log = logging.getLogger(__name__)

#: How often an idle runner looks for claimable jobs it was not woken for (other replicas,
#: expired leases).
POLL_SECONDS = 1.0
#: How often finished jobs past their retention are removed.
RETENTION_INTERVAL_S = 600.0
#: Decoded audio may fall this much (or 5 %) short of the probed duration before the file
#: counts as truncated.
TRUNCATION_TOLERANCE_S = 2.0


@dataclass(frozen=True, slots=True)
class DecodeStart:
    """Where one attempt at a job started decoding: what a resume re-decodes is visible here."""

    job_id: str
    attempt: int
    start_seconds: float


def job_error(failure: ServiceError) -> JobError:
    """The ``error`` of a failed job: the same message, type and code the synchronous endpoint
    would answer for the same file, as the core's session read the failure (which also logged
    the server's failures). The client's audio is an ``invalid_request_error``, the rest
    ours; a stopped run never gets here (the runner resumes or drops it instead)."""
    kind = "invalid_request_error" if failure.kind == "invalid_audio" else "server_error"
    return JobError(failure.message, kind, failure.code)


class _Stopped(Exception):
    """The run was stopped (cancelled, deleted, lease lost, server stopping): not a failure."""


class _Failed(Exception):
    """The run failed: ``event`` says how, in the core's words."""

    def __init__(self, event: FailedEvent) -> None:
        super().__init__(event.error.message)
        self.event = event


def truncation_error(probed: float | None, decoded: float) -> JobError | None:
    """A file that ends well before the duration its header states is truncated or damaged.

    ffmpeg decodes such a file up to the damage and exits successfully, so a synchronous
    request answers with the part it could read; a job, which the user does not watch, fails
    with this error instead (what was decoded stays available with ``partial=true``). The
    tolerance covers duration estimates of VBR streams.
    """
    if probed is None or probed - decoded <= max(TRUNCATION_TOLERANCE_S, 0.05 * probed):
        return None
    return JobError(
        f"The audio ends after {decoded:.1f} s although the file says it lasts {probed:.1f} s: "
        "the file is truncated or damaged",
        "invalid_request_error",
        "truncated_audio",
    )


@dataclass
class _Running:
    job: Job
    place: Admission
    session: Session | None = None
    lost: bool = False
    cancelled: bool = False

    def stop(self) -> None:
        """Stop the run at its next step (from any thread)."""
        self.cancelled = True
        session = self.session
        if session is not None:
            session.cancel()


class JobRunner:
    """The job threads of one server process."""

    def __init__(
        self,
        store: JobStore,
        files: JobFiles,
        settings: Settings,
        service: ModelService,
        *,
        on_progress: Callable[[float], None] | None = None,
        on_event: lease.EventSink | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.store = store
        self.files = files
        self.settings = settings
        self._service = service
        self._on_progress = on_progress
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.owner = lease.replica_name(settings.replica_id)
        self._on_event = on_event
        #: Whether the database answered the runner's last request (logged once per outage).
        self.availability = lease.Availability()
        self.leases = lease.LeaseKeeper(store, lease_seconds, self.availability, on_event)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._threads: list[threading.Thread] = []
        #: Every attempt this process started, in order (tests and logs: what was re-decoded).
        self.decode_starts: list[DecodeStart] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        for index in range(self.settings.job_concurrency):
            thread = threading.Thread(target=self._loop, name=f"job-runner-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        heartbeat = threading.Thread(target=self._heartbeat, name="job-heartbeat", daemon=True)
        heartbeat.start()
        self._threads.append(heartbeat)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel what runs, give the leases back (the jobs resume at the next start)."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            running = list(self._running.values())
        for item in running:
            item.stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.1))

    def wake(self) -> None:
        """A job was submitted: look now rather than at the next poll."""
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        """Stop a job this process is running (the store already says cancelled/deleted)."""
        with self._lock:
            item = self._running.get(job_id)
        if item is not None:
            item.stop()

    @property
    def running_ids(self) -> list[str]:
        with self._lock:
            return list(self._running)

    # -- the job threads ---------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            if not self._service.ready:  # the model is still loading
                self._stopping.wait(0.2)
                continue
            try:
                job = self.store.claim(self.owner, self.lease_seconds)
                self.availability.succeeded()
            except Exception as exc:
                if is_unavailable(exc):
                    self.availability.failed(exc)  # one warning per outage, then quiet retries
                else:
                    log.exception("claiming a job failed")
                job = None
            if job is None:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                continue
            self._event(lease.CLAIMED)
            try:
                self._run(job)
            except Exception as exc:  # never let one job end the runner
                if is_unavailable(exc):
                    self.availability.failed(exc)
                else:
                    log.exception("job %s: runner error", job.id)

    def _event(self, name: str) -> None:
        if self._on_event is not None:
            self._on_event(name)

    def _run(self, job: Job) -> None:
        try:
            place = admit(self._service, job.id, "background")
        except ServiceError:  # stopping (or the model went away): the job resumes later
            self._release(job)
            return
        item = _Running(job, place)
        self.leases.held(job)
        with self._lock:
            self._running[job.id] = item
        start = job.processed_seconds
        self.decode_starts.append(DecodeStart(job.id, job.attempt, start))
        log.info(
            "job %s attempt %d: decoding from %.3f s%s, segments from %d, options %s",
            job.id,
            job.attempt,
            start,
            " (resumed)" if start > 0 else "",
            job.segment_count,
            job.options.to_json(),
        )
        try:
            duration, speakers = self._transcribe(job, item, start)
            truncated = truncation_error(job.duration, duration)
            if truncated is not None:
                if self.store.fail(job, truncated):
                    self._event(lease.FAILED)
                    log.info("job %s failed: %s", job.id, truncated.message)
                return
            if not self._complete(job, duration, speakers):
                item.lost = True
                self.leases.lost_on_write(job)
                raise LeaseLost(job.id)
            self._event(lease.COMPLETED)
            log.info("job %s completed (%.1f s of audio)", job.id, duration)
        except (_Stopped, LeaseLost):
            if self._stopping.is_set() and not item.lost:
                self._release(job)
                log.info("job %s: stopped at %s, will resume", job.id, "shutdown")
            else:
                log.info("job %s: stopped (cancelled, deleted or lease lost)", job.id)
        except _Failed as failed:
            error = job_error(failed.event.error)
            if self.store.fail(job, error):
                self._event(lease.FAILED)
                log.info("job %s failed: %s", job.id, error.message)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # Nothing more can be committed; the job stays ours until the lease runs out,
            # then any replica (this one included) resumes it after its last commit.
            self.availability.failed(exc)
            log.warning(
                "job %s: job database unavailable (%s); it resumes after its lease",
                job.id,
                describe_error(exc),
            )
        finally:
            place.close()  # only if no session took the place (which then released it)
            self.leases.released(job)
            with self._lock:
                self._running.pop(job.id, None)

    def _release(self, job: Job) -> None:
        """Give the job back at shutdown; with the database away its lease expires instead."""
        try:
            self.store.release(job)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self.availability.failed(exc)

    def _complete(self, job: Job, duration: float, speakers: SpeakersEvent | None) -> bool:
        """Complete the job; a labelled one gets its segments' speakers in the same transaction
        (they were committed unlabelled: who is who is known only now). Ids stay, so a client
        that followed the events keeps its place; the outputs split where the speaker changes."""
        if speakers is None:
            return self.store.complete(job, duration)
        labelled = label_segments(self.store.segments(job.id), speakers.turns)
        return self.store.complete_labelled(job, duration, labelled, speakers.speakers)

    def _speaker_options(self, job: Job, start: float) -> SpeakerOptions | None:
        wanted = job.options.speakers
        if wanted is None:
            return None
        known = tuple(
            KnownSpeaker(name, self.files.reference(job.id, index).read_bytes())
            for index, name in enumerate(wanted.known_names)
        )
        return SpeakerOptions(
            count=SpeakerCount(wanted.num_speakers, wanted.min_speakers, wanted.max_speakers),
            known=known,
            state=self.store.speaker_state(job.id) if start > 0 else None,
            keep_state=True,
        )

    def _transcribe(
        self, job: Job, item: _Running, start: float
    ) -> tuple[float, SpeakersEvent | None]:
        """Run the session from ``start``, committing chunk by chunk; returns the duration and,
        when labelling speakers, who spoke when."""
        nothing_left = start > 0 and job.duration is not None and start >= job.duration
        if nothing_left and job.options.speakers is None:
            return float(job.duration or start), None
        # (with speakers, a run with nothing left still finishes the labelling: the session
        # reads nothing and ends with who spoke when)
        options = SessionOptions(
            pipeline=pipeline_options(self.settings),
            form="long" if start > 0 else "auto",
            start_seconds=start,
            first_segment_id=job.segment_count,
            language=job.options.language,
            speakers=self._speaker_options(job, start),
            keywords=keywords_of(job.options.keywords),
        )
        session = item.place.session(audio.FileSource(self.files.audio(job.id)), options)
        item.session = session
        if item.cancelled:  # stopped between the claim and here
            session.cancel()
        committed = start
        pending: list[Segment] = []
        speakers: SpeakersEvent | None = None
        with contextlib.closing(session.events()) as events:
            for event in events:
                if isinstance(event, SegmentEvent):
                    pending.append(event.segment)
                elif isinstance(event, ProgressEvent):
                    end = max(event.seconds, committed)  # never behind what is committed
                    if not self.store.commit_chunk(job, end, pending, event.speaker_state):
                        item.lost = True
                        self.leases.lost_on_write(job)
                        raise LeaseLost(job.id)
                    pending = []
                    if self._on_progress is not None:
                        self._on_progress(end - committed)
                    committed = end
                elif isinstance(event, SpeakersEvent):
                    speakers = event
                elif isinstance(event, DoneEvent):
                    return event.duration, speakers
                elif isinstance(event, FailedEvent):
                    if event.error.kind in ("cancelled", "shutting_down"):
                        raise _Stopped(job.id)
                    if start > 0 and isinstance(event.cause, audio.EmptyAudio):
                        # raised when the reader opens: nothing left after the last commit
                        return (job.duration if job.duration is not None else start), None
                    raise _Failed(event)
        raise _Stopped(job.id)  # the session ended without a last event: it was stopped

    # -- heartbeat and retention -------------------------------------------------------------

    def _heartbeat(self) -> None:
        interval = max(self.leases.interval, 0.05)
        next_retention = 0.0
        while not self._stopping.wait(interval):
            with self._lock:
                running = {item.job.id: item for item in self._running.values()}
            lost = self.leases.renew(item.job for item in running.values())
            if self._stopping.is_set():
                continue
            for job in lost:
                item = running[job.id]
                item.lost = True  # stop now: another replica owns it, or nobody should
                item.stop()
            if time.monotonic() >= next_retention:
                next_retention = time.monotonic() + RETENTION_INTERVAL_S
                try:
                    apply_retention(self.store, self.files, self.settings.job_retention_hours)
                except Exception as exc:
                    if not is_unavailable(exc):
                        log.exception("job retention failed")
                    next_retention = time.monotonic() + interval  # retry soon


def apply_retention(
    store: JobStore, files: JobFiles, hours: float, now: float | None = None
) -> int:
    """Delete finished jobs older than ``hours`` (0: keep forever), rows and files."""
    if hours <= 0:
        return 0
    cutoff = (time.time() if now is None else now) - hours * 3600
    removed = 0
    for job_id in store.finished_before(cutoff):
        store.delete(job_id)
        files.remove(job_id)
        removed += 1
    if removed:
        log.info("retention removed %d finished job(s)", removed)
    return removed
