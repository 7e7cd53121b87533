"""One inference worker shared fairly by all requests (``docs/design.md``).

The CPU is the bottleneck, so running two long batches at once only makes both slower: one
worker thread runs the model one turn at a time (a second lane may run a short call beside it,
see the end). Each admitted request gets a
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

Two priority classes. *Interactive* tickets (synchronous and SSE requests) are what a person
waits for; *background* tickets (durable jobs, admitted with ``background=True``) are served
only when no interactive batch is pending, and do not count against ``MAX_QUEUE`` (the work
runner bounds them with ``JOB_CONCURRENCY``). A background batch is run in slices bounded by a
time budget (``background_budget_s``, estimated from the seconds per wave measured so far; at
least one wave), re-checking for interactive work between slices: a 3 s clip that arrives
while a long work runs then waits for at most about one budget (one ~22 s chunk on a slow CPU)
instead of a whole batch of four (with the second lane, below, it does not wait at all: a
short clip runs beside the slice). While interactive tickets are admitted, slices are at most
one wave. With a fast model the budget holds the whole batch, so nothing is lost.

Combined calls (``combine_samples`` > 0). Every model call has a fixed cost and a 3 s clip
alone is a 75-frame GEMM, so short requests can run faster together (how much depends on the
hardware: little on a 2-core CPU, ``benchmarks/README.md``). When the worker takes an interactive
ticket's batch it also takes the next pending batch of every other interactive ticket, in ring
order, while the waves taken stay within ``combine_samples`` padded samples (the audio of one
full pipeline batch in the server) — a batch that does not fit is left where it is and heads
the next turn. The waves taken are then planned into model calls by length
(:func:`gigaam_api.batching.plan_calls`): similar lengths share a call, so a clip is not padded
to a long chunk, and a single batch of chunks of very different lengths is split the same way.
Round-robin order is kept (a combined turn serves the next tickets of the ring at once), as is
background work's place (never combined, only when no interactive batch waits). A ticket
cancelled while its waves wait for a later call of the turn loses those waves; a call in flight
finishes for the others. If a combined call fails, each owner's waves are run again alone, so
an error reaches only the request whose audio causes it. :attr:`Scheduler.served` gets one
:class:`ServedBatch` per owner and call, with the call's number (``call``) and how many owners
shared it (``owners``).

A short call beside the current one (``overlap_samples`` > 0). On a 2-core CPU one short clip
keeps both cores only part busy (a 3 s clip runs 1.3× faster on two threads than on one), so
while the worker runs a call a second *lane* may run one more: an interactive turn whose
waves, padded, stay within ``overlap_samples`` (the server sets one short request, 25 s).
The second lane only starts while the first is busy, never takes background work and never a
long call, so two long calls never share the memory and the cores; the first lane keeps the
round-robin as before. Measured on a 2-vCPU box, int8: 16 clips at once cost 80 ms a clip with
two calls in flight against 98 ms one at a time (``benchmarks/README.md``). Results do not
change: each call is computed as it would be alone. ``infer_fn`` must then be thread-safe
(ONNX Runtime sessions are).
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

from gigaam_api.batching import MAX_PADDING_SHARE, plan_calls
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
    """One batch (or the part of it in one model call) the worker ran, in serving order.

    ``waited`` counts the model calls the worker finished between this batch's submission and
    its start: with round-robin it is at most the number of other active requests, which is
    what the fairness tests assert. ``call`` numbers the model calls (records of batches
    combined into one call share it), ``owners`` is how many batches shared that call and
    ``seconds`` is the call's time (the same for all of them).
    """

    request_id: str
    batch_index: int
    size: int
    waited: int
    seconds: float
    background: bool = False
    call: int = 0
    owners: int = 1
    #: Position of this batch among the call's owners (0: the one whose turn it was).
    part: int = 0
    #: Samples the call computed (its waves padded to the longest) and samples of real audio.
    computed_samples: int = 0
    audio_samples: int = 0
    #: The call failed and its owners' waves were run again alone (recorded separately).
    failed: bool = False


class _BatchWork(Generic[R]):
    """A batch waiting for (or running on) the worker; the caller blocks on ``done``."""

    __slots__ = (
        "batch",
        "done",
        "error",
        "index",
        "offset",
        "partial",
        "result",
        "submitted_at",
        "ticket",
    )

    def __init__(self, ticket: Ticket[R], batch: list[np.ndarray], index: int, at: int) -> None:
        self.ticket = ticket
        self.batch = batch
        self.index = index
        self.submitted_at = at
        self.done = threading.Event()
        self.result: list[R] | None = None
        self.error: BaseException | None = None
        #: Waves already run (a background batch is served in slices) and their results.
        self.offset = 0
        self.partial: list[R] = []

    def finish(self, result: list[R] | None, error: BaseException | None) -> None:
        """Settle this batch once; later settlements (a result after a cancel) are dropped."""
        if self.done.is_set():
            return
        self.result = result
        self.error = error
        self.done.set()


class Ticket(Generic[R]):
    """A request's right to use the worker. Use as a context manager so the slot is freed."""

    def __init__(self, scheduler: Scheduler[R], request_id: str, background: bool = False) -> None:
        self._scheduler = scheduler
        self.request_id = request_id
        self.background = background
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
    (``AsrModel.transcribe`` in the server) — unless ``overlap_samples`` opens the second
    lane, which calls it from a second thread. ``on_batch`` (optional) is called on the worker
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
        background_budget_s: float = 1.0,
        combine_samples: int = 0,
        max_padding: float = MAX_PADDING_SHARE,
        combine_requests: bool = True,
        overlap_samples: int = 0,
    ) -> None:
        if max_active < 1:
            raise ValueError("max_active must be at least 1")
        if not background_budget_s > 0:
            raise ValueError("background_budget_s must be positive")
        if combine_samples < 0 or max_padding < 0 or overlap_samples < 0:
            raise ValueError("combine_samples, max_padding, overlap_samples must not be negative")
        self._infer_fn = infer_fn
        self.max_active = max_active
        self.background_budget_s = background_budget_s
        #: Padded samples one turn may take from several interactive tickets (0: no combining,
        #: one batch per turn and one model call per batch, as before combining existed).
        self.combine_samples = combine_samples
        self.max_padding = max_padding
        #: Whether a turn may take other tickets' batches too. False keeps every model call to
        #: one request's waves (length-aware splitting still applies): what an engine needs
        #: whose per-wave results depend on the other waves of a call (int8, see
        #: gigaam_api/service/model_service.py), so a request's text never depends on the
        #: server's load.
        self.combine_requests = combine_requests
        #: Padded samples up to which an interactive turn may run on the second lane, beside
        #: the call in flight (0: one model call at a time).
        self.overlap_samples = overlap_samples
        #: Seconds per wave of background work (moving average): sizes the slices.
        self._wave_seconds: float | None = None
        self._on_batch = on_batch
        self._cond = threading.Condition()
        self._active: dict[int, Ticket[R]] = {}
        self._ring: deque[Ticket[R]] = deque()
        self._served: deque[ServedBatch] = deque(maxlen=record_limit)
        self._served_total = 0
        self._calls = 0
        #: Whether each lane is running a turn (lane 0: any work; lane 1: short overlap).
        self._lane_busy = [False, False] if overlap_samples > 0 else [False]
        self._stopping = False
        self._threads = [
            threading.Thread(
                target=self._run, args=(lane,), name=f"{name}-{lane}" if lane else name, daemon=True
            )
            for lane in range(len(self._lane_busy))
        ]
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Scheduler[R]:
        with self._cond:
            if not self._started:
                self._started = True
                for thread in self._threads:
                    thread.start()
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
            for thread in self._threads:
                thread.join(timeout)

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
            return self._interactive_count()

    def _interactive_count(self) -> int:
        return sum(1 for t in self._active.values() if not t.background)

    @property
    def pending_batches(self) -> int:
        """Batches submitted and not yet started."""
        with self._cond:
            return sum(len(t._pending) for t in self._ring)

    @property
    def busy(self) -> bool:
        with self._cond:
            return any(self._lane_busy)

    @property
    def lanes(self) -> int:
        """Model calls that may run at once (2 with ``overlap_samples``, else 1)."""
        return len(self._lane_busy)

    @property
    def served(self) -> list[ServedBatch]:
        """The most recent served batches, oldest first (bounded by ``record_limit``)."""
        with self._cond:
            return list(self._served)

    @property
    def served_total(self) -> int:
        """Records ever added to :attr:`served` (one per batch and model call)."""
        with self._cond:
            return self._served_total

    @property
    def calls_total(self) -> int:
        """Model calls run so far."""
        with self._cond:
            return self._calls

    # -- tickets -------------------------------------------------------------------------

    def admit(self, request_id: str, *, background: bool = False) -> Ticket[R]:
        """Admit a request or raise :class:`QueueFull` / :class:`SchedulerClosed`.

        ``background`` tickets (durable jobs) are not bounded by ``max_active``.
        """
        with self._cond:
            if self._stopping:
                raise SchedulerClosed()
            if not background and self._interactive_count() >= self.max_active:
                raise QueueFull(self.max_active)
            ticket = Ticket(self, request_id, background)
            self._active[id(ticket)] = ticket
            return ticket

    def _submit(self, ticket: Ticket[R], batch: list[np.ndarray]) -> _BatchWork[R]:
        with self._cond:
            work = _BatchWork(ticket, batch, ticket._batches, self._calls)
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

    def _next_work(self, lane: int) -> list[_Part[R]] | None:
        """Block until this lane has work; take the turn's work (None: stop).

        Lane 0: interactive tickets round-robin first; a background ticket only when no
        interactive batch waits. An interactive turn may take the next batch of several
        interactive tickets (combining); a background turn takes one slice of one batch.
        Lane 1 (overlap): only while lane 0 is busy, the first interactive ticket in ring
        order whose next batch is short (:meth:`_overlap_ticket`).
        """
        with self._cond:
            while True:
                if self._stopping:
                    return None
                if lane == 0 and self._ring:
                    ticket = next((t for t in self._ring if not t.background), self._ring[0])
                    limit = self.combine_samples
                    break
                if lane > 0 and self._lane_busy[0]:
                    found = self._overlap_ticket()
                    if found is not None:
                        ticket = found
                        limit = min(self.combine_samples, self.overlap_samples)
                        break
                self._cond.wait()
            taken = [ticket]
            if not ticket.background and limit > 0 and self.combine_requests:
                taken.extend(self._combinable(ticket, limit))
            parts: list[_Part[R]] = []
            for owner in taken:
                self._ring.remove(owner)
                work = owner._pending.popleft()
                owner._running = work
                count = len(work.batch) - work.offset
                if owner.background:
                    count = min(count, self._background_slice())
                parts.append(_Part(work, work.batch[work.offset : work.offset + count]))
            for owner in taken:  # more batches of the same tickets wait for their next turn
                if owner._pending:
                    self._ring.append(owner)
            self._lane_busy[lane] = True
            self._cond.notify_all()  # the overlap lane may start now that this one is busy
            return parts

    def _overlap_ticket(self) -> Ticket[R] | None:
        """The first interactive ticket in ring order whose next batch, padded, is short."""
        for ticket in self._ring:
            if ticket.background:
                continue
            waves = ticket._pending[0].batch
            if len(waves) * max((len(w) for w in waves), default=0) <= self.overlap_samples:
                return ticket
        return None

    def _combinable(self, first: Ticket[R], limit: int) -> list[Ticket[R]]:
        """Other interactive tickets whose next batch joins ``first``'s turn, in ring order.

        The turn's waves, padded to the longest, stay within ``limit`` samples (or within
        the first batch alone, if that is larger); a batch that would not fit is skipped and
        keeps its place at the head of the ring.
        """
        waves = first._pending[0].batch
        count, longest = len(waves), max((len(w) for w in waves), default=0)
        limit = max(limit, count * longest)
        joined: list[Ticket[R]] = []
        for ticket in self._ring:
            if ticket is first or ticket.background:
                continue
            batch = ticket._pending[0].batch
            new_count = count + len(batch)
            new_longest = max([longest, *(len(w) for w in batch)])
            if new_count * new_longest <= limit:
                joined.append(ticket)
                count, longest = new_count, new_longest
        return joined

    def _background_slice(self) -> int:
        """Waves of background work that fit the time budget (one while interactive waits)."""
        if self._interactive_count() > 0 or self._wave_seconds is None:
            return 1
        return max(1, int(self.background_budget_s / max(self._wave_seconds, 1e-6)))

    def _requeue(self, work: _BatchWork[R]) -> None:
        """Put a partly served background batch back at the head of its ticket's queue."""
        ticket = work.ticket
        if not ticket._pending:
            self._ring.appendleft(ticket)
        ticket._pending.appendleft(work)

    def _plan(self, parts: list[_Part[R]]) -> list[list[tuple[int, int]]]:
        """This turn's model calls, each a list of (part, wave) positions."""
        flat = [(p, w) for p, part in enumerate(parts) for w in range(len(part.waves))]
        if self.combine_samples <= 0:  # as before combining existed: one call per batch
            return [[(p, w) for p2, w in flat if p2 == p] for p in range(len(parts))]
        lengths = [len(parts[p].waves[w]) for p, w in flat]
        groups = plan_calls(lengths, max_padding=self.max_padding)
        return [[flat[i] for i in group] for group in groups]

    def _run(self, lane: int) -> None:
        while True:
            parts = self._next_work(lane)
            if parts is None:
                return
            for call in self._plan(parts):
                self._run_call(parts, call, retry_alone=True)
            records: list[ServedBatch] = []
            with self._cond:
                for part in parts:
                    records.extend(part.records)
                    self._settle(part)
                self._lane_busy[lane] = False
                self._cond.notify_all()
            if self._on_batch is not None:
                for record in records:
                    try:
                        self._on_batch(record)
                    except Exception:
                        log.exception("on_batch callback failed")

    def _run_call(
        self, parts: list[_Part[R]], call: list[tuple[int, int]], *, retry_alone: bool
    ) -> None:
        """Run one model call over ``call``'s waves; results and records go to the parts."""
        with self._cond:  # waves of a ticket cancelled meanwhile are not computed
            call = [(p, w) for p, w in call if not parts[p].failed_or_cancelled]
        if not call:
            return
        waves = [parts[p].waves[w] for p, w in call]
        start = time.perf_counter()
        result: list[R] | None = None
        error: BaseException | None = None
        try:
            result = self._infer_fn(waves)
        except Exception as exc:  # delivered to the request(s) that own the waves
            error = exc
        seconds = time.perf_counter() - start
        owners = sorted({p for p, _ in call})
        if error is not None and retry_alone and len(owners) > 1:
            # a combined call failed: run each owner's waves alone, so the error reaches only
            # the request whose audio causes it (the failed call is recorded all the same)
            self._record(parts, call, seconds, failed=True)
            for p in owners:
                self._run_call(parts, [(q, w) for q, w in call if q == p], retry_alone=False)
            return
        self._record(parts, call, seconds, failed=False)
        with self._cond:
            if error is not None:
                for p in owners:
                    parts[p].error = error
                return
            assert result is not None
            for (p, w), value in zip(call, result, strict=True):
                parts[p].results[w] = value
                parts[p].filled += 1

    def _record(
        self, parts: list[_Part[R]], call: list[tuple[int, int]], seconds: float, *, failed: bool
    ) -> None:
        longest = max(len(parts[p].waves[w]) for p, w in call)
        owners = sorted({p for p, _ in call})
        with self._cond:
            for position, p in enumerate(owners):
                mine = [w for q, w in call if q == p]
                work = parts[p].work
                parts[p].records.append(
                    ServedBatch(
                        request_id=work.ticket.request_id,
                        batch_index=work.index,
                        size=len(mine),
                        waited=self._calls - work.submitted_at,
                        seconds=seconds,
                        background=work.ticket.background,
                        call=self._calls,
                        owners=len(owners),
                        part=position,
                        computed_samples=len(mine) * longest,
                        audio_samples=sum(len(parts[p].waves[w]) for w in mine),
                        failed=failed,
                    )
                )
                if work.ticket.background and mine and not failed:
                    per_wave = seconds / len(mine)
                    previous = self._wave_seconds
                    self._wave_seconds = (
                        per_wave if previous is None else 0.7 * previous + 0.3 * per_wave
                    )
            self._calls += 1
            for p in owners:
                self._served_total += 1
                self._served.append(parts[p].records[-1])

    def _settle(self, part: _Part[R]) -> None:
        """After the turn: deliver a part's results or error, or requeue a background batch."""
        work = part.work
        work.ticket._running = None
        if part.error is not None:
            work.finish(None, part.error)
            return
        if work.done.is_set():
            return
        if part.filled < len(part.waves):  # defensive: every call of a live part has run
            work.finish(None, SchedulerClosed())
            return
        work.partial.extend(part.results)  # type: ignore[arg-type]  # all filled
        work.offset += len(part.waves)
        if work.offset < len(work.batch):
            if self._stopping:
                work.finish(None, SchedulerClosed())
            else:
                self._requeue(work)
                work.submitted_at = self._calls
        else:
            work.finish(work.partial, None)


class _Part(Generic[R]):
    """The waves of one batch taken in this turn, their results and records."""

    __slots__ = ("error", "filled", "records", "results", "waves", "work")

    def __init__(self, work: _BatchWork[R], waves: Sequence[np.ndarray]) -> None:
        self.work = work
        self.waves = list(waves)
        self.results: list[R | None] = [None] * len(self.waves)
        self.filled = 0
        self.error: BaseException | None = None
        self.records: list[ServedBatch] = []

    @property
    def failed_or_cancelled(self) -> bool:
        return self.error is not None or self.work.done.is_set()
