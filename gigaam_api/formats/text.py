"""The transcript's plain text: which segments are shown, the top-level ``text``, and the
same text built one segment at a time for streaming.

Only segments with text are emitted, in every format (:func:`visible_segments`), so SRT/VTT
cue counts equal the ``verbose_json`` segment count and no cue is empty. Streamed text (SSE
deltas, Wyoming transcript chunks) is :class:`DeltaJoiner`'s, built segment by segment so that
it always adds up to the ``json`` format's ``text``.
"""

from __future__ import annotations

from gigaam_api.transcript import Segment, Transcript


def visible_segments(transcript: Transcript) -> list[Segment]:
    """The segments with text, in order: the ones every format shows and numbers."""
    return [s for s in transcript.segments if s.text.strip()]


def transcript_text(transcript: Transcript) -> str:
    """The top-level ``text``: segment texts, trimmed, joined by single spaces.

    Equal to ``Transcript.text`` for segments from ``build_segments``; defined here from the
    visible segments so that every format and the streamed deltas (:class:`DeltaJoiner`) agree
    even on a hand-made transcript with blank or padded segment texts.
    """
    return " ".join(s.text.strip() for s in visible_segments(transcript))


def delta_text(segment_text: str, *, first: bool) -> str:
    """The delta for one segment: its trimmed text, after a space unless it is the first one.

    Empty for a segment without text (send nothing then, and it does not count as first).
    """
    text = segment_text.strip()
    if not text or first:
        return text
    return " " + text


class DeltaJoiner:
    """:func:`transcript_text` built one finished segment at a time, for streamed text.

    The space that separates two segments starts the *next* delta, so the deltas sent so far,
    concatenated, are always the text so far, and at the end exactly ``transcript_text``. The
    HTTP layer's SSE deltas and the Wyoming door's transcript chunks both come from here.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []

    def delta(self, segment_text: str) -> str:
        """The delta to send for this segment ("" means send nothing)."""
        piece = delta_text(segment_text, first=not self._parts)
        if piece:
            self._parts.append(piece)
        return piece

    @property
    def text(self) -> str:
        """Everything sent so far, joined: the final text (the SSE ``done`` event's)."""
        return "".join(self._parts)
