"""The five plain ``response_format`` bodies (``json``, ``text``, ``verbose_json``, ``srt``,
``vtt``), as pure functions over a :class:`Transcript`.

Exact layouts are OpenAI's (``docs/api.md``). Choices the contract leaves open:

* ``verbose_json`` segment ``text`` keeps Whisper's leading space (``" Привет."``), so that
  concatenating segment texts, as Whisper-era clients do, gives the top-level ``text`` back
  once trimmed; the top-level ``text`` and the SRT/VTT cues have no leading space.
* Only visible segments are emitted; ids are renumbered from 0 (cues from 1) in that order.
* No speech: ``json`` has ``text: ""``, ``text`` is ``"\\n"``, ``srt`` is an empty body (an
  SRT file with zero cues), ``vtt`` is just the ``WEBVTT`` header, ``verbose_json`` has empty
  lists. Each stays parseable by the SDKs and by subtitle tools.
* ``usage.seconds`` is the duration rounded *up* to a whole second, as whisper-1 reports it.

A diarized transcript (:func:`~gigaam_api.formats.speakers.is_diarized`) shows its speakers in
``text``, ``srt``, ``vtt`` and ``verbose_json``; what is shown and how is
:mod:`~gigaam_api.formats.speakers`'s, these bodies only place it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

from gigaam_api.formats.catalogue import TEXT_MEDIA_TYPE, Rendered, json_body, parse_granularities
from gigaam_api.formats.speakers import (
    SpeakerNames,
    diarized_text,
    is_diarized,
    segment_speaker,
    vtt_voice,
    word_speaker,
)
from gigaam_api.formats.text import transcript_text, visible_segments
from gigaam_api.formats.timing import checked_seconds, clock, cue_times, milliseconds, usage
from gigaam_api.transcript import Segment, Transcript, Word


def _cue_text(segment: Segment) -> str:
    # A line break inside a cue would end it early (or make an empty line end the cue).
    return " ".join(segment.text.split())


def render_json(transcript: Transcript) -> Rendered:
    """``{"text": ..., "usage": {"type": "duration", "seconds": <int>}}``."""
    return json_body({"text": transcript_text(transcript), "usage": usage(transcript.duration)})


def render_text(transcript: Transcript, *, names: SpeakerNames | None = None) -> Rendered:
    """The transcript and one newline, unquoted (the SDKs return it as ``str``).

    Diarized: one ``Speaker: text`` line per turn (:func:`diarized_text`), then the newline.
    """
    if is_diarized(transcript):
        return Rendered(diarized_text(transcript, names) + "\n", TEXT_MEDIA_TYPE)
    return Rendered(transcript_text(transcript) + "\n", TEXT_MEDIA_TYPE)


def compression_ratio(text: str) -> float:
    """``len(b) / len(zlib.compress(b))`` over the UTF-8 bytes, as Whisper computes it.

    Clients use it as Whisper's repetition alarm (> 2.4 means a looping decode), so it is
    computed honestly rather than faked.
    """
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def _segment_json(
    index: int, segment: Segment, speakers: bool, names: SpeakerNames | None
) -> dict[str, Any]:
    start, end = cue_times(segment)
    text = " " + segment.text.strip()
    body = {
        "id": index,
        "seek": 0,
        "start": start / 1000,
        "end": end / 1000,
        "text": text,
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": 0.0,
        "compression_ratio": compression_ratio(text),
        "no_speech_prob": 0.0,
    }
    if speakers:
        body["speaker"] = segment_speaker(segment, names)
    return body


def _word_json(
    word: Word, segment: Segment, speakers: bool, names: SpeakerNames | None
) -> dict[str, Any]:
    start = milliseconds(word.start)
    end = max(start, milliseconds(word.end))
    body: dict[str, Any] = {"word": word.text, "start": start / 1000, "end": end / 1000}
    if speakers:
        body["speaker"] = word_speaker(word, segment, names)
    return body


def render_verbose_json(
    transcript: Transcript,
    granularities: Iterable[str] | None = None,
    *,
    names: SpeakerNames | None = None,
) -> Rendered:
    """Whisper's ``verbose_json``: ``segments`` and/or ``words`` as requested (default segments).

    ``tokens`` is ``[]`` and ``temperature``/``avg_logprob``/``no_speech_prob`` are ``0.0``,
    values that pass Whisper clients' quality thresholds; ``seek`` is 0. Diarized, every
    segment and word also has ``speaker`` (an extension: the SDKs' types keep extra fields).
    """
    speakers = is_diarized(transcript)
    wanted = parse_granularities(granularities)
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": transcript.language,
        "duration": checked_seconds("duration", transcript.duration),
        "text": transcript_text(transcript),
    }
    segments = visible_segments(transcript)
    if "word" in wanted:
        body["words"] = [
            _word_json(w, s, speakers, names) for s in segments for w in s.words if w.text.strip()
        ]
    if "segment" in wanted:
        body["segments"] = [_segment_json(i, s, speakers, names) for i, s in enumerate(segments)]
    body["usage"] = usage(transcript.duration)
    return json_body(body)


def render_srt(transcript: Transcript, *, names: SpeakerNames | None = None) -> Rendered:
    """SubRip: cues numbered from 1, ``HH:MM:SS,mmm``, a blank line after every cue, LF only.

    Diarized, each cue's text starts with ``Speaker: `` (SRT has no speaker markup).
    """
    speakers = is_diarized(transcript)
    cues = []
    for number, segment in enumerate(visible_segments(transcript), start=1):
        start, end = cue_times(segment)
        text = _cue_text(segment)
        if speakers:
            text = f"{segment_speaker(segment, names)}: {text}"
        cues.append(f"{number}\n{clock(start, ',')} --> {clock(end, ',')}\n{text}\n\n")
    return Rendered("".join(cues), TEXT_MEDIA_TYPE)


def render_vtt(transcript: Transcript, *, names: SpeakerNames | None = None) -> Rendered:
    """WebVTT: the ``WEBVTT`` header, then cues without ids, ``HH:MM:SS.mmm``.

    Diarized, each cue is a voice span (:func:`vtt_voice`), which players show or style.
    """
    speakers = is_diarized(transcript)
    cues = ["WEBVTT\n\n"]
    for segment in visible_segments(transcript):
        start, end = cue_times(segment)
        text = _cue_text(segment)
        if speakers:
            text = vtt_voice(segment_speaker(segment, names), text)
        cues.append(f"{clock(start, '.')} --> {clock(end, '.')}\n{text}\n\n")
    return Rendered("".join(cues), TEXT_MEDIA_TYPE)
