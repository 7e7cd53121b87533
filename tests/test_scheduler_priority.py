"""Background (job) tickets in the scheduler: interactive work first, background batches in
slices bounded by a time budget, and no MAX_QUEUE slot taken by jobs.

Orderings are exact: the model is gated (the test releases each call), as in
``tests/test_scheduler.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gigaam_api.scheduler import QueueFull, Scheduler
from tests.helpers import records_of, wait_until
from tests.scheduler_helpers import WAIT, Caller, GatedModel, wait_pending, wave


@pytest.fixture
def model() -> GatedModel:
    return GatedModel()


@pytest.fixture
def scheduler(model: GatedModel) -> Iterator[Scheduler[float]]:
    sched: Scheduler[float] = Scheduler(model, max_active=1, background_budget_s=1.0)
    sched.record_served()
    yield sched.start()
    model.gated = False
    for _ in range(64):
        model.permits.release()
    sched.stop()


def test_background_tickets_do_not_take_queue_slots(scheduler: Scheduler[float]) -> None:
    job = scheduler.admit("job", background=True)
    second_job = scheduler.admit("job2", background=True)
    interactive = scheduler.admit("sync")
    assert scheduler.active == 1  # what MAX_QUEUE bounds: interactive requests only
    with pytest.raises(QueueFull):
        scheduler.admit("sync2")
    for ticket in (job, second_job, interactive):
        ticket.close()


def test_a_background_batch_runs_one_wave_at_a_time_while_interactive_work_waits(
    scheduler: Scheduler[float], model: GatedModel
) -> None:
    job = scheduler.admit("job", background=True)
    long_batch = Caller(job, [1, 2, 3, 4])
    model.wait_entered()  # first slice: one wave (no estimate of the wave time yet)
    assert model.calls == [[1.0]]
    interactive = scheduler.admit("sync")
    short = Caller(interactive, [9])
    wait_pending(scheduler, 1)  # the interactive batch (the job's rest returns after its slice)
    model.permits.release()
    model.wait_entered()
    assert model.calls[-1] == [9.0]  # the interactive batch goes before the job's next wave
    model.permits.release()
    assert short.join().result == [9.0]
    interactive.close()
    model.gated = False
    for _ in range(8):
        model.permits.release()
    assert long_batch.join().result == [1.0, 2.0, 3.0, 4.0]  # slices reassemble in order
    job.close()
    served = [(b.request_id, b.size, b.background) for b in records_of(scheduler)]
    assert served[:2] == [("job", 1, True), ("sync", 1, False)]
    assert sum(size for rid, size, _ in served if rid == "job") == 4
    sync_batch = next(b for b in records_of(scheduler) if b.request_id == "sync")
    assert sync_batch.waited <= 1


def test_without_interactive_work_a_fast_model_runs_whole_batches(model: GatedModel) -> None:
    model.gated = False
    sched: Scheduler[float] = Scheduler(model, max_active=1, background_budget_s=10.0)
    sched.record_served()
    sched.start()
    try:
        with sched.admit("job", background=True) as job:
            assert job.infer([wave(v) for v in (1, 2, 3, 4)]) == [1, 2, 3, 4]
            assert job.infer([wave(v) for v in (5, 6, 7, 8)]) == [5, 6, 7, 8]
        sizes = [b.size for b in records_of(sched)]
        # the first wave measures the speed; afterwards the whole batch fits the budget
        assert sizes[0] == 1 and sizes[-1] == 4
    finally:
        sched.stop()


def test_interactive_tickets_go_first_even_when_queued_later(
    scheduler: Scheduler[float], model: GatedModel
) -> None:
    job = scheduler.admit("job", background=True)
    first = Caller(job, [1])
    model.wait_entered()
    other = scheduler.admit("job2", background=True)
    background = Caller(other, [5])
    wait_pending(scheduler, 1)
    interactive = scheduler.admit("sync")
    short = Caller(interactive, [9])
    wait_pending(scheduler, 2)
    model.gated = False
    for _ in range(8):
        model.permits.release()
    for caller in (first, background, short):
        caller.join()
    order = [b.request_id for b in records_of(scheduler)]
    assert order.index("sync") < order.index("job2")
    for ticket in (job, other, interactive):
        ticket.close()
    wait_until(lambda: scheduler.active == 0, "all tickets released", timeout=WAIT, interval=0.002)
