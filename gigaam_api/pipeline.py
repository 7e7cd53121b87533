"""One file → a stream of transcript segments: decode → VAD → chunks → batches → model.

Everything streams, so memory does not grow with the file (``docs/design.md``). ffmpeg
decodes into small PCM blocks; each block goes to the Silero VAD and into a rolling buffer;
the chunker turns closed speech regions into recognition chunks; chunks are cut out of the
buffer, grouped into batches of ``batch_size`` and handed to ``infer``; the decoded words
become subtitle-grade segments that are yielded at once. The buffer only keeps audio that a
future chunk may still need (from the earliest speech that is not yet chunked), so a 10-hour
file costs about what a 1-minute file costs.

The audio comes from a :class:`~gigaam_api.audio.PcmSource`: a file (probed and decoded by
FFmpeg) or PCM a door pushes (:class:`~gigaam_api.audio.PushedAudio`, read as it arrives).
``infer`` is a scheduler ticket's ``infer`` in the server (which waits for its round-robin
turn on the single inference worker), or the model's own call in the CLI; both reach here
through the service core's session, the pipeline's only caller. Cancellation is checked
between blocks and before every batch; closing the iterator stops ffmpeg.

Short audio (≤ 25 s) is recognised in one pass, like the reference's short-form ``transcribe``:
one chunk from just before the first speech to just after the last, when the VAD finds any.

A durable job that resumes after a restart starts at ``start_seconds`` (the end of its last
committed chunk): the reader seeks there — rounded down to a VAD window, so the windows fall
where they fell in an uninterrupted run and the chunking is the same again from the second
chunk on — every time stays absolute, no word is placed before ``start_seconds``, and the
long-form path is used whatever is left. :meth:`Transcription.chunks` gives the segments
grouped by recognised chunk, with the chunk's end, so the job runner can commit "segments +
processed up to here" atomically.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from gigaam_api import audio
from gigaam_api.cancellation import Cancelled
from gigaam_api.chunking import SHORT_AUDIO_LIMIT, Chunk, plan_chunks, short_audio_chunk
from gigaam_api.constants import SAMPLE_RATE
from gigaam_api.model.decoding import Result
from gigaam_api.options import PipelineOptions
from gigaam_api.transcript import Segment, build_segments, place_words
from gigaam_api.vad import WINDOW, SileroVad

__all__ = [
    "Form",
    "Infer",
    "RecognisedChunk",
    "SpeechObserver",
    "Transcription",
    "transcribe",
    "transcribe_file",
]


#: Silence kept around the speech of a short file (seconds).
SHORT_AUDIO_MARGIN = 0.3

#: Recognise a batch of waves (float32, 16 kHz mono) and return one result per wave.
Infer = Callable[[list[NDArray[np.float32]]], Sequence[Result]]
#: Sees the audio of every recognised chunk (start and end in seconds, float32 16 kHz samples),
#: in time order, in the same pass: what speaker labelling embeds.
SpeechObserver = Callable[[float, float, NDArray[np.float32]], None]
#: ``"auto"``: audio up to ``SHORT_AUDIO_LIMIT`` in one pass, longer audio chunked at pauses;
#: ``"long"``: always chunked at pauses (a resumed job, a live session's turns).
Form = Literal["auto", "long"]


class _PcmBuffer:
    """The recent part of the decoded stream, addressable by absolute sample index."""

    def __init__(self) -> None:
        self._blocks: deque[NDArray[np.int16]] = deque()
        self.start = 0  # absolute index of the first sample held
        self.end = 0  # absolute index one past the last sample held

    def append(self, block: NDArray[np.int16]) -> None:
        if block.size:
            self._blocks.append(block)
            self.end += block.size

    def trim(self, keep_from: int) -> None:
        """Forget whole blocks that end before ``keep_from``."""
        while self._blocks and self.start + self._blocks[0].size <= keep_from:
            self.start += self._blocks.popleft().size

    def slice(self, first: int, last: int) -> NDArray[np.float32]:
        """Samples ``[first, last)`` as float32 in [-1, 1] (the reference's int16 / 32768)."""
        first, last = max(first, self.start), min(last, self.end)
        out = np.empty(max(last - first, 0), dtype=np.float32)
        position, filled = self.start, 0
        for block in self._blocks:
            block_end = position + block.size
            if block_end > first and position < last:
                lo, hi = max(first - position, 0), min(last - position, block.size)
                out[filled : filled + hi - lo] = block[lo:hi]
                filled += hi - lo
            position = block_end
            if position >= last:
                break
        out *= 1.0 / 32768.0
        return out

    @property
    def nbytes(self) -> int:
        return sum(block.nbytes for block in self._blocks)


@dataclass(frozen=True, slots=True)
class RecognisedChunk:
    """One recognised chunk: its span (absolute seconds) and the segments it produced."""

    start: float
    end: float
    segments: list[Segment]


class _OffsetVad:
    """The VAD over a stream that starts ``offset`` seconds into the file: absolute times.

    Every region it reports is also put in ``seen`` (when given): the speech a
    :data:`SpeechObserver` is shown, region by region, as chunks over it are recognised.
    """

    def __init__(
        self, vad: SileroVad, offset: float, seen: deque[tuple[float, float]] | None = None
    ) -> None:
        self._vad = vad
        self._offset = offset
        self._seen = seen

    def _absolute(self, regions: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        out = [(a + self._offset, b + self._offset) for a, b in regions]
        if self._seen is not None:
            self._seen.extend(out)
        return out

    def feed(self, block: NDArray[np.int16]) -> list[tuple[float, float]]:
        return self._absolute(self._vad.feed(block))

    def flush(self) -> list[tuple[float, float]]:
        return self._absolute(self._vad.flush())

    @property
    def pending_start(self) -> float:
        return self._vad.pending_start + self._offset


@dataclass(frozen=True, slots=True)
class _Work:
    chunk: Chunk
    wave: NDArray[np.float32]


class Transcription:
    """Iterate to get the file's :class:`Segment` s in order, as each batch is recognised.

    ``duration`` is the probed duration at first and the exact decoded duration once the
    iteration has finished. ``cancel()`` may be called from any thread.
    """

    def __init__(
        self,
        source: audio.PcmSource,
        infer: Infer,
        options: PipelineOptions,
        cancel: threading.Event | None = None,
        *,
        start_seconds: float = 0.0,
        first_segment_id: int = 0,
        form: Form = "auto",
        on_speech: SpeechObserver | None = None,
    ) -> None:
        self.source = source
        self._on_speech = on_speech
        #: Speech regions not yet shown to ``on_speech`` (only kept when there is one).
        self._speech: deque[tuple[float, float]] | None = deque() if on_speech else None
        self.start_seconds = float(start_seconds)
        self.options = options
        self.form: Form = "long" if self.start_seconds > 0 else form
        self._infer = infer
        self._cancel = cancel or threading.Event()
        self._reader: audio.PcmStream | None = None
        self.duration: float = source.duration or 0.0
        self.chunks_recognised = 0
        #: Largest amount of PCM (bytes) held in the rolling buffer: the memory bound in action.
        self.peak_buffer_bytes = 0
        self._chunks = self._run()
        self._segments = (segment for chunk in self._chunks for segment in chunk.segments)
        self._next_id = first_segment_id
        self._last_word_end = self.start_seconds

    def __iter__(self) -> Iterator[Segment]:
        return self

    def __next__(self) -> Segment:
        return next(self._segments)

    def chunks(self) -> Iterator[RecognisedChunk]:
        """The same stream grouped by recognised chunk (use this or iterate, not both)."""
        return self._chunks

    def cancel(self) -> None:
        """Stop as soon as possible: between blocks, or before the next batch."""
        self._cancel.set()
        reader = self._reader
        if reader is not None:
            reader.close()

    def close(self) -> None:
        """Release ffmpeg and the buffers (also what happens when iteration ends)."""
        self._segments.close()
        self._chunks.close()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # -- the stream ------------------------------------------------------------------------

    def _run(self) -> Generator[RecognisedChunk, None, None]:
        options = self.options
        first_sample = round(self.start_seconds * SAMPLE_RATE) // WINDOW * WINDOW
        offset = first_sample / SAMPLE_RATE
        reader = self.source.open(max_seconds=options.max_audio_seconds, start_seconds=offset)
        self._reader = reader
        if self._cancel.is_set():  # cancelled before we got here
            reader.close()
        with reader:
            buffer = _PcmBuffer()
            buffer.start = buffer.end = first_sample
            vad = _OffsetVad(
                SileroVad(options.vad.threshold, max_speech_s=options.chunking.strict_limit),
                offset,
                self._speech,
            )
            # long form (a resumed job, a live turn) is chosen up front; "auto" decides by length
            short_limit = round(SHORT_AUDIO_LIMIT * SAMPLE_RATE) if self.form == "auto" else -1
            regions: list[tuple[float, float]] = []
            blocks = iter(reader)
            for block in blocks:
                self._check_cancel()
                buffer.append(block)
                regions.extend(vad.feed(block))
                if buffer.end > short_limit:
                    break
            else:
                self._check_cancel()
                regions.extend(vad.flush())
                self.duration = reader.total_samples / SAMPLE_RATE
                chunk = short_audio_chunk(self.duration, regions)
                if chunk is not None:
                    # One pass like the reference, minus the silence around the speech (with a
                    # margin well beyond the VAD's own padding), so nothing is "heard" there.
                    chunk = Chunk(
                        max(chunk.start, regions[0][0] - SHORT_AUDIO_MARGIN),
                        min(chunk.end, regions[-1][1] + SHORT_AUDIO_MARGIN),
                    )
                    first = round(chunk.start * SAMPLE_RATE)
                    work = _Work(chunk, buffer.slice(first, round(chunk.end * SAMPLE_RATE)))
                    self.peak_buffer_bytes = buffer.nbytes
                    yield from self._recognise([work])
                return
            yield from self._long_form(blocks, buffer, vad, regions)
            self.duration = offset + reader.total_samples / SAMPLE_RATE

    def _long_form(
        self,
        blocks: Iterator[NDArray[np.int16]],
        buffer: _PcmBuffer,
        vad: _OffsetVad,
        first_regions: list[tuple[float, float]],
    ) -> Iterator[RecognisedChunk]:
        options = self.options
        open_regions: deque[tuple[float, float]] = deque(first_regions)

        def region_stream() -> Iterator[tuple[float, float]]:
            """Regions in order, decoding and scanning more audio only when asked for one."""
            while True:
                while open_regions:
                    yield open_regions[0]
                    # keep it until a chunk covers it: its audio may still be needed
                    consumed.append(open_regions.popleft())
                block = next(blocks, None)
                if block is None:
                    open_regions.extend(vad.flush())
                    if not open_regions:
                        return
                    continue
                self._check_cancel()
                buffer.append(block)
                open_regions.extend(vad.feed(block))
                self._trim(buffer, vad, open_regions, consumed, chunked_until)
                self.peak_buffer_bytes = max(self.peak_buffer_bytes, buffer.nbytes)

        consumed: deque[tuple[float, float]] = deque()
        chunked_until = [0.0]
        batch: list[_Work] = []
        for chunk in plan_chunks(
            region_stream(),
            min_duration=options.chunking.min_duration,
            max_duration=options.chunking.max_duration,
            strict_limit=options.chunking.strict_limit,
            new_chunk_threshold=options.chunking.new_chunk_threshold,
        ):
            first = round(chunk.start * SAMPLE_RATE)
            last = round(chunk.end * SAMPLE_RATE)
            if last <= first:
                continue
            batch.append(_Work(chunk, buffer.slice(first, last)))
            chunked_until[0] = max(chunked_until[0], chunk.end)
            while consumed and consumed[0][1] <= chunked_until[0]:
                consumed.popleft()
            if len(batch) >= options.batch_size:
                yield from self._recognise(batch)
                batch = []
        if batch:
            yield from self._recognise(batch)

    @staticmethod
    def _trim(
        buffer: _PcmBuffer,
        vad: _OffsetVad,
        reported: deque[tuple[float, float]],
        consumed: deque[tuple[float, float]],
        chunked_until: list[float],
    ) -> None:
        """Drop audio that no future chunk can start in.

        A future chunk starts at the start of a region the chunker has taken but not yet
        closed into a chunk (``consumed``), at a region reported but not yet taken
        (``reported``), or at a region the VAD has not reported yet (which
        cannot start before ``vad.pending_start``), and never before the end of the last chunk.
        """
        keep = vad.pending_start
        for regions in (consumed, reported):
            if regions:
                keep = min(keep, max(regions[0][0], chunked_until[0]))
        buffer.trim(int(keep * SAMPLE_RATE) - 1)

    def _recognise(self, batch: list[_Work]) -> Iterator[RecognisedChunk]:
        self._check_cancel()
        results = self._infer([work.wave for work in batch])
        self._check_cancel()
        for work, result in zip(batch, results, strict=True):
            self.chunks_recognised += 1
            self._show_speech(work)
            words = place_words(
                result.words,
                offset=work.chunk.start,
                duration=work.chunk.end,
                previous_end=self._last_word_end,
            )
            if words:
                self._last_word_end = words[-1].end
            layout = self.options.segmentation
            segments = build_segments(
                words,
                start_id=self._next_id,
                max_duration=layout.max_duration,
                max_chars=layout.max_chars,
                gap=layout.gap,
            )
            self._next_id += len(segments)
            yield RecognisedChunk(work.chunk.start, work.chunk.end, segments)

    def _show_speech(self, work: _Work) -> None:
        """Give ``on_speech`` the speech regions inside a recognised chunk, with their audio.

        Regions, not the chunk: a chunk may hold several speakers' turns and the pauses between
        them, and a speaker model should hear one speaker's speech at a time. A region that
        runs past the chunk is shown up to the chunk's end, the rest with the next chunk.
        """
        speech = self._speech
        if self._on_speech is None or speech is None:
            return
        chunk = work.chunk
        while speech and speech[0][0] < chunk.end:
            start, end = max(speech[0][0], chunk.start), min(speech[0][1], chunk.end)
            if end > start:
                first = round((start - chunk.start) * SAMPLE_RATE)
                last = round((end - chunk.start) * SAMPLE_RATE)
                self._on_speech(start, end, work.wave[first:last])
            if speech[0][1] <= chunk.end:
                speech.popleft()
            else:
                speech[0] = (chunk.end, speech[0][1])
                break

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("transcription cancelled")


def transcribe(
    source: audio.PcmSource,
    infer: Infer,
    options: PipelineOptions | None = None,
    cancel: threading.Event | None = None,
    *,
    start_seconds: float = 0.0,
    first_segment_id: int = 0,
    form: Form = "auto",
    on_speech: SpeechObserver | None = None,
) -> Transcription:
    """Start transcribing ``source``; iterate the result for its segments.

    The pipeline's one entry point (the service core's session is its only caller in the
    server). A file source has been probed when it was made, so a missing, corrupt, empty or
    over-long file has already raised its typed :class:`gigaam_api.audio.AudioError`.
    ``first_segment_id`` numbers the segments on from there (a resumed job continues its ids);
    ``form`` is ``"auto"`` (one pass for audio up to 25 s, like the reference) or ``"long"``.
    ``on_speech`` sees each recognised chunk's audio (speaker labelling: decoded once).
    """
    return Transcription(
        source,
        infer,
        options or PipelineOptions(),
        cancel,
        start_seconds=start_seconds,
        first_segment_id=first_segment_id,
        form=form,
        on_speech=on_speech,
    )


def transcribe_file(
    path: str | Path,
    infer: Infer,
    options: PipelineOptions | None = None,
    cancel: threading.Event | None = None,
    start_seconds: float = 0.0,
) -> Transcription:
    """:func:`transcribe` over a file (probed here): for tests and benchmarks."""
    return transcribe(audio.FileSource(path), infer, options, cancel, start_seconds=start_seconds)
