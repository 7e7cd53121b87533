"""The thread → event-loop bridge of one transcription (its own logic, with plain producers)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from gigaam_api.service.runner import DoneEvent, FailedEvent, PipelineRunner, RunEvent, SegmentEvent
from gigaam_api.transcript import Segment

Emit = Callable[[Segment], None]


def segment(i: int) -> Segment:
    return Segment(id=i, start=float(i), end=i + 0.5, text=f"s{i}")


async def drain(runner: PipelineRunner, timeout: float = 5.0) -> list[RunEvent]:
    events: list[RunEvent] = []
    while True:
        event = await runner.next(timeout)
        assert event is not None, "runner produced nothing in time"
        events.append(event)
        if not isinstance(event, SegmentEvent):
            return events


def test_segments_then_done_and_release_once() -> None:
    released: list[str] = []

    def produce(emit: Emit, cancel: threading.Event) -> float:
        for i in range(3):
            emit(segment(i))
        return 12.5

    async def main() -> list[RunEvent]:
        runner = PipelineRunner(
            produce,
            on_cancel=lambda: released.append("cancel"),
            on_exit=lambda: released.append("exit"),
        )
        runner.start()
        events = await drain(runner)
        assert runner.finished.wait(5)
        return events

    events = asyncio.run(main())
    assert [e.segment.id for e in events if isinstance(e, SegmentEvent)] == [0, 1, 2]
    assert events[-1] == DoneEvent(12.5)
    assert released == ["exit"]


def test_a_failure_is_delivered_as_an_event() -> None:
    def produce(emit: Emit, cancel: threading.Event) -> float:
        emit(segment(0))
        raise ValueError("broken file")

    async def main() -> list[RunEvent]:
        runner = PipelineRunner(produce, on_cancel=lambda: None, on_exit=lambda: None)
        runner.start()
        return await drain(runner)

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
        runner = PipelineRunner(
            produce,
            on_cancel=lambda: order.append("on_cancel"),
            on_exit=lambda: order.append("exit"),
        )
        runner.start()
        assert await asyncio.to_thread(started.wait, 5)
        assert await runner.next(0.05) is None  # nothing yet: a timeout, not an error
        runner.cancel()
        runner.cancel()  # idempotent
        event = await runner.next(5)
        assert isinstance(event, FailedEvent) and runner.cancelled
        assert runner.finished.wait(5)

    asyncio.run(main())
    assert order == ["on_cancel", "producer saw cancel", "exit"]


def test_a_stale_wake_up_is_a_timeout_not_a_crash() -> None:
    gate = threading.Event()

    def produce(emit: Emit, cancel: threading.Event) -> float:
        emit(segment(0))
        gate.wait(5)
        return 1.0

    async def main() -> None:
        runner = PipelineRunner(produce, on_cancel=lambda: None, on_exit=lambda: None)
        runner.start()
        await asyncio.to_thread(lambda: None)  # let the thread post its segment
        first = await runner.next(5)
        assert isinstance(first, SegmentEvent)
        # a wake-up from the thread that lands after its event was taken (the race, made
        # deterministic): the waiter must not pop an empty queue
        asyncio.get_running_loop().call_soon(runner._ready.set)
        assert await runner.next(0.05) is None
        gate.set()
        assert await runner.next(5) == DoneEvent(1.0)

    asyncio.run(main())


@pytest.mark.parametrize("timeout", [0.0, 0.01])
def test_next_times_out_cleanly(timeout: float) -> None:
    gate = threading.Event()

    def produce(emit: Emit, cancel: threading.Event) -> float:
        gate.wait(5)
        return 0.0

    async def main() -> None:
        runner = PipelineRunner(produce, on_cancel=lambda: None, on_exit=lambda: None)
        runner.start()
        assert await runner.next(timeout) is None
        gate.set()
        assert await runner.next(5) == DoneEvent(0.0)

    asyncio.run(main())
