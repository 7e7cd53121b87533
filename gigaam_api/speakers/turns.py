"""Speaker turns: labelled windows → (start, end, speaker) spans of the file.

A window's label holds for the part of it closer to its own centre than to its neighbours'
(windows overlap when the hop is shorter than the window), so a change of speaker is placed
half-way between the centres of the last window of one speaker and the first of the next.
Turns never cover a pause the VAD found: each turn lies inside one speech region, and a region
too short for a window of its own takes the speaker of the nearest window in time. Adjacent
turns of the same speaker separated by less than ``join_gap`` seconds become one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gigaam_api.speakers.windows import SpeechWindow

__all__ = ["JOIN_GAP", "SpeakerTurn", "build_turns"]

#: Same-speaker turns closer than this (seconds) are joined.
JOIN_GAP: Final = 0.5


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    """One speaker talking from ``start`` to ``end`` (seconds in the file)."""

    start: float
    end: float
    speaker: str


def _nearest(windows: Sequence[SpeechWindow], time: float) -> int:
    low, high = 0, len(windows)
    while low < high:
        mid = (low + high) // 2
        if windows[mid].centre < time:
            low = mid + 1
        else:
            high = mid
    candidates = [k for k in (low - 1, low) if 0 <= k < len(windows)]
    return min(candidates, key=lambda k: abs(windows[k].centre - time))


def build_turns(
    regions: Sequence[tuple[float, float]],
    windows: Sequence[SpeechWindow],
    speakers: Sequence[str],
    *,
    join_gap: float = JOIN_GAP,
) -> list[SpeakerTurn]:
    """Turns over the speech ``regions`` from ``windows`` (time order) and their speakers."""
    if len(windows) != len(speakers):
        raise ValueError("one speaker per window is needed")
    if not windows:
        return []
    turns: list[SpeakerTurn] = []
    w = 0
    for start, end in regions:
        # The windows inside this region (windows never cross regions).
        first = w
        while w < len(windows) and windows[w].start < end:
            w += 1
        inside = [k for k in range(first, w) if windows[k].end > start]
        if not inside:
            _append(
                turns,
                SpeakerTurn(start, end, speakers[_nearest(windows, (start + end) / 2)]),
                join_gap,
            )
            continue
        cursor = start
        for a, b in itertools.pairwise(inside):
            if speakers[a] != speakers[b]:
                change = (windows[a].centre + windows[b].centre) / 2
                _append(turns, SpeakerTurn(cursor, change, speakers[a]), join_gap)
                cursor = change
        _append(turns, SpeakerTurn(cursor, end, speakers[inside[-1]]), join_gap)
    return turns


def _append(turns: list[SpeakerTurn], turn: SpeakerTurn, join_gap: float) -> None:
    if turn.end <= turn.start:
        return
    if turns and turns[-1].speaker == turn.speaker and turn.start - turns[-1].end < join_gap:
        turns[-1] = SpeakerTurn(turns[-1].start, turn.end, turn.speaker)
    else:
        turns.append(turn)
