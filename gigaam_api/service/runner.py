"""A request's pipeline run on its own thread, observed from the event loop.

The pipeline is blocking code (ffmpeg pipe reads, VAD, ``ticket.infer`` waiting for the
worker), so each request runs it on a dedicated thread and never on the event loop. Finished
segments travel to the request's coroutine as events; the coroutine waits with a timeout so
it can send SSE keep-alives and notice a disconnected client between events.

Cancelling (client gone, server stopping) sets the pipeline's cancel flag and cancels the
scheduler ticket, which wakes a thread blocked in ``infer`` with ``Cancelled``; the pipeline
unwinds, its ffmpeg child is killed, and only then ``on_exit`` frees the admission slot and
removes the upload — so the slot count never lies about work still running.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gigaam_api.transcript import Segment

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SegmentEvent:
    segment: Segment


@dataclass(frozen=True, slots=True)
class DoneEvent:
    duration: float


@dataclass(frozen=True, slots=True)
class FailedEvent:
    error: BaseException


RunEvent = SegmentEvent | DoneEvent | FailedEvent
#: Runs the pipeline: calls ``emit`` per finished segment, honours ``cancel`` between steps and
#: returns the audio duration in seconds.
Producer = Callable[[Callable[[Segment], None], threading.Event], float]


class PipelineRunner:
    """A producer on a thread; events read with :meth:`next` from the event loop.

    One per request (not durable, not queued: the scheduler's :class:`~gigaam_api.scheduler.Ticket`
    is what waits for the model)."""

    def __init__(
        self,
        produce: Producer,
        *,
        on_cancel: Callable[[], None],
        on_exit: Callable[[], None],
        name: str = "transcription",
    ) -> None:
        self._produce = produce
        self._on_cancel = on_cancel
        self._on_exit = on_exit
        self._cancel = threading.Event()
        self._events: deque[RunEvent] = deque()
        self._ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.finished = threading.Event()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Stop the pipeline at its next step; idempotent, callable from any thread."""
        if self._cancel.is_set():
            return
        self._cancel.set()
        try:
            self._on_cancel()
        except Exception:
            log.exception("cancelling a transcription failed")

    async def next(self, timeout: float) -> RunEvent | None:
        """The next event, or None if none arrived within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # A wake-up may be stale (its event was already taken), so re-check after each one.
        while not self._events:
            self._ready.clear()
            if self._events:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._ready.wait(), remaining)
            except TimeoutError:
                if not self._events:
                    return None
        return self._events.popleft()

    # -- the thread ----------------------------------------------------------------------

    def _post(self, event: RunEvent) -> None:
        self._events.append(event)
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the event loop is gone (server shutting down)
            self.cancel()

    def _emit(self, segment: Segment) -> None:
        self._post(SegmentEvent(segment))

    def _run(self) -> None:
        try:
            duration = self._produce(self._emit, self._cancel)
            self._post(DoneEvent(duration))
        except BaseException as exc:
            self._post(FailedEvent(exc))
        finally:
            try:
                self._on_exit()
            except Exception:
                log.exception("releasing a finished transcription failed")
            self.finished.set()
