"""The thread → event-loop bridge of one transcription (its own logic, with plain work)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from gigaam_api.service.bridge import ThreadBridge

Event = tuple[str, object]


def failed(exc: BaseException) -> Event:
    return ("failed", str(exc))


def bridge(
    work: Callable[[], Iterator[Event]],
    on_cancel: Callable[[], None] = lambda: None,
    on_exit: Callable[[], None] = lambda: None,
) -> ThreadBridge[Event]:
    return ThreadBridge(work, on_error=failed, on_cancel=on_cancel, on_exit=on_exit)


async def drain(runner: ThreadBridge[Event], timeout: float = 5.0) -> list[Event]:
    events: list[Event] = []
    while True:
        event = await runner.next(timeout)
        assert event is not None, "the bridge produced nothing in time"
        events.append(event)
        if event[0] != "segment":
            return events


def test_events_in_order_then_release_once() -> None:
    released: list[str] = []

    def work() -> Iterator[Event]:
        for i in range(3):
            yield ("segment", i)
        yield ("done", 12.5)

    async def main() -> list[Event]:
        runner = bridge(work, lambda: released.append("cancel"), lambda: released.append("exit"))
        runner.start()
        events = await drain(runner)
        assert runner.finished.wait(5)
        return events

    events = asyncio.run(main())
    assert events == [("segment", 0), ("segment", 1), ("segment", 2), ("done", 12.5)]
    assert released == ["exit"]


def test_an_exception_becomes_the_last_event() -> None:
    def work() -> Iterator[Event]:
        yield ("segment", 0)
        raise ValueError("broken file")

    async def main() -> list[Event]:
        runner = bridge(work)
        runner.start()
        return await drain(runner)

    events = asyncio.run(main())
    assert events == [("segment", 0), ("failed", "broken file")]


def test_cancel_reaches_the_work_and_the_release_waits_for_it() -> None:
    order: list[str] = []
    started = threading.Event()
    stop = threading.Event()

    def on_cancel() -> None:
        order.append("on_cancel")
        stop.set()

    def work() -> Iterator[Event]:
        started.set()
        assert stop.wait(5), "cancel never arrived"
        order.append("work saw cancel")
        yield ("failed", "cancelled")

    async def main() -> None:
        runner = bridge(work, on_cancel, lambda: order.append("exit"))
        runner.start()
        assert await asyncio.to_thread(started.wait, 5)
        assert await runner.next(0.05) is None  # nothing yet: a timeout, not an error
        runner.cancel()
        runner.cancel()  # idempotent
        event = await runner.next(5)
        assert event == ("failed", "cancelled") and runner.cancelled
        assert runner.finished.wait(5)

    asyncio.run(main())
    assert order == ["on_cancel", "work saw cancel", "exit"]


def test_a_stale_wake_up_is_a_timeout_not_a_crash() -> None:
    gate = threading.Event()

    def work() -> Iterator[Event]:
        yield ("segment", 0)
        gate.wait(5)
        yield ("done", 1.0)

    async def main() -> None:
        runner = bridge(work)
        runner.start()
        await asyncio.to_thread(lambda: None)  # let the thread post its segment
        first = await runner.next(5)
        assert first == ("segment", 0)
        # a wake-up from the thread that lands after its event was taken (the race, made
        # deterministic): the waiter must not pop an empty queue
        asyncio.get_running_loop().call_soon(runner._ready.set)
        assert await runner.next(0.05) is None
        gate.set()
        assert await runner.next(5) == ("done", 1.0)

    asyncio.run(main())


@pytest.mark.parametrize("timeout", [0.0, 0.01])
def test_next_times_out_cleanly(timeout: float) -> None:
    gate = threading.Event()

    def work() -> Iterator[Event]:
        gate.wait(5)
        yield ("done", 0.0)

    async def main() -> None:
        runner = bridge(work)
        runner.start()
        assert await runner.next(timeout) is None
        gate.set()
        assert await runner.next(5) == ("done", 0.0)

    asyncio.run(main())
