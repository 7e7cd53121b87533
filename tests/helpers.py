"""Small tools several test modules share: waiting for a condition, the scheduler's records,
the checkpoint writer, the edit distance of two token sequences.

``wait_until`` is how a test waits for something another thread or process does (a log line
written after the response, a slot freed, a temp file removed): it returns as soon as the
condition holds, and fails with a message saying what never happened. The timeout is a
safety net against a hang, never a statement about speed.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from gigaam_api.scheduler import Scheduler, ServedBatch
from tests.conftest import REPO_ROOT

T = TypeVar("T")

#: Seconds before a wait gives up: generous, since the machine may be loaded.
WAIT_TIMEOUT_S = 60.0


def wait_until(
    condition: Callable[[], T],
    what: str,
    *,
    timeout: float = WAIT_TIMEOUT_S,
    interval: float = 0.01,
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that value.

    Fails the test with ``timed out waiting for <what>`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def records_of(scheduler: Scheduler[Any]) -> list[ServedBatch]:
    """The batches ``scheduler`` served, in serving order, since the test installed its log.

    A scheduler keeps no records unless asked: a test calls ``scheduler.record_served()``
    before the work it asserts on (for an app's scheduler, right after the model loaded), and
    reads the same log here.
    """
    return scheduler.record_served().records


def records_total(scheduler: Scheduler[Any]) -> int:
    """Records ever added to the log of :func:`records_of` (it keeps the last 10,000)."""
    return scheduler.record_served().total


@functools.cache
def checkpoint_writer() -> ModuleType:
    """``benchmarks/random_checkpoint.py`` as a module: writes GigaAM-layout checkpoints.

    It lives with the benchmarks (which are scripts, not a package), so it is loaded by path.
    """
    path = REPO_ROOT / "benchmarks" / "random_checkpoint.py"
    spec = importlib.util.spec_from_file_location("random_checkpoint", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance between two token-id sequences (insert, delete, substitute: 1).

    How far a quantized model's tokens drift from the fp32 ones: the parity tests bound it as a
    share of the reference's length rather than asking for equal sequences.
    """
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[:], i
        for j, y in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x != y))
    return row[-1]
