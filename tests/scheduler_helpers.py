"""The gated, deterministic batch function the scheduler's own tests drive it with.

``GatedModel`` maps each wave to its first sample and holds every call until the test gives
it a permit, so orderings are exact rather than timing-dependent; ``Caller`` runs
``ticket.infer`` on its own thread as a pipeline thread would. Shared by
``tests/test_scheduler.py``, ``tests/test_scheduler_overlap.py`` (the second lane) and
``tests/test_scheduler_priority.py`` (background tickets).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from gigaam_api.scheduler import Scheduler, Ticket
from tests.helpers import wait_until

WAIT = 5.0  # generous bound so a broken scheduler fails instead of hanging the suite


def wait_pending(scheduler: Scheduler[float], count: int) -> None:
    """Wait until ``scheduler`` holds ``count`` batches that no model call has taken yet."""
    wait_until(
        lambda: scheduler.pending_batches == count,
        f"{count} pending batches",
        timeout=WAIT,
        interval=0.002,
    )


class GatedModel:
    """Deterministic batch function: each wave → its first sample; each call waits for a permit.

    ``tags`` records, per call, the tag the scheduler passed with each wave.
    """

    def __init__(self, gated: bool = True) -> None:
        self.gated = gated
        self.permits = threading.Semaphore(0)
        self.calls: list[list[float]] = []
        self.tags: list[list[object]] = []
        self.entered = threading.Semaphore(0)
        self.fail_on: float | None = None

    def __call__(self, batch: list[np.ndarray], tags: list[object]) -> list[float]:
        assert len(tags) == len(batch), "one tag per wave"
        self.calls.append([float(w[0]) for w in batch])
        self.tags.append(list(tags))
        self.entered.release()
        if self.gated and not self.permits.acquire(timeout=WAIT):
            raise TimeoutError("test never released this batch")
        if self.fail_on is not None and any(float(w[0]) == self.fail_on for w in batch):
            raise ValueError("model exploded")
        return [float(w[0]) for w in batch]

    def open_gate(self) -> None:
        """Let the batch held at the gate finish and every later one pass."""
        self.gated = False
        self.permits.release()

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=WAIT), "worker never started the batch"


def wave(value: float, length: int = 4) -> np.ndarray:
    return np.full(length, value, dtype=np.float32)


class Caller:
    """Runs ticket.infer on its own thread (as a pipeline thread would) and keeps the outcome."""

    def __init__(
        self, ticket: Ticket[float], values: list[float], length: int = 4, tag: object = None
    ) -> None:
        self.result: list[float] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(ticket, values, length, tag), daemon=True
        )
        self.thread.start()

    def _run(self, ticket: Ticket[float], values: list[float], length: int, tag: object) -> None:
        try:
            self.result = ticket.infer([wave(v, length) for v in values], tag)
        except BaseException as exc:
            self.error = exc

    def join(self) -> Caller:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "caller still blocked"
        return self


@contextmanager
def running(sched: Scheduler[float], model: GatedModel) -> Iterator[Scheduler[float]]:
    """``sched`` started, recording what it serves; at the end the gate opens so every caller
    finishes, then it stops."""
    sched.record_served()
    sched.start()
    try:
        yield sched
    finally:
        model.gated = False
        for _ in range(64):
            model.permits.release()
        sched.stop()
