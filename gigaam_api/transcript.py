"""Transcript data types: what the pipeline produces and the formatters consume.

Times are seconds (float), absolute in the input file.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its time span."""

    text: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Segment:
    """A subtitle-grade piece of the transcript (a cue in SRT/VTT, a segment in verbose_json)."""

    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()


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
