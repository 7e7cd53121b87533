"""Interim work (a live turn's re-recognition) at the scheduler: run only while no interactive
batch waits, skipped rather than queued, dropped when an interactive batch arrives, and not
counted against ``MAX_QUEUE`` (nor are interactive tickets admitted ``bounded=False``).
Asserted on the recorded serving order and on what each caller got, never on time."""

from __future__ import annotations

import pytest

from gigaam_api.scheduler import QueueFull, Scheduler, Skipped
from tests.scheduler_helpers import Caller, GatedModel, running, wait_pending


def test_interim_work_is_skipped_while_an_interactive_batch_waits() -> None:
    model = GatedModel()
    with running(Scheduler(model, max_active=4), model) as sched:
        long = Caller(sched.admit("long"), [1.0])
        model.wait_entered()  # the first call holds the worker
        waiting = Caller(sched.admit("short"), [2.0])
        wait_pending(sched, 1)
        draft = Caller(sched.admit("draft", interim=True), [3.0]).join()
        assert isinstance(draft.error, Skipped)
        model.open_gate()
        assert long.join().result == [1.0]
        assert waiting.join().result == [2.0]
    assert not [r for r in sched.record_served().records if r.interim]


def test_an_interactive_batch_drops_the_interim_batches_still_pending() -> None:
    model = GatedModel()
    with running(Scheduler(model, max_active=4), model) as sched:
        job = Caller(sched.admit("job", background=True), [1.0])
        model.wait_entered()
        draft = Caller(sched.admit("draft", interim=True), [2.0])
        wait_pending(sched, 1)
        short = Caller(sched.admit("short"), [3.0])
        assert isinstance(draft.join().error, Skipped)
        model.open_gate()
        assert short.join().result == [3.0]
        job.join()
    order = [r.request_id for r in sched.record_served().records]
    assert order == ["job", "short"]


def test_interim_work_runs_before_background_work_and_is_recorded_as_interim() -> None:
    model = GatedModel()
    with running(Scheduler(model, max_active=4), model) as sched:
        first = Caller(sched.admit("first"), [1.0])
        model.wait_entered()
        job = Caller(sched.admit("job", background=True), [2.0])
        wait_pending(sched, 1)
        draft = Caller(sched.admit("draft", interim=True), [3.0])
        wait_pending(sched, 2)
        model.open_gate()
        assert draft.join().result == [3.0]
        first.join()
        job.join()
    records = sched.record_served().records
    assert [r.request_id for r in records] == ["first", "draft", "job"]
    assert [r.interim for r in records] == [False, True, False]


def test_interim_and_unbounded_tickets_do_not_count_against_max_queue() -> None:
    model = GatedModel(gated=False)
    with running(Scheduler(model, max_active=1), model) as sched:
        held = sched.admit("held")
        drafts = [sched.admit(f"d{i}", interim=True) for i in range(3)]
        finals = [sched.admit(f"f{i}", bounded=False) for i in range(3)]
        assert sched.active == 1
        with pytest.raises(QueueFull):
            sched.admit("one too many")
        assert Caller(finals[0], [5.0]).join().result == [5.0]
        for ticket in [held, *drafts, *finals]:
            ticket.close()
        assert sched.active == 0


def test_interim_and_background_work_take_turns() -> None:
    model = GatedModel()
    with running(Scheduler(model, max_active=4), model) as sched:
        first = Caller(sched.admit("first"), [1.0])
        model.wait_entered()
        job = Caller(sched.admit("job", background=True), [2.0, 2.0, 2.0])
        drafts = [Caller(sched.admit(f"draft{i}", interim=True), [3.0]) for i in range(2)]
        wait_pending(sched, 3)
        model.open_gate()
        for caller in [first, job, *drafts]:
            caller.join()
    order = [r.request_id for r in sched.record_served().records]
    assert order[:4] == ["first", "draft0", "job", "draft1"]
