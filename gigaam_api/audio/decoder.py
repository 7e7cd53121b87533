"""The serving side of decoding: a small pool of decoder workers, the probe and the reader.

FFmpeg (through PyAV) runs only in :mod:`gigaam_api.audio.decoder_worker` processes. This
module starts them, hands each request one idle worker, and reads its answer frames
(:mod:`gigaam_api.audio.protocol`). Why it is built this way:

* **Isolation.** A worker that crashes (a SIGSEGV inside a decoder) or is killed (the OOM
  killer) fails only the request it was serving, with a clear :class:`DecoderCrashed`; the
  worker is dropped and the next request starts a fresh one.
* **No start cost per request.** A worker stays alive after a request that ended cleanly and
  serves the next one (a short MP3 costs a pipe round-trip, not two process starts). At most
  :data:`MAX_IDLE_WORKERS` wait idle; concurrent requests get workers of their own.
* **Prompt cancel.** ``close()`` from any thread kills the worker serving the reader: the
  reading thread sees the end of its pipe at once, whatever FFmpeg was doing.
* **No hangs.** A probe has a timeout and a decode that produces nothing for
  ``stall_timeout`` seconds is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from gigaam_api.audio import protocol
from gigaam_api.audio.errors import (
    AudioError,
    DecoderCrashed,
    EmptyAudio,
    FfmpegMissing,
    NoAudioStream,
    UnsupportedAudio,
)
from gigaam_api.audio.probe import MAX_CHANNELS, AudioInfo, check_file
from gigaam_api.audio.readers import DEFAULT_BLOCK_SAMPLES, PcmStream, check_arguments

log = logging.getLogger(__name__)

__all__ = [
    "MAX_IDLE_WORKERS",
    "PROBE_TIMEOUT_S",
    "STALL_TIMEOUT_S",
    "DecoderWorker",
    "PcmReader",
    "WorkerPool",
    "pool",
    "probe_file",
]

#: Seconds a probe may take before the file is declared undecodable.
PROBE_TIMEOUT_S: Final = 30.0
#: Seconds the decoder may go without producing any output before it is declared stuck.
STALL_TIMEOUT_S: Final = 60.0
#: Seconds a fresh worker may take to import PyAV and say it is ready.
START_TIMEOUT_S: Final = 60.0
#: Idle workers kept for the next requests (the rest exit when their request ends).
MAX_IDLE_WORKERS: Final = 2

#: Signals by which a decoder crashes on its own (a bug hit by the input), not a kill.
_CRASH_SIGNALS: Final = frozenset(
    {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT}
)

_ERROR_KINDS: Final[dict[str, type[AudioError]]] = {
    "unsupported": UnsupportedAudio,
    "no_audio_stream": NoAudioStream,
    "empty": EmptyAudio,
    "missing": FfmpegMissing,
}


class _Stalled(Exception):
    pass


class DecoderWorker:
    """One ``python -m gigaam_api.audio.decoder_worker`` process and its two pipes."""

    def __init__(self) -> None:
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gigaam_api.audio.decoder_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,  # a Ctrl-C in the terminal is the server's to handle
            )
        except OSError as exc:
            raise FfmpegMissing(f"the audio decoder process could not be started ({exc})") from exc
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin = self.proc.stdin
        self._stdout = self.proc.stdout
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._stdout, selectors.EVENT_READ)
        self._finalizer = weakref.finalize(self, _terminate, self.proc, self._selector)
        try:
            kind, payload = self.read(START_TIMEOUT_S)
        except _Stalled:
            self.kill()
            raise FfmpegMissing("the audio decoder did not start in time") from None
        except DecoderCrashed as exc:  # died before it could say why (a broken install)
            raise FfmpegMissing(f"the audio decoder could not start: {exc.message}") from None
        if kind == protocol.ERROR:
            self.kill()
            error = protocol.decode_json(payload)
            raise FfmpegMissing(str(error.get("message", "the audio decoder could not start")))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, request: dict[str, Any]) -> None:
        try:
            self._stdin.write(protocol.encode_json(protocol.INFO, request))
        except (BrokenPipeError, ValueError, OSError):
            raise self.crashed() from None

    def _read_exact(self, size: int, timeout: float) -> bytes:
        chunks: list[bytes] = []
        left = size
        while left:
            if not self._selector.select(timeout=timeout):
                raise _Stalled
            try:
                chunk = os.read(self._stdout.fileno(), min(left, 1 << 20))
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                raise self.crashed()
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def read(self, timeout: float) -> tuple[bytes, bytes]:
        """The next answer frame; raises ``_Stalled`` or :class:`DecoderCrashed`."""
        kind, size = protocol.HEADER.unpack(self._read_exact(protocol.HEADER.size, timeout))
        if size > protocol.MAX_FRAME_BYTES:
            self.kill()
            raise DecoderCrashed("the audio decoder sent a malformed answer", user_error=False)
        return kind, self._read_exact(size, timeout) if size else b""

    def crashed(self) -> DecoderCrashed:
        """The error for a worker whose pipe ended mid-request (it is reaped here)."""
        self.kill(only_reap=True)
        status = self.proc.returncode
        if status is not None and status < 0 and -status in _CRASH_SIGNALS:
            name = signal.Signals(-status).name
            return DecoderCrashed(
                f"the audio decoder crashed on this file ({name}); the file is probably "
                "damaged or crafted",
                user_error=True,
            )
        how = (
            f"was killed by {signal.Signals(-status).name}"
            if status is not None and status < 0
            else f"exited with status {status}"
        )
        return DecoderCrashed(
            f"the audio decoder process {how} while decoding; please retry",
            user_error=False,
        )

    def interrupt(self) -> None:
        """SIGKILL only (pipes stay open): wakes a thread blocked reading, from any thread."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()

    def kill(self, *, only_reap: bool = False) -> None:
        """Kill (unless ``only_reap``) and reap the process; safe to call more than once."""
        if not only_reap and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._finalizer()


def _terminate(proc: subprocess.Popen[bytes], selector: selectors.BaseSelector) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    with contextlib.suppress(Exception):
        selector.close()


class WorkerPool:
    """Idle decoder workers, handed out one per request; thread-safe."""

    def __init__(self, max_idle: int = MAX_IDLE_WORKERS) -> None:
        self.max_idle = max_idle
        self._idle: list[DecoderWorker] = []
        self._lock = threading.Lock()

    def acquire(self, *, fresh: bool = False) -> tuple[DecoderWorker, bool]:
        """An idle live worker (and ``True``), or a freshly started one (and ``False``)."""
        with self._lock:
            while self._idle and not fresh:
                worker = self._idle.pop()
                if worker.alive:
                    return worker, True
                worker.kill()
        return DecoderWorker(), False

    def request(
        self, request: dict[str, Any], timeout: float
    ) -> tuple[DecoderWorker, bytes, bytes]:
        """Send ``request`` and read the first answer frame: ``(worker, kind, payload)``.

        An idle worker that died while waiting (killed, or its pipe broke) is only noticed
        when it is used: the request is then sent once more to a fresh worker, since it
        never started there.
        """
        worker, reused = self.acquire()
        try:
            worker.send(request)
            kind, payload = worker.read(timeout)
        except DecoderCrashed:
            if not reused:
                raise
            worker, _ = self.acquire(fresh=True)
            try:
                worker.send(request)
                kind, payload = worker.read(timeout)
            except BaseException:
                worker.kill()
                raise
        except BaseException:
            worker.kill()
            raise
        return worker, kind, payload

    def release(self, worker: DecoderWorker) -> None:
        """Give back a worker whose request ended cleanly (its pipe holds nothing more)."""
        with self._lock:
            if worker.alive and len(self._idle) < self.max_idle:
                self._idle.append(worker)
                return
        worker.kill()

    def prestart(self) -> None:
        """Start one worker now, so the first compressed upload does not wait for it."""
        self.release(self.acquire()[0])

    def prestart_soon(self) -> None:
        """:meth:`prestart` on a background thread (server start-up must not wait for it)."""

        def run() -> None:
            try:
                self.prestart()
            except AudioError as exc:  # reported again, to the client, on first use
                log.warning("the audio decoder could not be started: %s", exc.message)

        threading.Thread(target=run, name="decoder-prestart", daemon=True).start()

    def idle_pids(self) -> list[int]:
        with self._lock:
            return [worker.pid for worker in self._idle]

    def close(self) -> None:
        """Stop every idle worker (busy ones stop when their reader closes)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


#: The process-wide pool every probe and decode uses.
pool: Final = WorkerPool()


def _error_from(payload: bytes) -> AudioError:
    error = protocol.decode_json(payload)
    kind = _ERROR_KINDS.get(str(error.get("kind")), UnsupportedAudio)
    return kind(str(error.get("message", "the audio could not be decoded")),
                detail=str(error.get("detail", "")))  # fmt: skip


def _clean(text: str, path: Path) -> str:
    """Decoder messages without the server-side path of the (temporary) input file."""
    return text.replace(f"file:{path}", "<input>").replace(str(path), "<input>")


def _info(payload: bytes, path: Path) -> AudioInfo:
    fields = protocol.decode_json(payload)
    duration = fields.get("duration")
    return AudioInfo(
        duration=float(duration) if duration is not None else None,
        sample_rate=int(fields.get("sample_rate") or 0),
        channels=int(fields.get("channels") or 0),
        codec=str(fields.get("codec", "")),
        format_name=_clean(str(fields.get("format_name", "")), path),
    )


def _scrub(error: AudioError, path: Path) -> AudioError:
    error.message = _clean(error.message, path)
    error.args = (error.message,)
    error.detail = _clean(error.detail, path)
    return error


def probe_file(file: Path, *, timeout: float = PROBE_TIMEOUT_S) -> AudioInfo:
    """Describe the first audio stream of ``file`` (already checked) in a decoder worker.

    Raises :class:`UnsupportedAudio` (not decodable, refused container, timeout),
    :class:`NoAudioStream`, :class:`DecoderCrashed` or :class:`FfmpegMissing`.
    """
    try:
        worker, kind, payload = pool.request({"op": "probe", "path": str(file)}, timeout)
    except _Stalled:
        raise UnsupportedAudio(
            f"the file could not be analysed within {timeout:g} s (corrupt or unsupported)"
        ) from None
    pool.release(worker)
    if kind == protocol.ERROR:
        raise _scrub(_error_from(payload), file)
    return _info(payload, file)


class PcmReader(PcmStream):
    """Decode ``path`` to 16 kHz mono int16 blocks, incrementally, in a decoder worker.

    The :class:`~gigaam_api.audio.readers.PcmStream` contract; on top of it, iteration raises
    :class:`UnsupportedAudio` if decoding fails or stalls mid-way and :class:`DecoderCrashed`
    if the worker dies. Without ``info`` the file is probed first.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_seconds: float = 0.0,
        block_samples: int = DEFAULT_BLOCK_SAMPLES,
        info: AudioInfo | None = None,
        stall_timeout: float = STALL_TIMEOUT_S,
        start_seconds: float = 0.0,
    ) -> None:
        check_arguments(max_seconds, block_samples, stall_timeout)
        file = check_file(path)
        info = info if info is not None else probe_file(file)
        super().__init__(
            file,
            info,
            max_seconds=max_seconds,
            block_samples=block_samples,
            start_seconds=start_seconds,
        )
        self.stall_timeout = float(stall_timeout)
        self._io_lock = threading.RLock()
        if self.info.channels > MAX_CHANNELS:
            raise UnsupportedAudio(
                f"{self.info.channels} audio channels are more than the {MAX_CHANNELS} supported"
            )
        request = {
            "op": "decode",
            "path": str(file),
            "demuxer": self.info.format_name.split(",")[0] or None,
            "block_samples": self.block_samples,
            "start_seconds": self.start_seconds,
        }
        try:
            worker, kind, payload = pool.request(request, self.stall_timeout)
        except _Stalled:
            raise UnsupportedAudio(
                f"decoding stalled: the decoder produced no audio for {self.stall_timeout:g} s"
            ) from None
        self._worker: DecoderWorker | None = worker
        self._pid = worker.pid
        if kind == protocol.ERROR:
            pool.release(worker)  # it answered: it is healthy and idle again
            self._worker = None
            self._closed = True
            raise _scrub(_error_from(payload), file)
        self._open()

    @property
    def pid(self) -> int:
        """Process id of the worker decoding this file (for diagnostics and tests)."""
        return self._pid

    def _read_frame(self) -> tuple[bytes, bytes]:
        worker = self._worker
        if worker is None:
            raise UnsupportedAudio("the reader is closed")
        try:
            return worker.read(self.stall_timeout)
        except _Stalled:
            worker.kill()
            raise UnsupportedAudio(
                f"decoding stalled: the decoder produced no audio for {self.stall_timeout:g} s"
            ) from None

    def _read_block(self) -> NDArray[np.int16] | None:
        with self._io_lock:
            if self._closed or self._completed:
                return None
            try:
                kind, payload = self._read_frame()
            except DecoderCrashed:
                if self._closed:  # killed by close() from another thread: a cancel
                    return None
                raise
            if self._closed:
                return None
            if kind == protocol.BLOCK:
                return np.frombuffer(payload, dtype="<i2").astype(np.int16)
            if kind == protocol.ERROR:
                raise _scrub(_error_from(payload), self.path)
            # END: the worker is idle again and may serve the next request
            worker, self._worker = self._worker, None
            if worker is not None:
                pool.release(worker)
            if self.total_samples == 0 and self.start_samples == 0:
                raise self._no_samples()
            self._completed = True
            return None

    def _stop(self) -> None:
        worker = self._worker
        if worker is not None:
            worker.interrupt()  # unblocks a reader waiting in another thread
        with self._io_lock:
            worker, self._worker = self._worker, None
            if worker is not None:
                worker.kill()


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """True once process ``pid`` no longer exists (for tests and diagnostics)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False
