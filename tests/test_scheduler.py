"""The scheduler's own logic: admission, round-robin service, cancellation, shutdown.

The batch function here is deterministic and gated (the test decides when each batch may
finish), so orderings are exact rather than timing-dependent. The real model goes through the
scheduler in the end-to-end API tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from gigaam_api.cancellation import Cancelled
from gigaam_api.scheduler import (
    QueueFull,
    Scheduler,
    SchedulerClosed,
    ServedBatch,
    Ticket,
)
from tests.helpers import records_of, records_total
from tests.scheduler_helpers import WAIT, Caller, GatedModel, running, wait_pending, wave


@pytest.fixture
def model() -> GatedModel:
    return GatedModel()


@pytest.fixture
def scheduler(model: GatedModel) -> Iterator[Scheduler[float]]:
    with running(Scheduler(model, max_active=4), model) as sched:
        yield sched


def test_infer_returns_the_batch_results_in_order(
    scheduler: Scheduler[float], model: GatedModel
) -> None:
    model.gated = False
    with scheduler.admit("r1") as ticket:
        assert ticket.infer([wave(1), wave(2), wave(3)]) == [1.0, 2.0, 3.0]
        assert ticket.infer([wave(4)]) == [4.0]
    served = records_of(scheduler)
    assert [(b.request_id, b.batch_index, b.size) for b in served] == [("r1", 0, 3), ("r1", 1, 1)]
    assert all(b.seconds >= 0 for b in served)
    assert records_total(scheduler) == 2


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
    order = [(b.request_id, b.batch_index) for b in records_of(scheduler)]
    # the short batch goes right after the long batch that was running when it arrived
    assert order[:3] == [("long", 0), ("long", 1), ("short", 0)]
    short_record = next(b for b in records_of(scheduler) if b.request_id == "short")
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
    served = [(b.request_id, b.batch_index) for b in records_of(scheduler)]
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
    assert [b.request_id for b in records_of(scheduler)] == ["r", "next"]


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


def test_records_are_kept_only_when_asked_and_are_there_once_infer_returns() -> None:
    seen: list[ServedBatch] = []

    def on_served(record: ServedBatch) -> None:
        seen.append(record)
        if len(seen) == 1:
            raise RuntimeError("a broken hook must not stop the worker")

    sched: Scheduler[float] = Scheduler(GatedModel(gated=False), 1, on_served=on_served)
    with sched, sched.admit("r") as ticket:
        assert ticket.infer([wave(1)]) == [1.0]
        assert [(r.request_id, r.batch_index) for r in seen] == [("r", 0)]
        log = sched.record_served(limit=2)
        assert sched.record_served() is log and log.records == []  # from now on only
        for value in (2, 3, 4):
            assert ticket.infer([wave(value)]) == [value]
            assert log.records[-1].batch_index == value - 1  # recorded before infer returned
    assert [r.batch_index for r in log.records] == [2, 3] and log.total == 3
    assert [r.batch_index for r in seen] == [0, 1, 2, 3]


def test_invalid_capacity_is_refused() -> None:
    with pytest.raises(ValueError):
        Scheduler(GatedModel(), max_active=0)


# -- combined calls (several interactive batches in one model call) -----------------------


@pytest.fixture
def combining(model: GatedModel) -> Iterator[Scheduler[float]]:
    """A scheduler that combines up to 64 padded samples per turn (16 waves of 4 samples)."""
    with running(Scheduler(model, max_active=8, combine_samples=64), model) as sched:
        yield sched


def calls(scheduler: Scheduler[float]) -> list[list[tuple[str, int, int]]]:
    """The served records grouped by model call: [(request, batch index, waves), ...] each."""
    grouped: dict[int, list[tuple[str, int, int]]] = {}
    for record in records_of(scheduler):
        grouped.setdefault(record.call, []).append(
            (record.request_id, record.batch_index, record.size)
        )
    return list(grouped.values())


def queue_behind_blocker(
    scheduler: Scheduler[float], model: GatedModel, batches: list[tuple[str, list[float], int]]
) -> tuple[Caller, dict[str, Ticket[float]], list[Caller]]:
    """Occupy the worker, then submit ``(request, values, wave length)`` batches in order."""
    first = Caller(scheduler.admit("blocker"), [0.0])
    model.wait_entered()
    tickets: dict[str, Ticket[float]] = {}
    callers: list[Caller] = []
    for i, (name, values, length) in enumerate(batches):
        if name not in tickets:
            tickets[name] = scheduler.admit(name)
        callers.append(Caller(tickets[name], values, length))
        wait_pending(scheduler, i + 1)
    return first, tickets, callers


def test_waiting_interactive_batches_share_one_model_call(
    combining: Scheduler[float], model: GatedModel
) -> None:
    blocker, _, callers = queue_behind_blocker(
        combining, model, [("a", [1.0], 4), ("b", [2.0, 3.0], 4), ("c", [4.0], 4)]
    )
    model.open_gate()
    assert blocker.join().result == [0.0]
    assert [c.join().result for c in callers] == [[1.0], [2.0, 3.0], [4.0]]
    assert model.calls == [[0.0], [1.0, 2.0, 3.0, 4.0]]
    assert calls(combining) == [[("blocker", 0, 1)], [("a", 0, 1), ("b", 0, 2), ("c", 0, 1)]]
    combined = [r for r in records_of(combining) if r.request_id != "blocker"]
    assert [(r.owners, r.part, r.waited) for r in combined] == [(3, 0, 1), (3, 1, 1), (3, 2, 1)]
    assert combining.calls_total == 2 and records_total(combining) == 4


def test_a_combined_call_gives_each_wave_its_own_requests_tag(
    combining: Scheduler[float], model: GatedModel
) -> None:
    """Requests that asked for different things (the server: languages) share one call, and
    each wave arrives with its own request's tag, also when the call regroups waves by
    length (next test) and when a failed combined call is run again per owner (the one
    after)."""
    blocker = Caller(combining.admit("blocker"), [0.0], tag="first")
    model.wait_entered()
    kk = Caller(combining.admit("kk"), [1.0, 2.0], tag="kk")
    wait_pending(combining, 1)
    untagged = Caller(combining.admit("none"), [3.0])
    wait_pending(combining, 2)
    en = Caller(combining.admit("en"), [4.0], tag="en")
    wait_pending(combining, 3)
    model.open_gate()
    assert blocker.join().result == [0.0]
    assert [c.join().result for c in (kk, untagged, en)] == [[1.0, 2.0], [3.0], [4.0]]
    assert model.calls == [[0.0], [1.0, 2.0, 3.0, 4.0]]
    assert model.tags == [["first"], ["kk", "kk", None, "en"]]


def test_a_failed_combined_call_is_retried_per_owner_with_its_tag(
    combining: Scheduler[float], model: GatedModel
) -> None:
    blocker = Caller(combining.admit("blocker"), [0.0])
    model.wait_entered()
    bad = Caller(combining.admit("bad"), [9.0], tag="uz")
    wait_pending(combining, 1)
    good = Caller(combining.admit("good"), [5.0, 6.0], tag="ru")
    wait_pending(combining, 2)
    model.fail_on = 9.0
    model.open_gate()
    assert blocker.join().result == [0.0]
    assert isinstance(bad.join().error, ValueError)
    assert good.join().result == [5.0, 6.0]
    assert model.calls == [[0.0], [9.0, 5.0, 6.0], [9.0], [5.0, 6.0]]
    assert model.tags == [[None], ["uz", "ru", "ru"], ["uz"], ["ru", "ru"]]


def test_waves_regrouped_by_length_keep_their_tags(model: GatedModel) -> None:
    """Length-aware splitting reorders waves into calls; every wave keeps its batch's tag."""
    with running(Scheduler(model, max_active=8, combine_samples=256), model) as sched:
        blocker, _, _ = queue_behind_blocker(sched, model, [])
        long = Caller(sched.admit("long"), [1.0], length=64, tag="kk")
        wait_pending(sched, 1)
        short = Caller(sched.admit("short"), [2.0, 3.0], length=4, tag="en")
        wait_pending(sched, 2)
        model.open_gate()
        assert blocker.join().result == [0.0]
        assert long.join().result == [1.0] and short.join().result == [2.0, 3.0]
        tagged = {
            v: t
            for call, tags in zip(model.calls, model.tags, strict=True)
            for v, t in zip(call, tags, strict=True)
        }
        assert tagged == {0.0: None, 1.0: "kk", 2.0: "en", 3.0: "en"}


def test_without_request_combining_each_call_holds_one_requests_waves(
    model: GatedModel,
) -> None:
    """The int8 setting: batches of concurrent requests are not combined, and a request's own
    batch is still split by length."""
    no_combining: Scheduler[float] = Scheduler(
        model, max_active=8, combine_samples=64, combine_requests=False
    )
    with running(no_combining, model) as sched:
        blocker, _, callers = queue_behind_blocker(
            sched, model, [("a", [1.0], 4), ("b", [2.0, 3.0], 4)]
        )
        model.open_gate()
        assert blocker.join().result == [0.0]
        assert [c.join().result for c in callers] == [[1.0], [2.0, 3.0]]
        with sched.admit("r") as ticket:
            assert ticket.infer([wave(5.0, 40), wave(6.0, 8)]) == [5.0, 6.0]
        assert calls(sched) == [
            [("blocker", 0, 1)],
            [("a", 0, 1)],
            [("b", 0, 2)],
            [("r", 0, 1)],
            [("r", 0, 1)],
        ]


def test_combined_turns_keep_round_robin_one_batch_per_ticket(
    combining: Scheduler[float], model: GatedModel
) -> None:
    # "a" floods the queue with three concurrent batches, "b" and "c" submit one each
    batches = [("a", [10.0], 4), ("a", [11.0], 4), ("a", [12.0], 4)]
    batches += [("b", [20.0], 4), ("c", [30.0], 4)]
    blocker, _, callers = queue_behind_blocker(combining, model, batches)
    model.open_gate()
    for caller in [blocker, *callers]:
        assert caller.join().error is None
    assert calls(combining) == [
        [("blocker", 0, 1)],
        [("a", 0, 1), ("b", 0, 1), ("c", 0, 1)],
        [("a", 1, 1)],
        [("a", 2, 1)],
    ]


def test_a_batch_too_big_to_combine_heads_the_next_turn(
    combining: Scheduler[float], model: GatedModel
) -> None:
    # "big" (4 waves of 16 samples = the whole 64-sample budget) cannot join "a"'s turn, "c" can
    batches = [("a", [1.0], 4), ("big", [5.0, 6.0, 7.0, 8.0], 16), ("c", [3.0], 4)]
    blocker, _, callers = queue_behind_blocker(combining, model, batches)
    model.open_gate()
    for caller in [blocker, *callers]:
        assert caller.join().error is None
    assert calls(combining) == [
        [("blocker", 0, 1)],
        [("a", 0, 1), ("c", 0, 1)],
        [("big", 0, 4)],
    ]
    big = next(r for r in records_of(combining) if r.request_id == "big")
    assert big.waited == 2  # one turn more than round-robin alone would give it, never more


def test_waves_of_different_lengths_go_to_separate_calls(
    combining: Scheduler[float], model: GatedModel
) -> None:
    # a 4-sample clip is not padded to 16 samples: the turn is planned as two calls
    batches = [("long", [5.0, 6.0], 16), ("clip", [1.0], 4), ("long2", [7.0], 15)]
    blocker, _, callers = queue_behind_blocker(combining, model, batches)
    model.open_gate()
    assert blocker.join().result == [0.0]
    assert [c.join().result for c in callers] == [[5.0, 6.0], [1.0], [7.0]]
    assert model.calls[1:] == [[5.0, 6.0, 7.0], [1.0]]
    assert calls(combining)[1:] == [[("long", 0, 2), ("long2", 0, 1)], [("clip", 0, 1)]]
    records = {r.request_id: r for r in records_of(combining)}
    assert (records["long2"].computed_samples, records["long2"].audio_samples) == (16, 15)
    assert (records["clip"].computed_samples, records["clip"].audio_samples) == (4, 4)


def test_one_requests_batch_is_split_by_length(
    combining: Scheduler[float], model: GatedModel
) -> None:
    model.gated = False
    with combining.admit("r") as ticket:
        batch = [wave(1.0, 40), wave(2.0, 8), wave(3.0, 39), wave(4.0, 9)]
        assert ticket.infer(batch) == [1.0, 2.0, 3.0, 4.0]  # results in the batch's order
    assert model.calls == [[1.0, 3.0], [2.0, 4.0]]
    assert calls(combining) == [[("r", 0, 2)], [("r", 0, 2)]]


def test_cancelling_one_owner_of_a_combined_call_spares_the_others(
    combining: Scheduler[float], model: GatedModel
) -> None:
    blocker, tickets, callers = queue_behind_blocker(
        combining, model, [("a", [1.0], 4), ("b", [2.0], 4)]
    )
    model.permits.release()
    assert blocker.join().result == [0.0]
    model.wait_entered()  # a and b are inside one model call now
    assert model.calls[-1] == [1.0, 2.0]
    tickets["a"].cancel()
    assert isinstance(callers[0].join().error, Cancelled)  # woken while the call runs
    model.open_gate()
    assert callers[1].join().result == [2.0]
    assert tickets["b"].infer([wave(3.0)]) == [3.0]
    with pytest.raises(Cancelled):
        tickets["a"].infer([wave(4.0)])
    assert [r.request_id for r in records_of(combining) if r.call == 1] == ["a", "b"]


def test_a_cancelled_owner_s_waves_never_reach_a_later_call_of_the_turn(
    combining: Scheduler[float], model: GatedModel
) -> None:
    # two calls in one turn (lengths 16 and 4); the clip's owner cancels during the first
    batches = [("long", [5.0], 16), ("clip", [1.0], 4), ("clip2", [2.0], 4)]
    blocker, tickets, callers = queue_behind_blocker(combining, model, batches)
    model.permits.release()
    blocker.join()
    model.wait_entered()
    assert model.calls[-1] == [5.0]
    tickets["clip"].cancel()
    assert isinstance(callers[1].join().error, Cancelled)
    model.open_gate()
    assert callers[0].join().result == [5.0]
    assert callers[2].join().result == [2.0]
    assert model.calls[-1] == [2.0]  # the cancelled clip was dropped from its call
    assert [1.0] not in model.calls and all(1.0 not in call for call in model.calls)


def test_a_failed_combined_call_is_retried_per_owner(
    combining: Scheduler[float], model: GatedModel
) -> None:
    model.fail_on = 13.0
    batches = [("a", [1.0], 4), ("bad", [13.0], 4), ("c", [3.0], 4)]
    blocker, _, callers = queue_behind_blocker(combining, model, batches)
    model.open_gate()
    blocker.join()
    good_a, bad, good_c = (c.join() for c in callers)
    assert good_a.result == [1.0] and good_c.result == [3.0]
    assert isinstance(bad.error, ValueError) and "model exploded" in str(bad.error)
    assert model.calls[1:] == [[1.0, 13.0, 3.0], [1.0], [13.0], [3.0]]
    failed = [r.request_id for r in records_of(combining) if r.failed]
    assert failed == ["a", "bad", "c"]
    assert calls(combining)[2:] == [[("a", 0, 1)], [("bad", 0, 1)], [("c", 0, 1)]]


def test_background_work_is_never_combined_and_waits_for_interactive_work(
    combining: Scheduler[float], model: GatedModel
) -> None:
    job = combining.admit("job", background=True)
    running = Caller(job, [50.0])
    model.wait_entered()  # the job's first wave runs; then more work queues up
    job2 = combining.admit("job2", background=True)
    queued_job = Caller(job2, [60.0])
    wait_pending(combining, 1)
    a, b = combining.admit("a"), combining.admit("b")
    interactive = [Caller(a, [1.0]), Caller(b, [2.0])]
    wait_pending(combining, 3)
    model.open_gate()
    for caller in [running, queued_job, *interactive]:
        assert caller.join().error is None
    assert calls(combining) == [
        [("job", 0, 1)],
        [("a", 0, 1), ("b", 0, 1)],
        [("job2", 0, 1)],
    ]
    for ticket in (job, job2, a, b):
        ticket.close()
