"""The scheduler's own logic: admission, round-robin service, cancellation, shutdown.

The batch function here is deterministic and gated (the test decides when each batch may
finish), so orderings are exact rather than timing-dependent. The real model goes through the
scheduler in the end-to-end API tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from gigaam_api.cancellation import Cancelled
from gigaam_api.scheduler import (
    QueueFull,
    Scheduler,
    SchedulerClosed,
    ServedBatch,
    Ticket,
)

WAIT = 5.0  # generous bound so a broken scheduler fails instead of hanging the suite


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


def wait_pending(scheduler: Scheduler[float], count: int) -> None:
    wait_until(lambda: scheduler.pending_batches == count)


class GatedModel:
    """Deterministic batch function: each wave → its first sample; each call waits for a permit."""

    def __init__(self, gated: bool = True) -> None:
        self.gated = gated
        self.permits = threading.Semaphore(0)
        self.calls: list[list[float]] = []
        self.entered = threading.Semaphore(0)
        self.fail_on: float | None = None

    def __call__(self, batch: list[np.ndarray]) -> list[float]:
        self.calls.append([float(w[0]) for w in batch])
        self.entered.release()
        if self.gated and not self.permits.acquire(timeout=WAIT):
            raise TimeoutError("test never released this batch")
        if self.fail_on is not None and float(batch[0][0]) == self.fail_on:
            raise ValueError("model exploded")
        return [float(w[0]) for w in batch]

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=WAIT), "worker never started the batch"


def wave(value: float) -> np.ndarray:
    return np.full(4, value, dtype=np.float32)


class Caller:
    """Runs ticket.infer on its own thread (as a pipeline thread would) and keeps the outcome."""

    def __init__(self, ticket: Ticket[float], values: list[float]) -> None:
        self.result: list[float] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(ticket, values), daemon=True)
        self.thread.start()

    def _run(self, ticket: Ticket[float], values: list[float]) -> None:
        try:
            self.result = ticket.infer([wave(v) for v in values])
        except BaseException as exc:
            self.error = exc

    def join(self) -> Caller:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "caller still blocked"
        return self


@pytest.fixture
def model() -> GatedModel:
    return GatedModel()


@pytest.fixture
def scheduler(model: GatedModel) -> Iterator[Scheduler[float]]:
    sched: Scheduler[float] = Scheduler(model, max_active=4).start()
    yield sched
    model.gated = False
    for _ in range(64):
        model.permits.release()
    sched.stop()


def test_infer_returns_the_batch_results_in_order(
    scheduler: Scheduler[float], model: GatedModel
) -> None:
    model.gated = False
    with scheduler.admit("r1") as ticket:
        assert ticket.infer([wave(1), wave(2), wave(3)]) == [1.0, 2.0, 3.0]
        assert ticket.infer([wave(4)]) == [4.0]
    served = scheduler.served
    assert [(b.request_id, b.batch_index, b.size) for b in served] == [("r1", 0, 3), ("r1", 1, 1)]
    assert all(b.seconds >= 0 for b in served)
    assert scheduler.served_total == 2


def test_admission_is_bounded_and_close_frees_the_slot() -> None:
    sched: Scheduler[float] = Scheduler(GatedModel(gated=False), max_active=2).start()
    try:
        a = sched.admit("a")
        b = sched.admit("b")
        assert sched.active == 2
        with pytest.raises(QueueFull) as info:
            sched.admit("c")
        assert info.value.limit == 2
        a.close()
        a.close()  # idempotent
        assert sched.active == 1
        c = sched.admit("c")
        assert c.infer([wave(7)]) == [7.0]
        b.close()
        c.close()
        assert sched.active == 0
        with pytest.raises(Cancelled):
            c.infer([wave(1)])  # a closed ticket cannot run batches
    finally:
        sched.stop()


def test_short_request_waits_at_most_one_batch_of_a_long_one(
    scheduler: Scheduler[float], model: GatedModel
) -> None:
    long_ticket = scheduler.admit("long")
    short_ticket = scheduler.admit("short")
    long_results: list[float] = []

    def long_pipeline() -> None:  # a pipeline submits its batches one after another
        for i in range(6):
            long_results.extend(long_ticket.infer([wave(100 + i)]))

    runner = threading.Thread(target=long_pipeline, daemon=True)
    runner.start()
    model.wait_entered()  # long batch 0 is running
    model.permits.release()
    model.wait_entered()  # long batch 1 is running
    short = Caller(short_ticket, [1.0])
    wait_pending(scheduler, 1)
    for _ in range(6):
        model.permits.release()
    short.join()
    runner.join(WAIT)
    assert short.result == [1.0]
    assert long_results == [100.0 + i for i in range(6)]
    order = [(b.request_id, b.batch_index) for b in scheduler.served]
    # the short batch goes right after the long batch that was running when it arrived
    assert order[:3] == [("long", 0), ("long", 1), ("short", 0)]
    short_record = next(b for b in scheduler.served if b.request_id == "short")
    assert short_record.waited <= 1
    assert order.index(("short", 0)) < order.index(("long", 2))


def test_tickets_are_served_round_robin(scheduler: Scheduler[float], model: GatedModel) -> None:
    blocker = scheduler.admit("blocker")
    first = Caller(blocker, [0.0])
    model.wait_entered()  # the worker is busy; everything below queues up
    tickets = {name: scheduler.admit(name) for name in ("a", "b", "c")}
    callers: list[Caller] = []
    # "a" floods the queue with three concurrent batches, "b" and "c" submit one each
    for i in range(3):
        callers.append(Caller(tickets["a"], [10.0 + i]))
        wait_pending(scheduler, i + 1)
    callers.append(Caller(tickets["b"], [20.0]))
    wait_pending(scheduler, 4)
    callers.append(Caller(tickets["c"], [30.0]))
    wait_pending(scheduler, 5)
    for _ in range(6):
        model.permits.release()
    for caller in [first, *callers]:
        caller.join()
        assert caller.error is None
    served = [(b.request_id, b.batch_index) for b in scheduler.served]
    assert served == [
        ("blocker", 0),
        ("a", 0),
        ("b", 0),
        ("c", 0),
        ("a", 1),
        ("a", 2),
    ]


def test_cancel_wakes_a_pending_caller_and_blocks_later_batches(
    scheduler: Scheduler[float], model: GatedModel
) -> None:
    blocker = scheduler.admit("blocker")
    running = Caller(blocker, [0.0])
    model.wait_entered()
    victim = scheduler.admit("victim")
    waiting = Caller(victim, [5.0])
    wait_pending(scheduler, 1)
    victim.cancel()
    waiting.join()
    assert isinstance(waiting.error, Cancelled)
    assert victim.cancelled
    assert scheduler.pending_batches == 0
    with pytest.raises(Cancelled):
        victim.infer([wave(6)])
    model.permits.release()
    running.join()
    assert running.result == [0.0]
    # the cancelled batch never reached the model
    assert model.calls == [[0.0]]
    assert scheduler.active == 2  # cancel does not free the slot, close does
    victim.close()
    assert scheduler.active == 1


def test_cancel_wakes_the_caller_of_a_running_batch(
    scheduler: Scheduler[float], model: GatedModel
) -> None:
    ticket = scheduler.admit("r")
    caller = Caller(ticket, [3.0])
    model.wait_entered()
    ticket.cancel()
    caller.join()  # returns while the worker is still inside the model
    assert isinstance(caller.error, Cancelled)
    model.permits.release()
    other = scheduler.admit("next")
    follower = Caller(other, [4.0])
    model.wait_entered()
    model.permits.release()
    assert follower.join().result == [4.0]
    assert [b.request_id for b in scheduler.served] == ["r", "next"]


def test_model_errors_reach_the_caller_and_the_worker_survives(
    scheduler: Scheduler[float], model: GatedModel
) -> None:
    model.gated = False
    model.fail_on = 13.0
    ticket = scheduler.admit("r")
    with pytest.raises(ValueError, match="model exploded"):
        ticket.infer([wave(13)])
    assert ticket.infer([wave(2)]) == [2.0]


def test_stop_fails_pending_work_and_refuses_new_tickets(model: GatedModel) -> None:
    sched: Scheduler[float] = Scheduler(model, max_active=3).start()
    first = Caller(sched.admit("a"), [1.0])
    model.wait_entered()
    pending = Caller(sched.admit("b"), [2.0])
    wait_pending(sched, 1)
    stopper = threading.Thread(target=sched.stop, daemon=True)
    stopper.start()
    pending.join()
    assert isinstance(pending.error, SchedulerClosed)
    model.permits.release()
    first.join()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    with pytest.raises(SchedulerClosed):
        sched.admit("c")


def test_on_batch_sees_every_batch_and_its_failures_are_contained() -> None:
    seen: list[ServedBatch] = []

    def on_batch(record: ServedBatch) -> None:
        seen.append(record)
        if len(seen) == 1:
            raise RuntimeError("metrics backend down")

    sched: Scheduler[float] = Scheduler(GatedModel(gated=False), 1, on_batch=on_batch)
    with sched, sched.admit("r") as ticket:
        assert ticket.infer([wave(1), wave(2)]) == [1.0, 2.0]
        assert ticket.infer([wave(3)]) == [3.0]
    assert [(r.request_id, r.batch_index, r.size) for r in seen] == [("r", 0, 2), ("r", 1, 1)]


def test_invalid_capacity_is_refused() -> None:
    with pytest.raises(ValueError):
        Scheduler(GatedModel(), max_active=0)
