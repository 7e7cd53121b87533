"""The :class:`Scheduler`: admission, the serving policy and the lanes put together.

It is the face the rest of the code uses (``admit``, ``start``/``stop``, the queue gauges);
the work happens in :mod:`.admission` (tickets and the ring), :mod:`.policy` (what a turn
serves) and :mod:`.lanes` (the threads that run the model).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

from gigaam_api.batching import MAX_PADDING_SHARE
from gigaam_api.scheduler.admission import Admission, InferFn, Ticket
from gigaam_api.scheduler.lanes import Lanes
from gigaam_api.scheduler.policy import ServingPolicy
from gigaam_api.scheduler.records import ServedBatch, ServedHook, ServedLog

__all__ = ["Scheduler"]

R = TypeVar("R")


class Scheduler(Generic[R]):
    """The single inference worker with bounded admission and round-robin batch service.

    ``infer_fn(waves, tags)`` gets the waves of one model call and, for each, the tag its
    batch was submitted with (:meth:`Ticket.infer`; ``None`` when none was given). It is
    called only from the worker thread, so it need not be thread-safe
    (``AsrModel.transcribe`` in the server) — unless ``overlap_samples`` opens the second
    lane, which calls it from a second thread. ``on_batch`` (optional) is called on the worker
    thread after every batch, e.g. to feed Prometheus metrics; it must be quick. ``on_served``
    (optional) sees every record as it is made, under the lock (:mod:`.records`); tests use
    :meth:`record_served` instead, which can be installed on a scheduler already running.
    The policy's knobs (``combine_samples``, ``combine_requests``, ``overlap_samples``,
    ``max_padding``, ``background_budget_s``) are readable and settable attributes (the
    benchmarks switch them between rounds); a change applies from the next turn, and the
    number of lanes stays what ``overlap_samples`` opened at construction.
    """

    def __init__(
        self,
        infer_fn: InferFn[R],
        max_active: int,
        *,
        on_batch: Callable[[ServedBatch], None] | None = None,
        on_served: ServedHook | None = None,
        name: str = "inference-worker",
        background_budget_s: float = 1.0,
        combine_samples: int = 0,
        max_padding: float = MAX_PADDING_SHARE,
        combine_requests: bool = True,
        overlap_samples: int = 0,
    ) -> None:
        policy = ServingPolicy(
            combine_samples=combine_samples,
            combine_requests=combine_requests,
            overlap_samples=overlap_samples,
            max_padding=max_padding,
            background_budget_s=background_budget_s,
        )
        self._desk: Admission[R] = Admission(max_active)
        _check(policy)
        self._lanes = Lanes(
            self._desk, infer_fn, policy, name=name, on_batch=on_batch, on_served=on_served
        )
        self._log: ServedLog | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Scheduler[R]:
        self._lanes.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Refuse new work, fail everything pending with SchedulerClosed, end the worker."""
        self._desk.stop()
        self._lanes.join(timeout)

    def __enter__(self) -> Scheduler[R]:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- tickets -----------------------------------------------------------------------------

    def admit(
        self,
        request_id: str,
        *,
        background: bool = False,
        interim: bool = False,
        bounded: bool = True,
    ) -> Ticket[R]:
        """Admit a request or raise :class:`QueueFull` / :class:`SchedulerClosed`.

        ``background`` tickets (durable jobs), ``interim`` ones (a live turn's re-recognition,
        skipped rather than queued: :class:`Skipped`) and interactive ones admitted with
        ``bounded=False`` (live finals) are not bounded by ``max_active``.
        """
        return self._desk.admit(request_id, background, interim=interim, bounded=bounded)

    # -- introspection (metrics, health, tests) ----------------------------------------------

    @property
    def max_active(self) -> int:
        return self._desk.max_active

    @property
    def active(self) -> int:
        """Admitted requests (queued + running): the queue depth that MAX_QUEUE bounds."""
        return self._desk.bounded_count()

    @property
    def pending_batches(self) -> int:
        """Batches submitted and not yet started."""
        return self._desk.pending_batches()

    @property
    def busy(self) -> bool:
        return self._lanes.busy

    @property
    def lanes(self) -> int:
        """Model calls that may run at once (2 with ``overlap_samples``, else 1)."""
        return self._lanes.count

    @property
    def calls_total(self) -> int:
        """Model calls run so far."""
        return self._desk.calls

    def record_served(self, limit: int = 10_000) -> ServedLog:
        """Keep the records of the batches served from now on, and return that log.

        For tests and benchmarks: a server that never calls it keeps no records. Calling it
        again returns the same log (``limit`` is that of the first call).
        """
        if self._log is None:
            self._log = ServedLog(limit)
            self._lanes.add_served_hook(self._log)
        return self._log

    # -- the policy's knobs ------------------------------------------------------------------

    @property
    def policy(self) -> ServingPolicy:
        return self._lanes.policy

    def _set(self, **changes: int | float | bool) -> None:
        policy = dataclasses.replace(self._lanes.policy, **changes)  # type: ignore[arg-type]
        _check(policy)
        self._lanes.policy = policy

    @property
    def combine_samples(self) -> int:
        """Padded samples one turn may take from several interactive tickets (0: none)."""
        return self.policy.combine_samples

    @combine_samples.setter
    def combine_samples(self, value: int) -> None:
        self._set(combine_samples=value)

    @property
    def combine_requests(self) -> bool:
        """Whether a turn may take other tickets' batches too (False: int8, see the policy)."""
        return self.policy.combine_requests

    @combine_requests.setter
    def combine_requests(self, value: bool) -> None:
        self._set(combine_requests=value)

    @property
    def overlap_samples(self) -> int:
        """Padded samples up to which an interactive turn may run on the second lane."""
        return self.policy.overlap_samples

    @overlap_samples.setter
    def overlap_samples(self, value: int) -> None:
        self._set(overlap_samples=value)

    @property
    def max_padding(self) -> float:
        return self.policy.max_padding

    @max_padding.setter
    def max_padding(self, value: float) -> None:
        self._set(max_padding=value)

    @property
    def background_budget_s(self) -> float:
        return self.policy.background_budget_s

    @background_budget_s.setter
    def background_budget_s(self, value: float) -> None:
        self._set(background_budget_s=value)


def _check(policy: ServingPolicy) -> None:
    if not policy.background_budget_s > 0:
        raise ValueError("background_budget_s must be positive")
    if policy.combine_samples < 0 or policy.max_padding < 0 or policy.overlap_samples < 0:
        raise ValueError("combine_samples, max_padding, overlap_samples must not be negative")
