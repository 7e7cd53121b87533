"""Audio pushed by a door as raw PCM blocks, converted here as it arrives.

A Wyoming client (and a live session) sends raw PCM described by a rate, a sample width and a
channel count, block by block, at its own pace. :class:`PushedAudio` takes those blocks
(:meth:`~PushedAudio.push`, from the door's event loop), converts them in this process to
16 kHz mono int16 — through the same :mod:`~gigaam_api.audio.convert` chain the decoder worker
uses for a file, so an utterance is recognised from exactly the samples the same audio uploaded
as a WAV file would give — and hands them to the pipeline through :meth:`~PushedAudio.open`,
a :class:`~gigaam_api.audio.readers.PcmStream` whose reads wait for more audio until
:meth:`~PushedAudio.end`.

No file and no decoder process: raw PCM has no container to parse, so FFmpeg's demuxers and
decoders (the reason files are decoded in a worker process) are never involved; only
libswresample runs here, and only when the audio is not already 16 kHz mono 16-bit. Memory is
the converted audio not yet read (32 KB a second), bounded by ``max_seconds``. Converted audio
is handed on in blocks of ``block_samples`` (the file readers' 2 s by default, so the VAD and
the chunker see the same few large blocks whatever size the client's chunks are; a live door
passes a smaller size): audio past it
is dropped and :attr:`~PushedAudio.truncated` says so, as the door decides what to tell its
client.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from gigaam_api.audio.convert import BlockMixer, new_resampler
from gigaam_api.audio.probe import AudioInfo
from gigaam_api.audio.readers import DEFAULT_BLOCK_SAMPLES, PcmStream
from gigaam_api.constants import SAMPLE_RATE

__all__ = [
    "MAX_CHANNELS",
    "MAX_RATE",
    "MIN_RATE",
    "WIDTHS",
    "PushedAudio",
    "RawFormat",
    "RawFormatError",
]

MIN_RATE: Final = 8000
MAX_RATE: Final = 96000
#: Bytes per sample: 1 is unsigned 8-bit (as in WAV), 2–4 signed little-endian.
WIDTHS: Final = (1, 2, 3, 4)
MAX_CHANNELS: Final = 8

#: PyAV's packed sample format for each width (24-bit is widened to 32-bit first, as FFmpeg's
#: own ``pcm_s24le`` decoder does).
_AV_FORMAT: Final = {1: "u8", 2: "s16", 3: "s32", 4: "s32"}


class RawFormatError(ValueError):
    """The described audio format cannot be taken, or a block contradicts it."""


@dataclass(frozen=True, slots=True)
class RawFormat:
    """Rate (Hz), width (bytes per sample) and channel count of raw interleaved PCM."""

    rate: int
    width: int
    channels: int

    def __post_init__(self) -> None:
        if not MIN_RATE <= self.rate <= MAX_RATE:
            raise RawFormatError(f"rate {self.rate} Hz is outside {MIN_RATE}..{MAX_RATE}")
        if self.width not in WIDTHS:
            raise RawFormatError(f"width {self.width} is not one of {WIDTHS} bytes")
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise RawFormatError(f"channels {self.channels} is outside 1..{MAX_CHANNELS}")

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels

    @property
    def is_model_format(self) -> bool:
        """Already 16 kHz mono 16-bit: taken as it is, like a plain WAV file is read."""
        return self.rate == SAMPLE_RATE and self.width == 2 and self.channels == 1


def _samples(fmt: RawFormat, payload: bytes) -> NDArray[Any]:
    """Interleaved samples of ``payload`` in the dtype PyAV's packed format expects."""
    if fmt.width == 1:
        return np.frombuffer(payload, dtype=np.uint8)
    if fmt.width == 2:
        return np.frombuffer(payload, dtype="<i2").astype(np.int16)
    if fmt.width == 4:
        return np.frombuffer(payload, dtype="<i4").astype(np.int32)
    raw = np.frombuffer(payload, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
    return ((raw[:, 0] << 8) | (raw[:, 1] << 16) | (raw[:, 2] << 24)).astype(np.int32)


class _Converter:
    """Raw blocks of one format → 16 kHz mono int16 blocks (the file path's conversion)."""

    def __init__(self, fmt: RawFormat, block_samples: int) -> None:
        import av  # PyAV: only when a conversion is needed

        self._av = av
        self._format = fmt
        # what FFmpeg gives a WAV file of this many channels with no channel mask
        self._layout = av.AudioLayout(f"{fmt.channels} channels")
        self._resampler = new_resampler(av, self._layout, block_samples)
        self._blocks = BlockMixer(fmt.channels, block_samples)

    def convert(self, payload: bytes) -> list[NDArray[np.int16]]:
        samples = _samples(self._format, payload).reshape(1, -1)
        frame = self._av.AudioFrame.from_ndarray(
            samples, format=_AV_FORMAT[self._format.width], layout=self._layout
        )
        frame.sample_rate = self._format.rate
        out: list[NDArray[np.int16]] = []
        for resampled in self._resampler.resample(frame):
            out.extend(self._blocks.add(resampled.to_ndarray()))
        return out

    def finish(self) -> list[NDArray[np.int16]]:
        out: list[NDArray[np.int16]] = []
        for resampled in self._resampler.resample(None):
            out.extend(self._blocks.add(resampled.to_ndarray()))
        out.extend(self._blocks.finish())
        return out


class PushedAudio:
    """One stream of pushed PCM: the door pushes, the pipeline reads (see the module doc).

    :meth:`push`, :meth:`end` and :meth:`abort` may be called from any thread; the stream from
    :meth:`open` is read by one (the pipeline's). Converted audio waits in a queue until read.
    """

    def __init__(
        self,
        fmt: RawFormat,
        *,
        max_seconds: float,
        block_samples: int = DEFAULT_BLOCK_SAMPLES,
    ) -> None:
        self.format = fmt
        self.block_samples = block_samples
        #: Input frames accepted so far (audio past ``max_seconds`` is not counted).
        self.frames = 0
        self.max_frames = max(1, int(max_seconds * fmt.rate)) if max_seconds > 0 else 0
        self.truncated = False
        # The model's own format is only cut into blocks (a mono "mix" of one channel is the
        # identity); anything else goes through the file path's conversion.
        self._converter = (
            BlockMixer(1, block_samples) if fmt.is_model_format else _Converter(fmt, block_samples)
        )
        self._queue: deque[NDArray[np.int16]] = deque()
        self._cond = threading.Condition()
        self._ended = False
        self._aborted = False
        #: Converted samples produced in all (the exact duration once ended).
        self.samples = 0

    @property
    def seconds(self) -> float:
        """Seconds of audio accepted so far."""
        return self.frames / self.format.rate

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def duration(self) -> float | None:
        """Exact length once the door said the audio ended; ``None`` until then."""
        return self.samples / SAMPLE_RATE if self._ended else None

    def push(self, payload: bytes) -> bool:
        """Append a block of interleaved frames; True when this block reached the cap."""
        fmt = self.format
        if len(payload) % fmt.frame_bytes:
            raise RawFormatError(
                f"a block of {len(payload)} bytes is not a whole number of "
                f"{fmt.frame_bytes}-byte frames"
            )
        if self._ended:
            raise RawFormatError("audio after the end of the stream")
        frames = len(payload) // fmt.frame_bytes
        newly_cut = False
        if self.max_frames:
            room = self.max_frames - self.frames
            if frames > room:
                newly_cut = not self.truncated
                self.truncated = True
                frames = max(room, 0)
        if frames:
            self.frames += frames
            data = payload[: frames * fmt.frame_bytes]
            if isinstance(self._converter, BlockMixer):
                self._put(self._converter.add(np.frombuffer(data, dtype="<i2").astype(np.int16)))
            else:
                self._put(self._converter.convert(data))
        return newly_cut

    def end(self) -> None:
        """No more audio: the stream ends after what was pushed."""
        if self._ended:
            return
        tail = self._converter.finish()
        with self._cond:
            self._enqueue(tail)
            self._ended = True
            self._cond.notify_all()

    def abort(self) -> None:
        """Drop what is queued and end the stream (an abandoned utterance)."""
        with self._cond:
            self._aborted = self._ended = True
            self._queue.clear()
            self._cond.notify_all()

    def _put(self, blocks: list[NDArray[np.int16]]) -> None:
        with self._cond:
            self._enqueue(blocks)
            self._cond.notify_all()

    def _enqueue(self, blocks: list[NDArray[np.int16]]) -> None:
        for block in blocks:
            if block.size:
                self._queue.append(block)
                self.samples += block.size

    def take(self, closed: threading.Event) -> NDArray[np.int16] | None:
        """The next converted block, waiting for one; ``None`` at the end or once ``closed``."""
        with self._cond:
            while not self._queue:
                if self._ended or closed.is_set():
                    return None
                self._cond.wait(0.5)
            return self._queue.popleft()

    def wake(self) -> None:
        """Wake a reader waiting in :meth:`take` (its stream was closed)."""
        with self._cond:
            self._cond.notify_all()

    def info(self) -> AudioInfo:
        """What a probe would say of this audio (the length only once it ended)."""
        return AudioInfo(
            duration=self.duration,
            sample_rate=self.format.rate,
            channels=self.format.channels,
            codec=f"pcm_{self.format.width * 8}bit",
            format_name="pushed",
        )

    def open(self, *, max_seconds: float = 0.0, start_seconds: float = 0.0) -> PcmStream:
        """A reader over this audio (one per stream): 16 kHz mono int16 blocks as they come."""
        return _PushedStream(self, max_seconds=max_seconds, start_seconds=start_seconds)


class _PushedStream(PcmStream):
    """The pipeline's side of :class:`PushedAudio`: blocks in order, waiting for more."""

    def __init__(self, source: PushedAudio, *, max_seconds: float, start_seconds: float) -> None:
        super().__init__(
            Path("pushed"),
            source.info(),
            max_seconds=max_seconds,
            block_samples=source.block_samples,
            start_seconds=start_seconds,
        )
        self._source = source
        self._closed_event = threading.Event()
        self._skip = self.start_samples
        self._open()

    def _read_block(self) -> NDArray[np.int16] | None:
        while True:
            block = self._source.take(self._closed_event)
            if block is None:
                if self._closed_event.is_set():
                    return None
                if self.total_samples == 0 and self.start_samples == 0:
                    raise self._no_samples("no audio was received")
                self._completed = True
                return None
            if self._skip:
                dropped = min(self._skip, block.size)
                self._skip -= dropped
                block = block[dropped:]
                if not block.size:
                    continue
            return block

    def _stop(self) -> None:
        self._closed_event.set()
        self._source.wake()
