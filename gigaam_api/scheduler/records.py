"""What the worker tells observers about each batch it served.

Every model call produces one :class:`ServedBatch` per batch (owner) that had waves in it. Two
kinds of observer see them:

* ``on_batch`` (the server's Prometheus metrics) is called on the lane's thread after the turn
  has settled, outside the scheduler's lock, so a slow metrics backend never holds up admission;
* ``on_served`` hooks are called under the lock at the moment a call is recorded, in serving
  order, *before* the callers of that turn are woken. That is what a test needs to assert
  fairness on the recorded order: once ``Ticket.infer`` has returned, its record is there.

A production server installs no ``on_served`` hook and keeps no records. Tests (and the
benchmarks) install a :class:`ServedLog` with :meth:`Scheduler.record_served
<gigaam_api.scheduler.core.Scheduler.record_served>` and read fairness, combining and padding
from it rather than from wall-clock time.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ServedBatch", "ServedHook", "ServedLog"]


@dataclass(frozen=True, slots=True)
class ServedBatch:
    """One batch (or the part of it in one model call) the worker ran, in serving order.

    ``waited`` counts the model calls the worker finished between this batch's submission and
    its start: with round-robin it is at most the number of other active requests, which is
    what the fairness tests assert. ``call`` numbers the model calls (records of batches
    combined into one call share it), ``owners`` is how many batches shared that call and
    ``seconds`` is the call's time (the same for all of them).
    """

    request_id: str
    batch_index: int
    size: int
    waited: int
    seconds: float
    background: bool = False
    call: int = 0
    owners: int = 1
    #: Position of this batch among the call's owners (0: the one whose turn it was).
    part: int = 0
    #: Samples the call computed (its waves padded to the longest) and samples of real audio.
    computed_samples: int = 0
    audio_samples: int = 0
    #: The call failed and its owners' waves were run again alone (recorded separately).
    failed: bool = False
    #: Interim work (a live turn's re-recognition, served only when no interactive batch waits).
    interim: bool = False


#: Called with every record as it is made, under the scheduler's lock: it must be quick and
#: must not call back into the scheduler.
ServedHook = Callable[[ServedBatch], None]


class ServedLog:
    """The most recent served batches, oldest first, bounded by ``limit`` (an ``on_served`` hook).

    It has its own lock because it is read from test threads while a lane appends to it.
    """

    def __init__(self, limit: int = 10_000) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._lock = threading.Lock()
        self._records: deque[ServedBatch] = deque(maxlen=limit)
        self._total = 0

    def __call__(self, record: ServedBatch) -> None:
        with self._lock:
            self._records.append(record)
            self._total += 1

    @property
    def records(self) -> list[ServedBatch]:
        """The records kept, oldest first (the last ``limit`` of them)."""
        with self._lock:
            return list(self._records)

    @property
    def total(self) -> int:
        """Records ever added, including those the bound has dropped since."""
        with self._lock:
            return self._total
