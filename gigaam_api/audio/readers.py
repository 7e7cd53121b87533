"""The one reader contract (:class:`PcmStream`) and the reader that needs no decoder.

Every reader yields 16 kHz mono int16 blocks of at most ``block_samples``, checks
``max_seconds`` against the probed duration up front *and* against the samples actually
produced (container durations can lie), decodes the first block when opened (so a corrupt or
empty file fails before any output), and may be closed from another thread to cancel: the
reading thread then sees the end of the stream with :attr:`~PcmStream.completed` false. The
base class holds all of that once; a reader only says how to get the next block and how to
stop.
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import numpy as np
from numpy.typing import NDArray

from gigaam_api.audio.errors import EmptyAudio, too_long
from gigaam_api.audio.probe import AudioInfo
from gigaam_api.constants import SAMPLE_RATE

__all__ = ["DEFAULT_BLOCK_SAMPLES", "PcmStream", "WavReader", "check_arguments"]

#: Samples per block handed to the caller (2.048 s; a multiple of Silero's 512-sample window).
DEFAULT_BLOCK_SAMPLES: Final = 32768


def check_arguments(max_seconds: float, block_samples: int, stall_timeout: float) -> None:
    """Refuse reader arguments that make no sense, before any file is opened."""
    if not math.isfinite(max_seconds) or max_seconds < 0:
        raise ValueError(f"max_seconds must be >= 0 (0 = unlimited), got {max_seconds!r}")
    if int(block_samples) != block_samples or block_samples < 1:
        raise ValueError(f"block_samples must be a positive integer, got {block_samples!r}")
    if not stall_timeout > 0:
        raise ValueError(f"stall_timeout must be > 0, got {stall_timeout!r}")


def check_start(start_seconds: float) -> None:
    """Refuse a start offset that is not a finite, non-negative number of seconds."""
    if not math.isfinite(start_seconds) or start_seconds < 0:
        raise ValueError(f"start_seconds must be >= 0, got {start_seconds!r}")


class PcmStream(ABC):
    """An open audio file as an iterator of 16 kHz mono int16 blocks (see the module doc).

    Use it as a context manager and iterate it::

        with decode_pcm(path, max_seconds=36000) as reader:
            for block in reader:          # NDArray[int16], at most block_samples long
                ...
            reader.duration               # seconds actually decoded

    Subclasses call :meth:`_open` at the end of their ``__init__`` and implement
    :meth:`_read_block` and :meth:`_stop`.
    """

    def __init__(
        self,
        path: Path,
        info: AudioInfo,
        *,
        max_seconds: float,
        block_samples: int,
        start_seconds: float = 0.0,
    ) -> None:
        check_start(start_seconds)
        self.path = path
        self.info = info
        self.max_seconds = float(max_seconds)
        self.block_samples = int(block_samples)
        #: Where reading starts (a resumed job): samples before it are not produced.
        self.start_seconds = float(start_seconds)
        #: ``start_seconds`` in samples; counted against ``max_seconds`` with the rest.
        self.start_samples = round(self.start_seconds * SAMPLE_RATE)
        #: Mono samples produced so far, from the start point (the decoded length once
        #: iteration has finished, when reading started at 0).
        self.total_samples = 0
        self._max_samples = round(self.max_seconds * SAMPLE_RATE) if self.max_seconds else 0
        self._completed = False
        self._closed = False
        self._pending: NDArray[np.int16] | None = None
        duration = info.duration
        if self._max_samples and duration is not None and duration > self.max_seconds:
            raise too_long(duration, self.max_seconds)

    def _open(self) -> None:
        """Decode the first block now, so a bad file fails when it is opened."""
        try:
            self._pending = self._next_block()
        except BaseException:
            self.close()
            raise

    @abstractmethod
    def _read_block(self) -> NDArray[np.int16] | None:
        """The next mono block, or ``None`` at the (checked) end; sets ``_completed`` there."""

    @abstractmethod
    def _stop(self) -> None:
        """Release the source (file, process). Called once, from :meth:`close`."""

    def _next_block(self) -> NDArray[np.int16] | None:
        block = self._read_block()
        if block is None:
            return None
        self.total_samples += block.shape[0]
        if self._max_samples and self.start_samples + self.total_samples > self._max_samples:
            self.close()
            raise too_long(self.max_seconds, self.max_seconds, at_least=True)
        return block

    def _no_samples(self, detail: str = "") -> EmptyAudio:
        return EmptyAudio("the file contains no audio samples", detail=detail)

    def __iter__(self) -> Iterator[NDArray[np.int16]]:
        return self

    def __next__(self) -> NDArray[np.int16]:
        pending = self._pending
        if pending is not None:
            self._pending = None
            return pending
        try:
            block = self._next_block()
        except BaseException:
            self.close()
            raise
        if block is None:
            raise StopIteration
        return block

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and release the source. Idempotent; safe from any thread."""
        if self._closed:
            return
        self._closed = True
        self._pending = None
        self._stop()

    @property
    def completed(self) -> bool:
        """True once the whole file was read (false when closed early or failed)."""
        return self._completed

    @property
    def closed(self) -> bool:
        return self._closed or self._completed

    @property
    def duration(self) -> float:
        """Seconds read so far; the file's real length once :attr:`completed`."""
        return self.total_samples / SAMPLE_RATE


class WavReader(PcmStream):
    """16 kHz mono 16-bit PCM WAV read straight from the file.

    Such a file is already what the model wants, so starting a decoder (~0.1 s, a process per
    request) would only copy it.
    """

    def __init__(
        self,
        path: Path,
        info: AudioInfo,
        *,
        max_seconds: float = 0.0,
        block_samples: int = DEFAULT_BLOCK_SAMPLES,
        start_seconds: float = 0.0,
    ) -> None:
        if info.data_offset is None or not info.is_plain_16k_mono:
            raise ValueError("WavReader reads 16 kHz mono 16-bit PCM WAV only")
        super().__init__(
            path,
            info,
            max_seconds=max_seconds,
            block_samples=block_samples,
            start_seconds=start_seconds,
        )
        total = round((info.duration or 0.0) * SAMPLE_RATE)
        skipped = min(self.start_samples, total)  # exact to the sample: a seek in the file
        self._remaining = total - skipped
        self._lock = threading.Lock()
        self._file = path.open("rb")
        self._file.seek(info.data_offset + 2 * skipped)
        self._open()

    def _read_block(self) -> NDArray[np.int16] | None:
        with self._lock:
            if self._closed or self._completed:
                return None
            want = min(self.block_samples, self._remaining)
            data = self._file.read(2 * want) if want > 0 else b""
            frames = len(data) // 2
            if frames == 0:
                if self.total_samples == 0 and self.start_samples == 0:
                    raise self._no_samples()
                self._completed = True
                self._file.close()
                return None
            self._remaining -= frames
        return np.frombuffer(bytearray(data[: 2 * frames]), dtype="<i2").astype(np.int16)

    def _stop(self) -> None:
        with self._lock:
            self._file.close()
