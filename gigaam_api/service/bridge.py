"""Blocking work on its own thread, its events read from the event loop.

A transcription is blocking code (decoder pipe reads, VAD, ``ticket.infer`` waiting for the
worker), so the doors never run it on the event loop: :class:`ThreadBridge` runs it on a
dedicated thread and hands each event it yields to the door's coroutine, which waits with a
timeout so it can send keep-alives and notice a disconnected client between events.

Cancelling (client gone, server stopping) calls ``on_cancel`` at once — the session stops its
pipeline and cancels its scheduler ticket, which wakes a thread blocked in ``infer`` — and the
work unwinds on its thread; only then ``on_exit`` runs (the session frees its admission slot
and its source), so a slot count never lies about work still running.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")


class ThreadBridge(Generic[E]):
    """``work()`` iterated on a thread; its events read with :meth:`next` from the event loop.

    ``work`` must not raise: a failure is one of its events (the session's ``FailedEvent``).
    Should it raise anyway, ``on_error`` turns the exception into the last event.
    """

    def __init__(
        self,
        work: Callable[[], Iterator[E]],
        *,
        on_error: Callable[[BaseException], E],
        on_cancel: Callable[[], None],
        on_exit: Callable[[], None],
        name: str = "transcription",
    ) -> None:
        self._work = work
        self._on_error = on_error
        self._on_cancel = on_cancel
        self._on_exit = on_exit
        self._cancel = threading.Event()
        self._events: deque[E] = deque()
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
        """Stop the work at its next step; idempotent, callable from any thread."""
        if self._cancel.is_set():
            return
        self._cancel.set()
        try:
            self._on_cancel()
        except Exception:
            log.exception("cancelling a transcription failed")

    async def next(self, timeout: float) -> E | None:
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

    def _post(self, event: E) -> None:
        self._events.append(event)
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the event loop is gone (server shutting down)
            self.cancel()

    def _run(self) -> None:
        try:
            for event in self._work():
                self._post(event)
        except BaseException as exc:
            self._post(self._on_error(exc))
        finally:
            try:
                self._on_exit()
            except Exception:
                log.exception("releasing a finished transcription failed")
            self.finished.set()
