"""Admission: who may use the worker, the ring of tickets with pending batches, cancellation.

Each admitted request gets a :class:`Ticket`; its pipeline thread calls :meth:`Ticket.infer`,
which queues the batch (a :class:`BatchWork`) and blocks until a lane has run it.

Admission is bounded (``MAX_QUEUE`` requests queued + running): :meth:`Admission.admit` raises
:class:`QueueFull` beyond that, which the API turns into 503 + ``Retry-After``. *Background*
tickets (durable jobs, admitted with ``background=True``) do not count against ``MAX_QUEUE``
(the work runner bounds them with ``JOB_CONCURRENCY``); they are served only when no
interactive batch waits (:mod:`.policy`).

A third class, *interim* (``interim=True``: a live session's re-recognition of the turn still
being spoken), is work worth doing only when nobody more urgent waits: it is never queued
behind an interactive batch — submitting one while an interactive batch is pending fails at
once with :class:`Skipped`, and an interactive batch arriving drops the interim batches still
pending with :class:`Skipped` too — and is served before background work (a person watches
it; the job's slice waits at most one interim call). Interim tickets do not count against
``MAX_QUEUE``, nor do interactive tickets admitted with ``bounded=False`` (a live session's
finals: the live door bounds its sessions with ``REALTIME_MAX_SESSIONS``).

Cancellation (client gone) is cooperative: :meth:`Ticket.cancel` wakes a waiting caller with
:class:`~gigaam_api.cancellation.Cancelled` at once and makes every later ``infer`` raise it,
so the pipeline unwinds (and stops ffmpeg) between batches. :meth:`Ticket.close` also frees
the admission slot. A batch in a model call when its ticket is cancelled finishes in the
model for the others sharing the call; its result is dropped.

One lock guards it all: :attr:`Admission.cond`, a condition the lanes share (they wait on it
for work). Ticket and batch state change only through their own methods, called by
:class:`Admission` and the lanes with that lock held.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Generic, TypeVar

import numpy as np

from gigaam_api.cancellation import Cancelled

__all__ = [
    "Admission",
    "BatchWork",
    "InferFn",
    "QueueFull",
    "SchedulerClosed",
    "SchedulerError",
    "Skipped",
    "Ticket",
]

R = TypeVar("R")
Batch = Sequence[np.ndarray]
#: The model call the lanes run: ``infer_fn(waves, tags)``, one tag per wave (each the value
#: its batch was submitted with, opaque to the scheduler), one result per wave.
InferFn = Callable[[list[np.ndarray], list[object]], list[R]]


class SchedulerError(Exception):
    """Base class of the scheduler's own errors."""


class QueueFull(SchedulerError):
    """``MAX_QUEUE`` requests are already queued or running."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the server is busy: {limit} requests are already queued or running")
        self.limit = limit


class SchedulerClosed(SchedulerError):
    """The scheduler is shut down and accepts no more work."""

    def __init__(self, message: str = "the server is shutting down") -> None:
        super().__init__(message)


class Skipped(SchedulerError):
    """Interim work was not run because more urgent work waits (it is never queued behind it)."""

    def __init__(self) -> None:
        super().__init__("interim work skipped: more urgent work is waiting")


class BatchWork(Generic[R]):
    """A batch waiting for (or running on) a lane; the caller blocks in :meth:`wait`.

    A background batch may be served in slices: ``offset`` waves have run so far and their
    results wait in ``partial`` until the last slice.
    """

    __slots__ = (
        "batch",
        "done",
        "error",
        "index",
        "lengths",
        "offset",
        "partial",
        "result",
        "submitted_at",
        "tag",
        "ticket",
    )

    def __init__(
        self, ticket: Ticket[R], batch: list[np.ndarray], index: int, at: int, tag: object = None
    ) -> None:
        self.ticket = ticket
        self.batch = batch
        #: The caller's opaque value for the model call, passed with each of its waves.
        self.tag = tag
        #: Samples of each wave (what the policy plans with, read at every turn).
        self.lengths = tuple(len(wave) for wave in batch)
        self.index = index
        #: The model calls finished when the batch was (re)submitted: what ``waited`` counts from.
        self.submitted_at = at
        self.done = threading.Event()
        self.result: list[R] | None = None
        self.error: BaseException | None = None
        self.offset = 0
        self.partial: list[R] = []

    @property
    def settled(self) -> bool:
        return self.done.is_set()

    def remaining_lengths(self) -> tuple[int, ...]:
        """Samples of each wave not run yet."""
        return self.lengths[self.offset :]

    def next_waves(self, count: int) -> list[np.ndarray]:
        """The next ``count`` waves not run yet."""
        return self.batch[self.offset : self.offset + count]

    def advance(self, results: list[R], at: int) -> bool:
        """Keep a slice's ``results``; True while waves remain (then resubmitted ``at``)."""
        self.partial.extend(results)
        self.offset += len(results)
        if self.offset < len(self.batch):
            self.submitted_at = at
            return True
        return False

    def complete(self) -> None:
        """Deliver the results of every slice to the caller."""
        self.finish(self.partial, None)

    def finish(self, result: list[R] | None, error: BaseException | None) -> None:
        """Settle this batch once; later settlements (a result after a cancel) are dropped."""
        if self.done.is_set():
            return
        self.result = result
        self.error = error
        self.done.set()

    def wait(self) -> list[R]:
        """Block until settled; the results, or the error raised."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Ticket(Generic[R]):
    """A request's right to use the worker. Use as a context manager so the slot is freed.

    The methods below the public ones are the ticket's side of admission and serving; they are
    called with the scheduler's lock held, never by the ticket's owner.
    """

    def __init__(
        self,
        desk: Admission[R],
        request_id: str,
        background: bool = False,
        *,
        interim: bool = False,
        bounded: bool = True,
    ) -> None:
        self._desk = desk
        self.request_id = request_id
        self.background = background
        #: Interim work (a live turn's re-recognition): skipped rather than queued.
        self.interim = interim
        #: Counted against ``MAX_QUEUE`` (interactive tickets admitted bounded).
        self.bounded = bounded and not background and not interim
        self._pending: deque[BatchWork[R]] = deque()
        self._running: BatchWork[R] | None = None
        self._batches = 0
        self._cancelled = False
        self._closed = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def batches_submitted(self) -> int:
        return self._batches

    def infer(self, batch: Batch, tag: object = None) -> list[R]:
        """Run ``batch`` on the worker and return its results; blocks the calling thread.

        ``tag`` is an opaque value the scheduler hands to ``infer_fn`` with each wave of this
        batch (the server passes the request's language): a call that combines requests gives
        every wave its own request's tag, so combining never changes what a wave asked for.

        Raises :class:`Cancelled` if the ticket is (or becomes) cancelled or closed,
        :class:`SchedulerClosed` if the service shuts down, and re-raises whatever the
        model raised for this batch.
        """
        return self._desk.submit(self, list(batch), tag).wait()

    def cancel(self) -> None:
        """Stop this request's work: the waiting ``infer`` and all later ones raise Cancelled."""
        self._desk.cancel(self)

    def close(self) -> None:
        """Free the admission slot (idempotent); cancels anything still pending."""
        self._desk.close(self)

    def __enter__(self) -> Ticket[R]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the ticket's side of admission and serving (under the scheduler's lock) -------------

    @property
    def accepts_work(self) -> bool:
        return not (self._cancelled or self._closed)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def next_batch(self) -> BatchWork[R]:
        """The batch its next turn serves (the ticket is in the ring only while there is one)."""
        return self._pending[0]

    def enqueue(self, work: BatchWork[R]) -> bool:
        """Queue a submitted batch; True when it is the only one (the ticket joins the ring)."""
        self._batches += 1
        self._pending.append(work)
        return len(self._pending) == 1

    def put_back(self, work: BatchWork[R]) -> bool:
        """Queue a partly served batch first again; True when the ticket rejoins the ring."""
        self._pending.appendleft(work)
        return len(self._pending) == 1

    def start_next(self) -> BatchWork[R]:
        """Take the next batch for a turn; it is this ticket's running batch until the turn ends."""
        work = self._pending.popleft()
        self._running = work
        return work

    def turn_ended(self) -> None:
        self._running = None

    def mark(self, *, closing: bool) -> None:
        """Record a cancel (or a close, which also counts as cancelled for new work)."""
        if closing:
            self._closed = True
        else:
            self._cancelled = True

    def fail(self, error: BaseException, *, running_too: bool) -> None:
        """Settle every pending batch (and the running one, if asked) with ``error``."""
        while self._pending:
            self._pending.popleft().finish(None, error)
        if running_too and self._running is not None:
            self._running.finish(None, error)


class Admission(Generic[R]):
    """The admitted tickets, the ring of those with pending batches, and the serving clock."""

    def __init__(self, max_active: int) -> None:
        if max_active < 1:
            raise ValueError("max_active must be at least 1")
        self.max_active = max_active
        #: The scheduler's one lock (reentrant) and the condition its lanes wait on.
        self.cond = threading.Condition()
        self._active: dict[int, Ticket[R]] = {}
        self._ring: deque[Ticket[R]] = deque()
        self._stopping = False
        self._calls = 0

    # -- state the lanes and the scheduler read ----------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def calls(self) -> int:
        """Model calls finished so far: the clock a batch's ``waited`` is counted on."""
        with self.cond:
            return self._calls

    def count_call(self) -> None:
        with self.cond:
            self._calls += 1

    def interactive_count(self) -> int:
        """Admitted interactive tickets (queued + running; interim ones not counted)."""
        with self.cond:
            return sum(1 for t in self._active.values() if _interactive(t))

    def bounded_count(self) -> int:
        """Admitted tickets that count against ``MAX_QUEUE`` (queued + running)."""
        with self.cond:
            return sum(1 for t in self._active.values() if t.bounded)

    def pending_batches(self) -> int:
        with self.cond:
            return sum(t.pending_count for t in self._ring)

    def waiting(self) -> list[Ticket[R]]:
        """The tickets with pending batches, in ring order."""
        with self.cond:
            return list(self._ring)

    # -- tickets -----------------------------------------------------------------------------

    def admit(
        self, request_id: str, background: bool, *, interim: bool = False, bounded: bool = True
    ) -> Ticket[R]:
        with self.cond:
            if self._stopping:
                raise SchedulerClosed()
            ticket = Ticket(self, request_id, background, interim=interim, bounded=bounded)
            if ticket.bounded and self.bounded_count() >= self.max_active:
                raise QueueFull(self.max_active)
            self._active[id(ticket)] = ticket
            return ticket

    def submit(
        self, ticket: Ticket[R], batch: list[np.ndarray], tag: object = None
    ) -> BatchWork[R]:
        with self.cond:
            work = BatchWork(ticket, batch, ticket.batches_submitted, self._calls, tag)
            if not ticket.accepts_work:
                work.finish(None, Cancelled(f"request {ticket.request_id} was cancelled"))
                return work
            if self._stopping:
                work.finish(None, SchedulerClosed())
                return work
            if ticket.interim and any(_interactive(t) for t in self._ring):
                work.finish(None, Skipped())
                return work
            if _interactive(ticket):
                self._skip_interim()
            if ticket.enqueue(work):
                self._ring.append(ticket)
            self.cond.notify_all()
            return work

    def cancel(self, ticket: Ticket[R]) -> None:
        self._withdraw(ticket, closing=False)

    def close(self, ticket: Ticket[R]) -> None:
        self._withdraw(ticket, closing=True)

    def _withdraw(self, ticket: Ticket[R], *, closing: bool) -> None:
        with self.cond:
            ticket.mark(closing=closing)
            if closing:
                self._active.pop(id(ticket), None)
            ticket.fail(Cancelled(f"request {ticket.request_id} was cancelled"), running_too=True)
            self._leave_ring(ticket)
            self.cond.notify_all()

    def _skip_interim(self) -> None:
        """Drop the interim batches still pending: an interactive batch has arrived."""
        for waiting in [t for t in self._ring if t.interim]:
            waiting.fail(Skipped(), running_too=False)
            self._ring.remove(waiting)

    def _leave_ring(self, ticket: Ticket[R]) -> None:
        if ticket in self._ring:
            self._ring.remove(ticket)

    def stop(self) -> None:
        """Refuse new work and fail everything pending with :class:`SchedulerClosed`."""
        with self.cond:
            self._stopping = True
            for ticket in list(self._ring):
                ticket.fail(SchedulerClosed(), running_too=False)
            self._ring.clear()
            self.cond.notify_all()

    # -- turns -------------------------------------------------------------------------------

    def take(self, tickets: Sequence[Ticket[R]]) -> list[BatchWork[R]]:
        """Start the next batch of each of ``tickets`` (in ring order) for a turn.

        They leave the ring; those with more batches rejoin it at the end, so their next batch
        waits for their next turn.
        """
        with self.cond:
            works = []
            for ticket in tickets:
                self._ring.remove(ticket)
                works.append(ticket.start_next())
            for ticket in tickets:
                if ticket.pending_count:
                    self._ring.append(ticket)
            return works

    def requeue(self, work: BatchWork[R]) -> None:
        """Put a partly served background batch back first in its ticket's queue."""
        with self.cond:
            if work.ticket.put_back(work):
                self._ring.appendleft(work.ticket)


def _interactive(ticket: Ticket[R]) -> bool:
    """A person waits for this ticket's result now (neither background nor interim work)."""
    return not ticket.background and not ticket.interim
