"""Transcript data types: what the pipeline produces and the formatters consume.

Times are seconds (float), absolute in the input file. Besides the types, the two pure steps
between a recognised chunk and the formatters live here: :func:`place_words` (chunk-relative
word times → absolute, monotonic, inside the file) and :func:`build_segments` (words →
subtitle-grade segments).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from gigaam_api.options import SegmentationOptions


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its time span (and its speaker when diarization ran)."""

    text: str
    start: float
    end: float
    speaker: str | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """A subtitle-grade piece of the transcript (a cue in SRT/VTT, a segment in verbose_json)."""

    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    #: The speaker label (``A``, ``B``, … or a known name) when diarization ran.
    speaker: str | None = None


@dataclass(slots=True)
class Transcript:
    """The whole result for one file."""

    segments: list[Segment] = field(default_factory=list)
    duration: float = 0.0
    language: str = "russian"

    @property
    def text(self) -> str:
        """Segment texts joined by single spaces (the OpenAI `text` field)."""
        return " ".join(s.text for s in self.segments if s.text).strip()

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]


# --- word timestamps ---------------------------------------------------------------------------


def place_words(
    words: Sequence[Word],
    *,
    offset: float,
    duration: float | None,
    previous_end: float = 0.0,
) -> list[Word]:
    """Make a chunk's word times absolute, monotonic and inside ``[0, duration]``.

    The model reports times relative to the chunk's start, from token frames, so they can step
    a frame past the chunk's audio or overlap the previous chunk's last word. Subtitles and
    Whisper clients expect every word to start no earlier than the previous one ended and to lie
    inside the file, so each word is shifted by ``offset``, pushed to start at or after the end
    of the word before (``previous_end`` carries that across chunks) and clipped to
    ``duration`` (``None`` when the length is not known yet: no upper clip). Text is untouched.
    """
    shift = _finite_time("offset", offset)
    limit = math.inf if duration is None else _finite_time("duration", duration)
    if limit < 0:
        raise ValueError(f"duration must be >= 0, got {duration!r}")
    cursor = min(max(_finite_time("previous_end", previous_end), 0.0), limit)
    placed: list[Word] = []
    for index, word in enumerate(words):
        start = _finite_time(f"word #{index} start", word.start) + shift
        end = _finite_time(f"word #{index} end", word.end) + shift
        start = min(max(start, cursor), limit)
        end = min(max(end, start), limit)
        placed.append(Word(word.text, start, end))
        cursor = end
    return placed


def _finite_time(name: str, value: float) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return number


# --- subtitle-grade segmentation -----------------------------------------------------------------

#: A word ending in one of these ends a sentence (e2e models emit punctuation).
SENTENCE_END = ".!?…"
#: A word ending in one of these is a good place to break an over-long segment.
CLAUSE_END = ",;:—–"
#: Closing quotes and brackets that may follow the punctuation ("Да!» / (там).").
_CLOSERS = "\"'»”’)]}"


def _last_mark(text: str) -> str:
    stripped = text.rstrip(_CLOSERS)
    return stripped[-1] if stripped else ""


def _too_long(words: Sequence[Word], max_duration: float, max_chars: int) -> bool:
    if len(words) < 2:
        return False  # a single word is never cut, however long
    chars = sum(len(w.text) for w in words) + len(words) - 1
    return chars > max_chars or words[-1].end - words[0].start > max_duration


def _break_score(before: Word, after: Word) -> tuple[bool, int]:
    """How good a place between two words is for a cut: clause punctuation, then pause length."""
    return _last_mark(before.text) in CLAUSE_END, round((after.start - before.end) * 100)


def _best_break(
    current: Sequence[Word], following: Word, max_duration: float, max_chars: int
) -> int:
    """Where to cut ``current`` (index of the first word of the tail) when ``following`` overflows.

    Cutting right before the overflowing word is always allowed; an earlier cut is allowed only
    if it leaves a head at least a third of the limit long (in seconds or characters), so no
    segment becomes a stray word. Among those, a cut after clause punctuation wins, then the
    longest pause (compared in centiseconds, so float noise does not decide), then the latest
    place: subtitles then break where a speaker would breathe instead of mid-phrase.
    """
    best_k = len(current)
    best_score = _break_score(current[-1], following)
    chars = -1
    for k in range(1, len(current)):
        head_last = current[k - 1]
        chars += len(head_last.text) + 1
        long_enough = (
            3 * chars >= max_chars or 3 * (head_last.end - current[0].start) >= max_duration
        )
        if not long_enough:
            continue
        score = _break_score(head_last, current[k])
        if score > best_score:
            best_k, best_score = k, score
    return best_k


def build_segments(
    words: Sequence[Word],
    *,
    start_id: int,
    max_duration: float = SegmentationOptions.max_duration,
    max_chars: int = SegmentationOptions.max_chars,
    gap: float = SegmentationOptions.gap,
) -> list[Segment]:
    """Group a chunk's words (absolute, monotonic times) into subtitle-grade segments.

    A new segment starts after a pause of at least ``gap`` seconds between words and after a
    word ending a sentence (``. ! ? …``, possibly followed by a closing quote or bracket). A
    segment that would grow past ``max_duration`` seconds or ``max_chars`` characters is cut
    between words, preferably after a comma or at the longest pause (see :func:`_best_break`);
    a single word longer than the limits becomes a segment on its own, never cut. Segment
    times are its first word's start and last word's end; its text is the words joined by
    single spaces, so ``Transcript.text`` and SSE deltas join segments with one space. Ids
    count up from ``start_id`` (the pipeline passes the number of segments so far). Words with
    empty text are skipped.
    """
    if not max_duration > 0:
        raise ValueError(f"max_duration must be > 0, got {max_duration!r}")
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars!r}")
    if not gap > 0:
        raise ValueError(f"gap must be > 0, got {gap!r}")

    segments: list[Segment] = []

    def emit(group: Sequence[Word]) -> None:
        first, last = group[0], group[-1]
        segments.append(
            Segment(
                id=start_id + len(segments),
                start=first.start,
                end=max(last.end, first.start),
                text=" ".join(w.text for w in group),
                words=tuple(group),
            )
        )

    current: list[Word] = []
    for raw in words:
        text = " ".join(raw.text.split())
        if not text:
            continue
        word = raw if text == raw.text else Word(text, raw.start, raw.end)
        if current:
            previous = current[-1]
            if word.start - previous.end >= gap or _last_mark(previous.text) in SENTENCE_END:
                emit(current)
                current = []
        while current and _too_long([*current, word], max_duration, max_chars):
            cut = _best_break(current, word, max_duration, max_chars)
            emit(current[:cut])
            current = current[cut:]
        current.append(word)
    if current:
        emit(current)
    return segments
