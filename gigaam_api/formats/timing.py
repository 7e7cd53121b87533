"""Times as every format shows them: milliseconds, subtitle clocks, the billed duration.

A time is rounded to the millisecond once (:func:`milliseconds`) and every format uses that
value, so cue times and segment times agree exactly.
"""

from __future__ import annotations

import math
from typing import Any

from gigaam_api.transcript import Segment


def checked_seconds(name: str, value: float) -> float:
    """``value`` as a float, refusing NaN, infinities and negatives (a bug upstream)."""
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite, non-negative number of seconds: {value!r}")
    return number


def milliseconds(seconds: float) -> int:
    """Seconds → whole milliseconds, half rounded up; negatives (should not happen) → 0."""
    number = float(seconds)
    if not math.isfinite(number):
        raise ValueError(f"timestamp must be finite, got {seconds!r}")
    return max(0, math.floor(number * 1000 + 0.5))


def clock(ms: int, separator: str) -> str:
    """``HH:MM:SS`` + ``separator`` + ``mmm`` (hours grow past two digits beyond 99 h)."""
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt_timestamp(seconds: float) -> str:
    """``HH:MM:SS,mmm`` (hours grow past two digits only beyond 99 h)."""
    return clock(milliseconds(seconds), ",")


def vtt_timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm``: always with hours, a dot before the milliseconds."""
    return clock(milliseconds(seconds), ".")


def cue_times(segment: Segment) -> tuple[int, int]:
    """A segment's start and end in milliseconds; the end never before the start."""
    start = milliseconds(segment.start)
    return start, max(start, milliseconds(segment.end))


def usage_seconds(duration: float) -> int:
    """The billed duration: seconds rounded up, as whisper-1 does (6.96 → 7, 8.47 → 9).

    Float noise below a microsecond is ignored first so that an exact 7.0 s computed as
    7.000000000000001 is not billed as 8 s (a sample at 16 kHz is 62.5 µs, so no real
    duration is rounded away).
    """
    return math.ceil(round(checked_seconds("duration", duration), 6))


def usage(duration: float) -> dict[str, Any]:
    """The ``usage`` object of ``json``, ``verbose_json`` and the SSE done event."""
    return {"type": "duration", "seconds": usage_seconds(duration)}
