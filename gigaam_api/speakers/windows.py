"""Where to embed: fixed-length windows inside the speech regions the VAD found.

One embedding per window is the unit everything downstream works on (clustering, turns). The
policy:

* Windows lie inside one speech region each: never across a pause, where the speaker is most
  likely to change, and never over silence, which says nothing about a voice.
* A window is the model's own length (:attr:`SpeakerEmbedder.window_seconds`: 1.5 s for
  CAM++/ResNet, 1.6 s for GE2E) — what it was trained to tell speakers apart on.
* Windows start every ``hop`` seconds (default :data:`DEFAULT_HOP`, 1.5 s: windows side by
  side, each second of speech embedded about once); the last one is aligned to the region's
  end so the tail is covered. The hop sets the cost — one network call per hop of speech —
  and the time resolution of a speaker change (about half a hop). Measured
  (``benchmarks/diarization.py``, ``docs/speakers.md``): 0.75 s (3D-Speaker's half-window
  hop) was no more accurate than 1.5 s on the test conversations and costs twice as much;
  3 s saves another half but misses short turns. A hop longer than the window samples the
  speech sparsely, for machines where even 1.5 s is too dear.
* A region shorter than a window but at least :data:`MIN_SPEECH` long gets one window of the
  region's own length (the models take any length; GE2E pads). Shorter regions (a cough, a
  click, "да") get none: too little voice to tell anyone apart; they take the speaker of the
  nearest turn (:func:`gigaam_api.speakers.turns.build_turns`).

Pure and lazy: regions go in as they close, windows come out; nothing is kept between them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Final, NamedTuple

__all__ = ["DEFAULT_HOP", "MIN_SPEECH", "SpeechWindow", "plan_windows"]

DEFAULT_HOP: Final = 1.5
#: Shortest region (seconds) that gets a window of its own.
MIN_SPEECH: Final = 0.5


class SpeechWindow(NamedTuple):
    """One stretch of audio to embed, in seconds from the start of the file."""

    start: float
    end: float

    @property
    def centre(self) -> float:
        return (self.start + self.end) / 2


def plan_windows(
    regions: Iterable[tuple[float, float]],
    *,
    window: float,
    hop: float = DEFAULT_HOP,
    min_speech: float = MIN_SPEECH,
) -> Iterator[SpeechWindow]:
    """Windows of ``window`` seconds every ``hop`` seconds inside each (start, end) region.

    A hop longer than the window samples the speech sparsely (cheaper, coarser turns); the
    last window of a region is always aligned to its end.
    """
    if not window > 0:
        raise ValueError(f"window must be > 0, got {window!r}")
    if not hop > 0:
        raise ValueError(f"hop must be > 0, got {hop!r}")
    for start, end in regions:
        length = end - start
        if length < min_speech:
            continue
        if length <= window:
            yield SpeechWindow(start, end)
            continue
        steps = math.ceil((length - window) / hop - 1e-9)
        for k in range(steps):
            yield SpeechWindow(start + k * hop, start + k * hop + window)
        yield SpeechWindow(end - window, end)
