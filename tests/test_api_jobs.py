"""The thread → event-loop bridge of one transcription (its own logic, with plain producers)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from gigaam_api.api.jobs import DoneEvent, FailedEvent, JobEvent, SegmentEvent, TranscriptionJob
from gigaam_api.transcript import Segment

Emit = Callable[[Segment], None]


def segment(i: int) -> Segment:
    return Segment(id=i, start=float(i), end=i + 0.5, text=f"s{i}")


async def drain(job: TranscriptionJob, timeout: float = 5.0) -> list[JobEvent]:
    events: list[JobEvent] = []
    while True:
        event = await job.next(timeout)
        assert event is not None, "job produced nothing in time"
        events.append(event)
        if not isinstance(event, SegmentEvent):
            return events


def test_segments_then_done_and_release_once() -> None:
    released: list[str] = []

    def produce(emit: Emit, cancel: threading.Event) -> float:
        for i in range(3):
            emit(segment(i))
        return 12.5

    async def main() -> list[JobEvent]:
        job = TranscriptionJob(
            produce,
            on_cancel=lambda: released.append("cancel"),
            on_exit=lambda: released.append("exit"),
        )
        job.start()
        events = await drain(job)
        assert job.finished.wait(5)
        return events

    events = asyncio.run(main())
    assert [e.segment.id for e in events if isinstance(e, SegmentEvent)] == [0, 1, 2]
    assert events[-1] == DoneEvent(12.5)
    assert released == ["exit"]


def test_a_failure_is_delivered_as_an_event() -> None:
    def produce(emit: Emit, cancel: threading.Event) -> float:
        emit(segment(0))
        raise ValueError("broken file")

    async def main() -> list[JobEvent]:
        job = TranscriptionJob(produce, on_cancel=lambda: None, on_exit=lambda: None)
        job.start()
        return await drain(job)

    events = asyncio.run(main())
    assert isinstance(events[0], SegmentEvent)
    assert isinstance(events[-1], FailedEvent) and str(events[-1].error) == "broken file"


def test_cancel_reaches_the_producer_and_the_release_waits_for_it() -> None:
    order: list[str] = []
    started = threading.Event()

    def produce(emit: Emit, cancel: threading.Event) -> float:
        started.set()
        assert cancel.wait(5), "cancel never arrived"
        order.append("producer saw cancel")
        raise RuntimeError("stopped")

    async def main() -> None:
        job = TranscriptionJob(
            produce,
            on_cancel=lambda: order.append("on_cancel"),
            on_exit=lambda: order.append("exit"),
        )
        job.start()
        assert await asyncio.to_thread(started.wait, 5)
        assert await job.next(0.05) is None  # nothing yet: a timeout, not an error
        job.cancel()
        job.cancel()  # idempotent
        event = await job.next(5)
        assert isinstance(event, FailedEvent) and job.cancelled
        assert job.finished.wait(5)

    asyncio.run(main())
    assert order == ["on_cancel", "producer saw cancel", "exit"]


def test_a_stale_wake_up_is_a_timeout_not_a_crash() -> None:
    gate = threading.Event()

    def produce(emit: Emit, cancel: threading.Event) -> float:
        emit(segment(0))
        gate.wait(5)
        return 1.0

    async def main() -> None:
        job = TranscriptionJob(produce, on_cancel=lambda: None, on_exit=lambda: None)
        job.start()
        await asyncio.to_thread(lambda: None)  # let the thread post its segment
        first = await job.next(5)
        assert isinstance(first, SegmentEvent)
        # a wake-up from the thread that lands after its event was taken (the race, made
        # deterministic): the waiter must not pop an empty queue
        asyncio.get_running_loop().call_soon(job._ready.set)
        assert await job.next(0.05) is None
        gate.set()
        assert await job.next(5) == DoneEvent(1.0)

    asyncio.run(main())


@pytest.mark.parametrize("timeout", [0.0, 0.01])
def test_next_times_out_cleanly(timeout: float) -> None:
    gate = threading.Event()

    def produce(emit: Emit, cancel: threading.Event) -> float:
        gate.wait(5)
        return 0.0

    async def main() -> None:
        job = TranscriptionJob(produce, on_cancel=lambda: None, on_exit=lambda: None)
        job.start()
        assert await job.next(timeout) is None
        gate.set()
        assert await job.next(5) == DoneEvent(0.0)

    asyncio.run(main())
