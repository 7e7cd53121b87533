"""One inference worker shared fairly by all requests (``docs/design.md``).

The CPU is the bottleneck, so running two batches at once only makes both slower: a single
worker thread owns the model and runs one batch at a time. Each admitted request gets a
:class:`Ticket`; its pipeline thread calls :meth:`Ticket.infer`, which blocks until the worker
has run that batch. The worker serves tickets with pending batches round-robin, so a short
request waits behind at most about one batch of a multi-hour one instead of behind all of it.

Admission is bounded (``MAX_QUEUE`` requests queued + running): :meth:`Scheduler.admit` raises
:class:`QueueFull` beyond that, which the API turns into 503 + ``Retry-After``. Cancellation
(client gone) is cooperative: :meth:`Ticket.cancel` wakes a waiting caller with
:class:`Cancelled` at once and makes every later ``infer`` raise it, so the pipeline unwinds
(and stops ffmpeg) between batches.

The worker records the order in which it served batches (:attr:`Scheduler.served`); tests
assert fairness on that record rather than on wall-clock time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

import numpy as np

from gigaam_api.cancellation import Cancelled

R = TypeVar("R")
Batch = Sequence[np.ndarray]

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class ServedBatch:
    """One batch the worker ran, in serving order.

    ``waited`` counts the batches (of any request) the worker finished between this batch's
    submission and its start: with round-robin it is at most the number of other active
    requests, which is what the fairness tests assert.
    """

    request_id: str
    batch_index: int
    size: int
    waited: int
    seconds: float


class _BatchWork(Generic[R]):
    """A batch waiting for (or running on) the worker; the caller blocks on ``done``."""

    __slots__ = ("batch", "done", "error", "index", "result", "submitted_at", "ticket")

    def __init__(self, ticket: Ticket[R], batch: list[np.ndarray], index: int, at: int) -> None:
        self.ticket = ticket
        self.batch = batch
        self.index = index
        self.submitted_at = at
        self.done = threading.Event()
        self.result: list[R] | None = None
        self.error: BaseException | None = None

    def finish(self, result: list[R] | None, error: BaseException | None) -> None:
        """Settle this batch once; later settlements (a result after a cancel) are dropped."""
        if self.done.is_set():
            return
        self.result = result
        self.error = error
        self.done.set()


class Ticket(Generic[R]):
    """A request's right to use the worker. Use as a context manager so the slot is freed."""

    def __init__(self, scheduler: Scheduler[R], request_id: str) -> None:
        self._scheduler = scheduler
        self.request_id = request_id
        self._pending: deque[_BatchWork[R]] = deque()
        self._running: _BatchWork[R] | None = None
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

    def infer(self, batch: Batch) -> list[R]:
        """Run ``batch`` on the worker and return its results; blocks the calling thread.

        Raises :class:`Cancelled` if the ticket is (or becomes) cancelled or closed,
        :class:`SchedulerClosed` if the service shuts down, and re-raises whatever the
        model raised for this batch.
        """
        work = self._scheduler._submit(self, list(batch))
        work.done.wait()
        if work.error is not None:
            raise work.error
        assert work.result is not None
        return work.result

    def cancel(self) -> None:
        """Stop this request's work: the waiting ``infer`` and all later ones raise Cancelled."""
        self._scheduler._cancel(self, closing=False)

    def close(self) -> None:
        """Free the admission slot (idempotent); cancels anything still pending."""
        self._scheduler._cancel(self, closing=True)

    def __enter__(self) -> Ticket[R]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Scheduler(Generic[R]):
    """The single inference worker with bounded admission and round-robin batch service.

    ``infer_fn`` is called only from the worker thread, so it need not be thread-safe
    (``AsrModel.transcribe`` in the server). ``on_batch`` (optional) is called on the worker
    thread after every batch, e.g. to feed Prometheus metrics; it must be quick.
    """

    def __init__(
        self,
        infer_fn: Callable[[list[np.ndarray]], list[R]],
        max_active: int,
        *,
        on_batch: Callable[[ServedBatch], None] | None = None,
        record_limit: int = 10_000,
        name: str = "inference-worker",
    ) -> None:
        if max_active < 1:
            raise ValueError("max_active must be at least 1")
        self._infer_fn = infer_fn
        self.max_active = max_active
        self._on_batch = on_batch
        self._cond = threading.Condition()
        self._active: dict[int, Ticket[R]] = {}
        self._ring: deque[Ticket[R]] = deque()
        self._served: deque[ServedBatch] = deque(maxlen=record_limit)
        self._served_total = 0
        self._busy = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Scheduler[R]:
        with self._cond:
            if not self._started:
                self._started = True
                self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Refuse new work, fail everything pending with SchedulerClosed, end the worker."""
        with self._cond:
            self._stopping = True
            for ticket in list(self._ring):
                self._fail_pending(ticket, SchedulerClosed())
            self._ring.clear()
            self._cond.notify_all()
        if self._started:
            self._thread.join(timeout)

    def __enter__(self) -> Scheduler[R]:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- introspection (metrics, health, tests) ------------------------------------------

    @property
    def active(self) -> int:
        """Admitted requests (queued + running): the queue depth that MAX_QUEUE bounds."""
        with self._cond:
            return len(self._active)

    @property
    def pending_batches(self) -> int:
        """Batches submitted and not yet started."""
        with self._cond:
            return sum(len(t._pending) for t in self._ring)

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._busy

    @property
    def served(self) -> list[ServedBatch]:
        """The most recent served batches, oldest first (bounded by ``record_limit``)."""
        with self._cond:
            return list(self._served)

    @property
    def served_total(self) -> int:
        with self._cond:
            return self._served_total

    # -- tickets -------------------------------------------------------------------------

    def admit(self, request_id: str) -> Ticket[R]:
        """Admit a request or raise :class:`QueueFull` / :class:`SchedulerClosed`."""
        with self._cond:
            if self._stopping:
                raise SchedulerClosed()
            if len(self._active) >= self.max_active:
                raise QueueFull(self.max_active)
            ticket = Ticket(self, request_id)
            self._active[id(ticket)] = ticket
            return ticket

    def _submit(self, ticket: Ticket[R], batch: list[np.ndarray]) -> _BatchWork[R]:
        with self._cond:
            work = _BatchWork(ticket, batch, ticket._batches, self._served_total)
            if ticket._cancelled or ticket._closed:
                work.finish(None, Cancelled(f"request {ticket.request_id} was cancelled"))
                return work
            if self._stopping:
                work.finish(None, SchedulerClosed())
                return work
            ticket._batches += 1
            if not ticket._pending:
                self._ring.append(ticket)
            ticket._pending.append(work)
            self._cond.notify_all()
            return work

    def _cancel(self, ticket: Ticket[R], *, closing: bool) -> None:
        with self._cond:
            if not closing:
                ticket._cancelled = True
            else:
                ticket._closed = True
                self._active.pop(id(ticket), None)
            error = Cancelled(f"request {ticket.request_id} was cancelled")
            self._fail_pending(ticket, error)
            if ticket._running is not None:
                ticket._running.finish(None, error)
            self._cond.notify_all()

    def _fail_pending(self, ticket: Ticket[R], error: BaseException) -> None:
        while ticket._pending:
            ticket._pending.popleft().finish(None, error)
        if ticket in self._ring:
            self._ring.remove(ticket)

    # -- the worker ----------------------------------------------------------------------

    def _next_work(self) -> _BatchWork[R] | None:
        """Block until a batch is pending; take the next one round-robin (None: stop)."""
        with self._cond:
            while not self._ring and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            ticket = self._ring.popleft()
            work = ticket._pending.popleft()
            if ticket._pending:  # more batches from the same ticket wait for their next turn
                self._ring.append(ticket)
            ticket._running = work
            self._busy = True
            return work

    def _run(self) -> None:
        while True:
            work = self._next_work()
            if work is None:
                return
            start = time.perf_counter()
            result: list[R] | None = None
            error: BaseException | None = None
            try:
                result = self._infer_fn(work.batch)
            except Exception as exc:  # delivered to the request that owns the batch
                error = exc
            seconds = time.perf_counter() - start
            with self._cond:
                record = ServedBatch(
                    request_id=work.ticket.request_id,
                    batch_index=work.index,
                    size=len(work.batch),
                    waited=self._served_total - work.submitted_at,
                    seconds=seconds,
                )
                self._served_total += 1
                self._served.append(record)
                work.ticket._running = None
                self._busy = False
                work.finish(result, error)
            if self._on_batch is not None:
                try:
                    self._on_batch(record)
                except Exception:
                    log.exception("on_batch callback failed")
