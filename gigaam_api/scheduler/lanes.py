"""The lanes: the worker threads that run the model, one turn at a time each.

The CPU is the bottleneck, so running two long batches at once only makes both slower: one
worker thread (lane 0) runs the model one turn at a time, taking what :func:`.policy.plan_turn`
says from the ring of :class:`~.admission.Admission`, running the turn's model calls
(:func:`.policy.plan_turn_calls`) and settling each batch taken: its results or error to the
waiting caller, or a partly served background batch back to the ring.

A short call beside the current one (``overlap_samples`` > 0). On a 2-core CPU one short clip
keeps both cores only part busy (a 3 s clip runs 1.3× faster on two threads than on one), so
while lane 0 runs a call a second lane may run one more: an interactive turn whose waves,
padded, stay within ``overlap_samples`` (the server sets one short request, 25 s). The second
lane only starts while the first is busy, never takes background work and never a long call,
so two long calls never share the memory and the cores; the first lane keeps the round-robin
as before. Measured on a 2-vCPU box, int8: 16 clips at once cost 80 ms a clip with two calls in
flight against 98 ms one at a time (``benchmarks/README.md``). Results do not change: each call
is computed as it would be alone. ``infer_fn`` must then be thread-safe (ONNX Runtime sessions
are).

``infer_fn(waves, tags)`` gets one tag per wave: the opaque value its batch was submitted with
(:meth:`~.admission.Ticket.infer`), so a call that combines requests still lets each wave be
computed as its own request asked (the server: its language). The lanes never read a tag.

Within a turn: a ticket cancelled while its waves wait for a later call of the turn loses those
waves; a call in flight finishes for the others. If a combined call fails, each owner's waves
are run again alone, so an error reaches only the request whose audio causes it. Every call is
recorded (:mod:`.records`): one :class:`~.records.ServedBatch` per owner, with the call's
number (``call``) and how many owners shared it (``owners``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar, cast

import numpy as np

from gigaam_api.scheduler.admission import Admission, BatchWork, InferFn, SchedulerClosed
from gigaam_api.scheduler.policy import (
    ModelCall,
    ServingPolicy,
    Waiting,
    next_wave_seconds,
    plan_turn,
    plan_turn_calls,
)
from gigaam_api.scheduler.records import ServedBatch, ServedHook

__all__ = ["Lanes"]

R = TypeVar("R")

log = logging.getLogger("gigaam_api.scheduler")


class _Part(Generic[R]):
    """The waves of one batch taken in a turn, their results and records."""

    __slots__ = ("error", "filled", "records", "results", "waves", "work")

    def __init__(self, work: BatchWork[R], waves: list[np.ndarray]) -> None:
        self.work = work
        self.waves = waves
        self.results: list[R | None] = [None] * len(waves)
        self.filled = 0
        self.error: BaseException | None = None
        self.records: list[ServedBatch] = []

    @property
    def lengths(self) -> list[int]:
        return [len(wave) for wave in self.waves]

    @property
    def failed_or_cancelled(self) -> bool:
        return self.error is not None or self.work.settled

    @property
    def complete(self) -> bool:
        return self.filled == len(self.waves)

    def fill(self, wave: int, value: R) -> None:
        self.results[wave] = value
        self.filled += 1

    def fail(self, error: BaseException) -> None:
        self.error = error

    def record(self, served: ServedBatch) -> None:
        self.records.append(served)

    def all_results(self) -> list[R]:
        return cast("list[R]", self.results)  # every wave filled: see ``complete``


class Lanes(Generic[R]):
    """The worker threads of one scheduler: lane 0 always, lane 1 with ``overlap_samples``."""

    def __init__(
        self,
        desk: Admission[R],
        infer_fn: InferFn[R],
        policy: ServingPolicy,
        *,
        name: str,
        on_batch: Callable[[ServedBatch], None] | None,
        on_served: ServedHook | None,
    ) -> None:
        self._desk = desk
        self._cond = desk.cond
        self._infer_fn = infer_fn
        self._policy = policy
        self._on_batch = on_batch
        self._served_hooks: list[ServedHook] = [] if on_served is None else [on_served]
        #: Seconds per wave of background work (moving average): sizes the slices.
        self._wave_seconds: float | None = None
        #: Lane 0's last non-interactive turn was interim work (background work goes next).
        self._last_was_interim = False
        #: Whether each lane is running a turn (lane 0: any work; lane 1: short overlap).
        self._busy = [False, False] if policy.overlap_samples > 0 else [False]
        self._threads = [
            threading.Thread(
                target=self._run, args=(lane,), name=f"{name}-{lane}" if lane else name, daemon=True
            )
            for lane in range(len(self._busy))
        ]
        self._started = False

    @property
    def policy(self) -> ServingPolicy:
        return self._policy

    @policy.setter
    def policy(self, policy: ServingPolicy) -> None:
        """Takes effect from the next turn (the number of lanes is fixed at construction)."""
        with self._cond:
            self._policy = policy

    @property
    def count(self) -> int:
        return len(self._busy)

    @property
    def busy(self) -> bool:
        with self._cond:
            return any(self._busy)

    def add_served_hook(self, hook: ServedHook) -> None:
        with self._cond:
            self._served_hooks.append(hook)

    def start(self) -> None:
        with self._cond:
            if not self._started:
                self._started = True
                for thread in self._threads:
                    thread.start()

    def join(self, timeout: float | None) -> None:
        """Wait for the threads to end (they do once the admission desk is stopping)."""
        if self._started:
            for thread in self._threads:
                thread.join(timeout)

    # -- a lane's loop -----------------------------------------------------------------------

    def _run(self, lane: int) -> None:
        while True:
            turn = self._next_turn(lane)
            if turn is None:
                return
            parts, policy = turn
            for call in plan_turn_calls([part.lengths for part in parts], policy):
                self._run_call(parts, call, retry_alone=True)
            records: list[ServedBatch] = []
            with self._cond:
                for part in parts:
                    records.extend(part.records)
                    self._settle(part)
                self._busy[lane] = False
                self._cond.notify_all()
            if self._on_batch is not None:
                for record in records:
                    try:
                        self._on_batch(record)
                    except Exception:
                        log.exception("on_batch callback failed")

    def _next_turn(self, lane: int) -> tuple[list[_Part[R]], ServingPolicy] | None:
        """Block until this lane has work; take the turn's work (None: stop)."""
        with self._cond:
            while True:
                if self._desk.stopping:
                    return None
                ring = self._desk.waiting()
                policy = self._policy
                plan = plan_turn(
                    [
                        Waiting(t.background, t.next_batch.remaining_lengths(), interim=t.interim)
                        for t in ring
                    ],
                    policy,
                    lane=lane,
                    first_lane_busy=self._busy[0],
                    interactive_admitted=self._desk.interactive_count(),
                    last_was_interim=self._last_was_interim,
                    wave_seconds=self._wave_seconds,
                )
                if plan is not None:
                    break
                self._cond.wait()
            works = self._desk.take([ring[take.position] for take in plan.takes])
            parts = [
                _Part(work, work.next_waves(take.waves))
                for work, take in zip(works, plan.takes, strict=True)
            ]
            self._busy[lane] = True
            head = ring[plan.takes[0].position]
            if lane == 0 and (head.interim or head.background):
                self._last_was_interim = head.interim
            self._cond.notify_all()  # the second lane may start now that this one is busy
            return parts, policy

    def _run_call(self, parts: list[_Part[R]], call: ModelCall, *, retry_alone: bool) -> None:
        """Run one model call over ``call``'s waves; results and records go to the parts."""
        with self._cond:  # waves of a ticket cancelled meanwhile are not computed
            call = call.only([p for p in call.owners if not parts[p].failed_or_cancelled])
        if not call.waves:
            return
        waves = [parts[ref.part].waves[ref.wave] for ref in call.waves]
        tags = [parts[ref.part].work.tag for ref in call.waves]
        start = time.perf_counter()
        result: list[R] | None = None
        error: BaseException | None = None
        try:
            result = self._infer_fn(waves, tags)
        except Exception as exc:  # delivered to the request(s) that own the waves
            error = exc
        seconds = time.perf_counter() - start
        owners = call.owners
        if error is not None and retry_alone and len(owners) > 1:
            # a combined call failed: run each owner's waves alone, so the error reaches only
            # the request whose audio causes it (the failed call is recorded all the same)
            self._record(parts, call, seconds, failed=True)
            for p in owners:
                self._run_call(parts, call.only([p]), retry_alone=False)
            return
        self._record(parts, call, seconds, failed=False)
        with self._cond:
            if error is not None:
                for p in owners:
                    parts[p].fail(error)
                return
            assert result is not None
            for ref, value in zip(call.waves, result, strict=True):
                parts[ref.part].fill(ref.wave, value)

    def _record(
        self, parts: list[_Part[R]], call: ModelCall, seconds: float, *, failed: bool
    ) -> None:
        longest = max(len(parts[ref.part].waves[ref.wave]) for ref in call.waves)
        owners = call.owners
        with self._cond:
            number = self._desk.calls
            for position, p in enumerate(owners):
                mine = call.of(p)
                work = parts[p].work
                parts[p].record(
                    ServedBatch(
                        request_id=work.ticket.request_id,
                        batch_index=work.index,
                        size=len(mine),
                        waited=number - work.submitted_at,
                        seconds=seconds,
                        background=work.ticket.background,
                        interim=work.ticket.interim,
                        call=number,
                        owners=len(owners),
                        part=position,
                        computed_samples=len(mine) * longest,
                        audio_samples=sum(len(parts[p].waves[w]) for w in mine),
                        failed=failed,
                    )
                )
                if work.ticket.background and mine and not failed:
                    self._wave_seconds = next_wave_seconds(self._wave_seconds, seconds / len(mine))
            self._desk.count_call()
            for p in owners:
                for hook in self._served_hooks:
                    try:
                        hook(parts[p].records[-1])
                    except Exception:
                        log.exception("on_served hook failed")

    def _settle(self, part: _Part[R]) -> None:
        """After the turn: deliver a part's results or error, or requeue a background batch."""
        work = part.work
        work.ticket.turn_ended()
        if part.error is not None:
            work.finish(None, part.error)
            return
        if work.settled:
            return
        if not part.complete:  # defensive: every call of a live part has run
            work.finish(None, SchedulerClosed())
            return
        if not work.advance(part.all_results(), self._desk.calls):
            work.complete()
        elif self._desk.stopping:
            work.finish(None, SchedulerClosed())
        else:
            self._desk.requeue(work)
