"""Speech regions → recognition chunks: the reference long-form rules, as a streaming function.

GigaAM recognises at most ~25 s in one pass, so long audio is cut into chunks along the speech
regions that the VAD finds (``docs/design.md``). The rules are the reference's
(``segment_audio_file`` upstream), applied one region at a time so that a chunk is handed to the
recogniser as soon as it is closed and memory stays constant however long the file is:

1. Regions are merged greedily into a chunk that spans from the first region's start to the
   last region's end (the silence between regions stays inside the chunk, as upstream).
2. Before a region is added, the open chunk is closed when it already lasts more than
   ``new_chunk_threshold`` and either adding the region would make it longer than
   ``max_duration`` or it already lasts more than ``min_duration``.
3. A closed chunk longer than ``strict_limit`` is cut evenly into ``int(d / strict_limit) + 1``
   pieces (the pieces may exceed 25 s; the encoder handles that, upstream does the same).

Where we deliberately differ from upstream, always to keep speech:

* Upstream silently drops a final chunk of ≤ ``new_chunk_threshold``. Here such a *tiny*
  fragment is merged into the previous chunk when the merged chunk stays within
  ``strict_limit``; otherwise it becomes a chunk of its own. Only zero-length regions (which hold
  no audio at all) are ignored, so no chunk is ever zero-length (upstream crashes on one).
* Upstream lets a tiny fragment absorb the next region across any gap, so a 0.1 s click followed
  by minutes of silence produced a chunk of mostly silence whose even cuts could land inside the
  following speech. Here a tiny fragment only absorbs the next region while the result stays
  within ``max_duration``; otherwise it is closed as a tiny fragment (merged backwards as above).

To merge a tiny fragment backwards, the most recently closed chunk is held back until the open
chunk grows past ``new_chunk_threshold`` (or the input ends), so at most one chunk is ever
delayed, and only while the next chunk is still tiny.

Short audio (≤ :data:`SHORT_AUDIO_LIMIT` seconds) does not go through these rules at all: the
reference recognises it in one pass, so :func:`short_audio_chunk` gives one chunk covering the
whole file when the VAD found any speech in it. The caller (the pipeline) decides which path to
take from the probed duration; both return chunks with absolute times in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gigaam_api.options import ChunkingOptions

#: Longest audio (seconds) that the reference recognises in one pass without VAD chunking.
SHORT_AUDIO_LIMIT = 25.0


@dataclass(frozen=True, slots=True)
class Chunk:
    """A contiguous slice of the input to recognise in one pass (seconds, absolute)."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def _finite(name: str, value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def _check_region(index: int, region: tuple[float, float]) -> tuple[float, float]:
    try:
        raw_start, raw_end = region
    except (TypeError, ValueError) as exc:
        raise ValueError(f"speech region #{index} is not a (start, end) pair: {region!r}") from exc
    start = _finite(f"speech region #{index} start", raw_start)
    end = _finite(f"speech region #{index} end", raw_end)
    if end < start:
        raise ValueError(f"speech region #{index} ends before it starts: ({start}, {end})")
    return start, end


def _clipped_regions(
    regions: Iterable[tuple[float, float]], total_duration: float | None
) -> Iterator[tuple[float, float]]:
    """Validate, clip to ``[0, total_duration]`` and drop regions left with no length.

    Regions must come in order of start; overlapping or touching ones are fine (the chunker
    treats them as a union), but a start going backwards means the VAD is broken, which is an
    error rather than something to paper over.
    """
    previous_start = -math.inf
    for index, region in enumerate(regions):
        start, end = _check_region(index, region)
        if start < previous_start:
            raise ValueError(
                f"speech regions must be sorted by start: region #{index} starts at {start}, "
                f"before the previous one ({previous_start})"
            )
        previous_start = start
        start = max(start, 0.0)
        if total_duration is not None:
            end = min(end, total_duration)
        if end > start:
            yield start, end


def _even_pieces(start: float, end: float, strict_limit: float) -> Iterator[Chunk]:
    """Cut ``[start, end]`` into equal pieces no longer than ``strict_limit`` (reference rule)."""
    duration = end - start
    if duration <= strict_limit:
        yield Chunk(start, end)
        return
    count = int(duration / strict_limit) + 1
    # Boundaries are computed from the start each time (not accumulated) so that rounding error
    # does not grow along a 10-hour region, and the last piece ends exactly at ``end``.
    for k in range(count):
        piece_start = start + duration * k / count
        piece_end = end if k == count - 1 else start + duration * (k + 1) / count
        yield Chunk(piece_start, piece_end)


def _validate_parameters(
    min_duration: float,
    max_duration: float,
    strict_limit: float,
    new_chunk_threshold: float,
    total_duration: float | None,
) -> None:
    for name, value in (
        ("min_duration", min_duration),
        ("max_duration", max_duration),
        ("strict_limit", strict_limit),
    ):
        if _finite(name, value) <= 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")
    if _finite("new_chunk_threshold", new_chunk_threshold) < 0:
        raise ValueError(f"new_chunk_threshold must be >= 0, got {new_chunk_threshold!r}")
    if total_duration is not None and _finite("total_duration", total_duration) < 0:
        raise ValueError(f"total_duration must be >= 0, got {total_duration!r}")


def plan_chunks(
    regions: Iterable[tuple[float, float]],
    *,
    min_duration: float = ChunkingOptions.min_duration,
    max_duration: float = ChunkingOptions.max_duration,
    strict_limit: float = ChunkingOptions.strict_limit,
    new_chunk_threshold: float = ChunkingOptions.new_chunk_threshold,
    total_duration: float | None = None,
) -> Iterator[Chunk]:
    """Turn speech regions (seconds, sorted by start) into recognition chunks, lazily.

    ``regions`` is consumed one item at a time and each chunk is yielded as soon as it is final,
    so the caller can recognise chunk *n* while the VAD is still scanning for chunk *n + 1*.
    ``total_duration`` (when known) clips regions to the file, like the reference does with the
    decoded length. No speech gives no chunks. The parameters are checked before anything is
    consumed; bad parameters or malformed regions raise :class:`ValueError`.
    """
    _validate_parameters(
        min_duration, max_duration, strict_limit, new_chunk_threshold, total_duration
    )
    return _plan(
        _clipped_regions(regions, total_duration),
        min_duration=min_duration,
        max_duration=max_duration,
        strict_limit=strict_limit,
        threshold=new_chunk_threshold,
    )


def _plan(
    regions: Iterator[tuple[float, float]],
    *,
    min_duration: float,
    max_duration: float,
    strict_limit: float,
    threshold: float,
) -> Iterator[Chunk]:
    held: Chunk | None = None  # last closed chunk, kept while the open one is still tiny
    open_start: float | None = None
    open_end = 0.0

    def close_tiny(start: float, end: float) -> Iterator[Chunk]:
        """Merge a tiny fragment into the held chunk if that stays short enough, else keep it."""
        nonlocal held
        if held is not None and end - held.start <= strict_limit:
            held = Chunk(held.start, end)
            return
        if held is not None:
            yield held
        held = Chunk(start, end)

    def close(start: float, end: float) -> Iterator[Chunk]:
        nonlocal held
        if held is not None:
            yield held
            held = None
        pieces = _even_pieces(start, end, strict_limit)
        last = next(pieces)
        for piece in pieces:
            yield last
            last = piece
        held = last

    for start, end in regions:
        if open_start is None:
            open_start, open_end = start, end
        else:
            if end <= open_end:
                continue  # wholly inside the open chunk already
            # An overlapping region only contributes its new part, so chunks never overlap.
            start = max(start, open_end)
            duration = open_end - open_start
            if duration > threshold:
                if end - open_start > max_duration or duration > min_duration:
                    yield from close(open_start, open_end)
                    open_start = start
            elif end - open_start > max_duration:
                # A tiny fragment followed by a long gap: do not drag the silence along.
                yield from close_tiny(open_start, open_end)
                open_start = start
            open_end = end
        if held is not None and open_end - open_start > threshold:
            yield held
            held = None

    if open_start is not None:
        if open_end - open_start > threshold:
            yield from close(open_start, open_end)
        else:
            yield from close_tiny(open_start, open_end)
    if held is not None:
        yield held


def short_audio_chunk(duration: float, regions: Iterable[tuple[float, float]]) -> Chunk | None:
    """One chunk for the whole of a short file (≤ :data:`SHORT_AUDIO_LIMIT` s) that has speech.

    The reference recognises short audio in one pass over the whole waveform, silence included,
    so the chunk is ``[0, duration]`` rather than the speech span: the VAD's edges never clip a
    word. ``None`` when the VAD found no speech inside the file, so that silence yields an empty
    transcript without running the model. ``regions`` is consumed only until the first region
    with speech. The limit itself is the caller's decision (it knows the probed duration).
    """
    total = _finite("duration", duration)
    if total < 0:
        raise ValueError(f"duration must be >= 0, got {duration!r}")
    for _ in _clipped_regions(regions, total):
        return Chunk(0.0, total)
    return None
