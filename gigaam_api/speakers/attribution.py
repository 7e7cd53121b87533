"""Put the speakers on the transcript: each word gets the speaker of the turn it falls in, and
a segment in which the speaker changes is split there.

A word belongs to the turn that holds its midpoint (a word's edges are the least precise part
of its timing, and a word straddling a change is said mostly on one side of it); a word whose
midpoint lies in no turn (the VAD's padding, a region too short for a window) takes the
nearest turn. A segment without words takes the speaker of its own midpoint the same way.
Overlapped speech has one speaker per moment here: the turn's.

Pure functions over :mod:`gigaam_api.transcript` values; turns are in time order.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence

from gigaam_api.speakers.turns import SpeakerTurn
from gigaam_api.transcript import Segment, Word

__all__ = ["speaker_at", "split_segments", "with_speakers"]


def speaker_at(
    turns: Sequence[SpeakerTurn], time: float, starts: Sequence[float] | None = None
) -> str | None:
    """The speaker of the turn holding ``time``, else of the nearest turn; ``None`` without
    turns. ``starts`` (the turns' start times) may be passed to save rebuilding it per call."""
    if not turns:
        return None
    starts = starts if starts is not None else [t.start for t in turns]
    k = bisect.bisect_right(starts, time) - 1
    if k >= 0 and time < turns[k].end:
        return turns[k].speaker
    before = turns[k] if k >= 0 else None
    after = turns[k + 1] if k + 1 < len(turns) else None
    if before is None:
        return after.speaker if after else None
    if after is None or time - before.end <= after.start - time:
        return before.speaker
    return after.speaker


def with_speakers(words: Sequence[Word], turns: Sequence[SpeakerTurn]) -> list[Word]:
    """``words`` with ``speaker`` set from ``turns`` (by each word's midpoint)."""
    starts = [t.start for t in turns]
    return [
        dataclasses.replace(word, speaker=speaker_at(turns, (word.start + word.end) / 2, starts))
        for word in words
    ]


def split_segments(
    segments: Sequence[Segment], turns: Sequence[SpeakerTurn], *, start_id: int | None = None
) -> list[Segment]:
    """Segments with speakers: each is split where its words change speaker.

    Pieces keep the words' times (start of the first, end of the last) and join their texts
    with single spaces, as :func:`gigaam_api.transcript.build_segments` does. Ids are
    renumbered from ``start_id`` (default: the first segment's id), so they stay consecutive.
    """
    first = segments[0].id if start_id is None and segments else (start_id or 0)
    return split_labelled(label_segments(segments, turns), start_id=first)


def label_segments(segments: Sequence[Segment], turns: Sequence[SpeakerTurn]) -> list[Segment]:
    """Segments as they are (same ids, same count), their words given their speakers and each
    segment the speaker of its first word: what a durable job stores, so the segments its
    clients already received keep their ids; :func:`split_labelled` splits them for output."""
    starts = [t.start for t in turns]
    out = []
    for segment in segments:
        if not segment.words:
            speaker = speaker_at(turns, (segment.start + segment.end) / 2, starts)
            out.append(dataclasses.replace(segment, speaker=speaker))
            continue
        words = with_speakers(segment.words, turns)
        out.append(dataclasses.replace(segment, words=tuple(words), speaker=words[0].speaker))
    return out


def split_labelled(segments: Sequence[Segment], *, start_id: int = 0) -> list[Segment]:
    """Segments whose words carry speakers (:func:`label_segments`), split where the speaker
    changes, ids renumbered from ``start_id``: the same pieces :func:`split_segments` makes."""
    out: list[Segment] = []
    next_id = start_id
    for segment in segments:
        words = list(segment.words)
        if not words or all(w.speaker == words[0].speaker for w in words):
            out.append(dataclasses.replace(segment, id=next_id))
            next_id += 1
            continue
        group: list[Word] = [words[0]]
        for word in words[1:]:
            if word.speaker != group[-1].speaker:
                out.append(_piece(segment, group, next_id))
                next_id += 1
                group = []
            group.append(word)
        out.append(_piece(segment, group, next_id))
        next_id += 1
    return out


def _piece(segment: Segment, words: list[Word], segment_id: int) -> Segment:
    if len(words) == len(segment.words):
        return dataclasses.replace(
            segment, id=segment_id, words=tuple(words), speaker=words[0].speaker
        )
    return Segment(
        id=segment_id,
        start=words[0].start,
        end=max(words[-1].end, words[0].start),
        text=" ".join(w.text for w in words),
        words=tuple(words),
        speaker=words[0].speaker,
    )
