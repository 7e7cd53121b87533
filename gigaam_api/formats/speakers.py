"""Speakers in the formats (``docs/api.md``, "Speakers"): who is shown, by what name, and
OpenAI's ``diarized_json``.

A transcript is *diarized* when any segment or word carries a speaker (:func:`is_diarized`);
without one every body is byte for byte what it was before diarization existed. With
speakers:

* ``diarized_json`` is OpenAI's ``TranscriptionDiarized``; its ``text`` is ``Speaker: text``
  lines, one per speaker turn (consecutive segments of one speaker), joined by ``\\n``.
* ``text`` is the same lines plus the final newline; SRT cues start ``A: ``; VTT cues are
  WebVTT voice spans (:func:`vtt_voice`: ``<v A>text``); ``verbose_json`` segments and words
  get ``speaker``.
* ``json`` and ``verbose_json``'s top-level ``text`` stay the plain transcript: clients read
  them as *the* transcript (dictation, search, LLM input), and the streamed deltas, which
  cannot know the turns ahead, must add up to ``json``'s ``text``.
* A speaker label is shown through ``names`` (label → display name: a job's renamed speakers)
  when given; a segment without a speaker in a diarized transcript (or any segment of one
  rendered as ``diarized_json`` without diarization) shows :data:`UNKNOWN_SPEAKER`.

The plain bodies (:mod:`.bodies`) ask this module for the speaker to show and how; this
module is also the one home of OpenAI's diarized segment (:func:`diarized_segment`,
:func:`diarized_segment_id`), which the SSE events reuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gigaam_api.formats.catalogue import Rendered, json_body
from gigaam_api.formats.text import visible_segments
from gigaam_api.formats.timing import checked_seconds, cue_times, usage
from gigaam_api.transcript import Segment, Transcript, Word

#: The label shown for a segment that has no speaker where a speaker must be shown.
UNKNOWN_SPEAKER: Final = "unknown"
#: ``type`` of a ``diarized_json`` segment and of the SSE event that carries one.
SEGMENT_EVENT_TYPE: Final = "transcript.text.segment"
#: Display names: speaker label (``A``, ``B``, … or a known name) → the name to show.
SpeakerNames = Mapping[str, str]


def is_diarized(transcript: Transcript) -> bool:
    """Whether any segment or word has a speaker: only then do the formats show speakers."""
    return any(
        s.speaker is not None or any(w.speaker is not None for w in s.words)
        for s in transcript.segments
    )


def speaker_name(label: str | None, names: SpeakerNames | None = None) -> str:
    """The name shown for a speaker label: ``names[label]`` when given, else the label.

    ``None`` (no speaker) is :data:`UNKNOWN_SPEAKER`. Whitespace runs and control characters
    become single spaces, so a name can never break a text line, an SRT cue or a VTT span; a
    name that is blank after that falls back to the label.
    """
    key = UNKNOWN_SPEAKER if label is None else label
    shown = _one_line(names.get(key, "")) if names else ""
    return shown or _one_line(key) or UNKNOWN_SPEAKER


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def segment_speaker(segment: Segment, names: SpeakerNames | None) -> str:
    """The name shown for a segment: its speaker's, or (a hand-made segment whose words alone
    carry the speaker) its first labelled word's."""
    label = segment.speaker
    if label is None:
        label = next((w.speaker for w in segment.words if w.speaker is not None), None)
    return speaker_name(label, names)


def word_speaker(word: Word, segment: Segment, names: SpeakerNames | None) -> str:
    """The name shown for a word: its own speaker's, else its segment's (the pipeline sets
    both)."""
    if word.speaker is not None:
        return speaker_name(word.speaker, names)
    return segment_speaker(segment, names)


def vtt_voice(speaker: str, text: str) -> str:
    """A WebVTT voice span, ``<v Speaker>text``, which players show or style.

    The annotation ends at ``>`` and may hold character references (WebVTT §4.2.2), so the
    name is escaped.
    """
    escaped = speaker.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<v {escaped}>{text}"


def speaker_turns(
    transcript: Transcript, names: SpeakerNames | None = None
) -> list[tuple[str, str]]:
    """``(speaker, text)`` per turn: consecutive visible segments of one (shown) speaker.

    Texts are trimmed and joined by single spaces, as in
    :func:`~gigaam_api.formats.text.transcript_text`; two labels renamed to the same name make
    one turn, as a reader would expect.
    """
    turns: list[tuple[str, list[str]]] = []
    for segment in visible_segments(transcript):
        speaker = segment_speaker(segment, names)
        if turns and turns[-1][0] == speaker:
            turns[-1][1].append(segment.text.strip())
        else:
            turns.append((speaker, [segment.text.strip()]))
    return [(speaker, " ".join(texts)) for speaker, texts in turns]


def diarized_text(transcript: Transcript, names: SpeakerNames | None = None) -> str:
    """``Speaker: text`` lines, one per turn, joined by ``\\n`` (no final newline)."""
    return "\n".join(f"{speaker}: {text}" for speaker, text in speaker_turns(transcript, names))


def diarized_segment_id(index: int) -> str:
    """The id of the ``index``-th (from 0) visible segment: ``seg_001``, ``seg_002``, …

    OpenAI's ids are opaque strings; this shape matches its examples. The ``diarized_json``
    body and the streamed ``transcript.text.segment`` events and deltas all use it, so a
    client can tie a delta to its segment. More than 999 segments simply get more digits.
    """
    if index < 0:
        raise ValueError(f"segment index must be >= 0, got {index}")
    return f"seg_{index + 1:03d}"


def diarized_segment(
    index: int, segment: Segment, names: SpeakerNames | None = None
) -> dict[str, Any]:
    """One ``diarized_json`` segment, which is also the SSE ``transcript.text.segment`` event.

    ``index`` is the segment's place among the visible segments (from 0), as ``verbose_json``
    numbers them.
    """
    start, end = cue_times(segment)
    return {
        "type": SEGMENT_EVENT_TYPE,
        "id": diarized_segment_id(index),
        "start": start / 1000,
        "end": end / 1000,
        "text": segment.text.strip(),
        "speaker": segment_speaker(segment, names),
    }


def render_diarized_json(transcript: Transcript, *, names: SpeakerNames | None = None) -> Rendered:
    """OpenAI's ``TranscriptionDiarized``: ``task``, ``duration``, ``text``, ``segments``,
    ``usage``.

    ``text`` is :func:`diarized_text`; segments are :func:`diarized_segment`, numbered over
    the visible segments like ``verbose_json``'s. A transcript without speakers (diarization
    did not run) still renders, every segment under :data:`UNKNOWN_SPEAKER`.
    """
    segments = visible_segments(transcript)
    return json_body(
        {
            "task": "transcribe",
            "duration": checked_seconds("duration", transcript.duration),
            "text": diarized_text(transcript, names),
            "segments": [diarized_segment(i, s, names) for i, s in enumerate(segments)],
            "usage": usage(transcript.duration),
        }
    )
