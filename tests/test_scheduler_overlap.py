"""The scheduler's second lane: a short interactive call beside the one in flight.

Same gated, deterministic batch function as ``tests/test_scheduler.py`` (``GatedModel`` of
``tests/scheduler_helpers.py``); which lane ran a call is read from the thread that called the
model, and "ran beside" means the second call entered the model while the first was still held
inside it — no timing involved.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from gigaam_api.cancellation import Cancelled
from gigaam_api.scheduler import Scheduler, SchedulerClosed
from tests.helpers import records_of
from tests.scheduler_helpers import WAIT, Caller, GatedModel, running, wait_pending

#: Waves of 4 samples: the overlap lane takes a turn of at most 16 padded samples.
OVERLAP = 16
FIRST_LANE = "worker"
SECOND_LANE = "worker-1"


class LaneModel(GatedModel):
    """A :class:`GatedModel` that also records which thread (lane) ran each call."""

    def __init__(self) -> None:
        super().__init__()
        self.lanes: dict[float, str] = {}

    def __call__(self, batch: list[np.ndarray], tags: list[object]) -> list[float]:
        for w in batch:
            self.lanes[float(w[0])] = threading.current_thread().name
        return super().__call__(batch, tags)


@pytest.fixture
def model() -> LaneModel:
    return LaneModel()


@pytest.fixture
def overlapping(model: LaneModel) -> Iterator[Scheduler[float]]:
    sched = Scheduler(model, max_active=8, overlap_samples=OVERLAP, name=FIRST_LANE)
    with running(sched, model) as started:
        yield started


def test_a_short_call_runs_beside_the_one_in_flight(
    overlapping: Scheduler[float], model: LaneModel
) -> None:
    assert overlapping.lanes == 2
    blocker = Caller(overlapping.admit("blocker"), [0.0])
    model.wait_entered()
    short = Caller(overlapping.admit("short"), [1.0, 2.0])
    model.wait_entered()  # entered while the blocker is still held inside the model
    assert model.lanes == {0.0: FIRST_LANE, 1.0: SECOND_LANE, 2.0: SECOND_LANE}
    model.permits.release(2)
    assert blocker.join().result == [0.0]
    assert short.join().result == [1.0, 2.0]
    assert sorted(record.request_id for record in records_of(overlapping)) == ["blocker", "short"]
    assert overlapping.calls_total == 2


def test_with_nothing_in_flight_every_call_runs_on_the_first_lane(
    overlapping: Scheduler[float], model: LaneModel
) -> None:
    model.gated = False
    for value in (1.0, 2.0, 3.0):
        with overlapping.admit(f"r{value}") as ticket:
            assert ticket.infer([np.full(4, value, dtype=np.float32)]) == [value]
    assert set(model.lanes.values()) == {FIRST_LANE}


def test_the_second_lane_takes_neither_background_nor_long_work(
    overlapping: Scheduler[float], model: LaneModel
) -> None:
    blocker = Caller(overlapping.admit("blocker"), [0.0])
    model.wait_entered()
    job = overlapping.admit("job", background=True)
    queued_job = Caller(job, [50.0])
    wait_pending(overlapping, 1)
    long = Caller(overlapping.admit("long"), [60.0], length=OVERLAP + 1)
    wait_pending(overlapping, 2)
    short = Caller(overlapping.admit("short"), [3.0])
    model.wait_entered()  # the short one, behind both in the ring, runs on the second lane
    assert model.lanes[3.0] == SECOND_LANE
    assert overlapping.pending_batches == 2  # the job and the long batch still wait
    model.gated = False
    model.permits.release(8)
    for caller in (blocker, queued_job, long, short):
        assert caller.join().error is None
    assert model.lanes[50.0] == model.lanes[60.0] == FIRST_LANE
    job.close()


def test_cancelling_a_call_on_the_second_lane_wakes_its_caller(
    overlapping: Scheduler[float], model: LaneModel
) -> None:
    blocker = Caller(overlapping.admit("blocker"), [0.0])
    model.wait_entered()
    ticket = overlapping.admit("short")
    short = Caller(ticket, [1.0])
    model.wait_entered()
    ticket.cancel()
    assert isinstance(short.join().error, Cancelled)
    model.permits.release(2)
    assert blocker.join().result == [0.0]
    # both lanes still serve: a new request after the cancelled one completes
    model.gated = False
    with overlapping.admit("after") as after:
        assert after.infer([np.full(4, 7.0, dtype=np.float32)]) == [7.0]


def test_stop_fails_what_waits_and_ends_both_lanes(model: LaneModel) -> None:
    sched = Scheduler(model, max_active=8, overlap_samples=OVERLAP).start()
    blocker = Caller(sched.admit("blocker"), [0.0])
    model.wait_entered()
    short = Caller(sched.admit("short"), [1.0])
    model.wait_entered()
    waiting = Caller(sched.admit("waiting"), [2.0])
    wait_pending(sched, 1)
    stopper = threading.Thread(target=sched.stop, args=(WAIT,))
    stopper.start()
    assert isinstance(waiting.join().error, SchedulerClosed)
    model.gated = False
    model.permits.release(2)  # the calls in flight finish and deliver; then both lanes end
    stopper.join(WAIT)
    assert not stopper.is_alive() and not sched.busy
    assert blocker.join().result == [0.0] and short.join().result == [1.0]


def test_without_overlap_there_is_one_lane() -> None:
    assert Scheduler(GatedModel(), max_active=1).lanes == 1
    with pytest.raises(ValueError):
        Scheduler(GatedModel(), max_active=1, overlap_samples=-1)
