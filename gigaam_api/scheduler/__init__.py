"""One inference worker shared fairly by all requests (``docs/design.md``).

The CPU is the bottleneck, so one worker thread runs the model one turn at a time (a second
lane may run a short call beside it). Each admitted request gets a :class:`Ticket`; its
pipeline thread calls :meth:`Ticket.infer`, which blocks until the worker has run that batch.
The worker serves tickets with pending batches round-robin, so a short request waits behind at
most about one batch of a multi-hour one instead of behind all of it.

The package is split by responsibility, each module explaining its part of the policy:

* :mod:`.admission` — admitting requests (``MAX_QUEUE``, :class:`QueueFull`,
  :class:`SchedulerClosed`), the two priority classes, the ring of tickets with pending
  batches, the :class:`Ticket` lifecycle and cancellation;
* :mod:`.policy` — what a turn serves (round-robin, background only when no interactive batch
  waits and in time-budgeted slices, combined calls, the second lane's pick) and how its waves
  are split into model calls: pure functions over plain typed values;
* :mod:`.lanes` — the worker threads: running a turn's calls, retrying a failed combined call
  per owner, settling batches;
* :mod:`.records` — :class:`ServedBatch`, what observers (metrics, tests) learn of each call,
  and :class:`ServedLog`, the opt-in record tests assert fairness on;
* :mod:`.core` — :class:`Scheduler`, the face the rest of the code uses.
"""

from gigaam_api.scheduler.admission import (
    InferFn,
    QueueFull,
    SchedulerClosed,
    SchedulerError,
    Skipped,
    Ticket,
)
from gigaam_api.scheduler.core import Scheduler
from gigaam_api.scheduler.records import ServedBatch, ServedLog

__all__ = [
    "InferFn",
    "QueueFull",
    "Scheduler",
    "SchedulerClosed",
    "SchedulerError",
    "ServedBatch",
    "ServedLog",
    "Skipped",
    "Ticket",
]
