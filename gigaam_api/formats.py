"""The six ``response_format`` bodies, as pure functions over a :class:`Transcript`.

The one home of the format names, their media types and file extensions: the API routes and
the CLI both render through :func:`render`, and only wrap or write the :class:`Rendered` body.
Exact layouts are OpenAI's (``docs/api.md``). Choices the contract leaves open:

* ``verbose_json`` segment ``text`` keeps Whisper's leading space (``" Привет."``), so that
  concatenating segment texts, as Whisper-era clients do, gives the top-level ``text`` back
  once trimmed; the top-level ``text`` and the SRT/VTT cues have no leading space.
* Only segments with text are emitted, in every format, so SRT/VTT cue counts equal the
  ``verbose_json`` segment count and no cue is empty; ids are renumbered
  from 0 (cues from 1) in that order.
* Times are rounded to the millisecond once (:func:`milliseconds`) and every format uses that
  value, so cue times and segment times agree exactly.
* No speech: ``json`` has ``text: ""``, ``text`` is ``"\\n"``, ``srt`` is an empty body (an
  SRT file with zero cues), ``vtt`` is just the ``WEBVTT`` header, ``verbose_json`` has empty
  lists. Each stays parseable by the SDKs and by subtitle tools.
* ``usage.seconds`` is the duration rounded *up* to a whole second, as whisper-1 reports it.
* Streamed text (SSE deltas, Wyoming transcript chunks) is :class:`DeltaJoiner`'s, built
  segment by segment so that it always adds up to the ``json`` format's ``text``.

Speakers (``docs/api.md``, "Speakers"). A transcript is *diarized* when any segment or word
carries a speaker (:func:`is_diarized`); without one every body is byte for byte what it was
before diarization existed. With speakers:

* ``diarized_json`` is OpenAI's ``TranscriptionDiarized``; its ``text`` is ``Speaker: text``
  lines, one per speaker turn (consecutive segments of one speaker), joined by ``\n``.
* ``text`` is the same lines plus the final newline; SRT cues start ``A: ``; VTT cues are
  WebVTT voice spans (``<v A>text``); ``verbose_json`` segments and words get ``speaker``.
* ``json`` and ``verbose_json``'s top-level ``text`` stay the plain transcript: clients read
  them as *the* transcript (dictation, search, LLM input), and the streamed deltas, which
  cannot know the turns ahead, must add up to ``json``'s ``text``.
* A speaker label is shown through ``names`` (label → display name: a job's renamed speakers)
  when given; a segment without a speaker in a diarized transcript (or any segment of one
  rendered as ``diarized_json`` without diarization) shows :data:`UNKNOWN_SPEAKER`.

Bodies are ``str``; the caller encodes them as UTF-8 (the media types say so).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, NamedTuple, get_args

from gigaam_api.transcript import Segment, Transcript, Word

ResponseFormat = Literal["json", "text", "verbose_json", "srt", "vtt", "diarized_json"]
#: Every ``response_format``, in the order error messages and ``--help`` list them.
RESPONSE_FORMATS: Final[tuple[ResponseFormat, ...]] = get_args(ResponseFormat)
#: Formats that stream as SSE; the others return the full response even with stream=true.
#: ``json``/``text`` stream text deltas; ``diarized_json`` streams OpenAI's
#: ``transcript.text.segment`` events as well (``api/sse.py``).
STREAMABLE_FORMATS: Final[tuple[ResponseFormat, ...]] = ("json", "text", "diarized_json")
#: File extension per format, for the files the CLI writes (``--output DIR``).
FILE_EXTENSIONS: Final[dict[str, str]] = {
    "json": "json",
    "text": "txt",
    "verbose_json": "json",
    "srt": "srt",
    "vtt": "vtt",
    "diarized_json": "json",
}
#: The label shown for a segment that has no speaker where a speaker must be shown.
UNKNOWN_SPEAKER: Final = "unknown"
#: ``type`` of a ``diarized_json`` segment and of the SSE event that carries one.
SEGMENT_EVENT_TYPE: Final = "transcript.text.segment"
#: Display names: speaker label (``A``, ``B``, … or a known name) → the name to show.
SpeakerNames = Mapping[str, str]
GRANULARITIES = ("segment", "word")
JSON_MEDIA_TYPE = "application/json"
#: text, srt and vtt: never a JSON type, or the Node SDK parses the body as JSON.
TEXT_MEDIA_TYPE = "text/plain; charset=utf-8"


class Rendered(NamedTuple):
    """A response body and its ``Content-Type``."""

    body: str
    media_type: str


class FormatError(ValueError):
    """A request asked for a format or granularity that does not exist.

    ``param`` names the form field, for the OpenAI error envelope (400, ``param`` set).
    """

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _dumps(payload: Any) -> str:
    # Compact like upstream; Cyrillic as is (smaller, readable); NaN is a bug, not JSON.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _seconds(name: str, value: float) -> float:
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


def _clock(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt_timestamp(seconds: float) -> str:
    """``HH:MM:SS,mmm`` (hours grow past two digits only beyond 99 h)."""
    return _clock(milliseconds(seconds), ",")


def vtt_timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm``: always with hours, a dot before the milliseconds."""
    return _clock(milliseconds(seconds), ".")


def usage_seconds(duration: float) -> int:
    """The billed duration: seconds rounded up, as whisper-1 does (6.96 → 7, 8.47 → 9).

    Float noise below a microsecond is ignored first so that an exact 7.0 s computed as
    7.000000000000001 is not billed as 8 s (a sample at 16 kHz is 62.5 µs, so no real
    duration is rounded away).
    """
    return math.ceil(round(_seconds("duration", duration), 6))


def usage(duration: float) -> dict[str, Any]:
    """The ``usage`` object of ``json``, ``verbose_json`` and the SSE done event."""
    return {"type": "duration", "seconds": usage_seconds(duration)}


def _visible(transcript: Transcript) -> list[Segment]:
    return [s for s in transcript.segments if s.text.strip()]


def transcript_text(transcript: Transcript) -> str:
    """The top-level ``text``: segment texts, trimmed, joined by single spaces.

    Equal to ``Transcript.text`` for segments from ``build_segments``; defined here from the
    visible segments so that every format and the streamed deltas (:class:`DeltaJoiner`) agree
    even on a hand-made transcript with blank or padded segment texts.
    """
    return " ".join(s.text.strip() for s in _visible(transcript))


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


# --- speakers ------------------------------------------------------------------------------------


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


def _segment_speaker(segment: Segment, names: SpeakerNames | None) -> str:
    label = segment.speaker
    if label is None:  # a hand-made segment whose words alone carry the speaker
        label = next((w.speaker for w in segment.words if w.speaker is not None), None)
    return speaker_name(label, names)


def speaker_turns(
    transcript: Transcript, names: SpeakerNames | None = None
) -> list[tuple[str, str]]:
    """``(speaker, text)`` per turn: consecutive visible segments of one (shown) speaker.

    Texts are trimmed and joined by single spaces, as in :func:`transcript_text`; two labels
    renamed to the same name make one turn, as a reader would expect.
    """
    turns: list[tuple[str, list[str]]] = []
    for segment in _visible(transcript):
        speaker = _segment_speaker(segment, names)
        if turns and turns[-1][0] == speaker:
            turns[-1][1].append(segment.text.strip())
        else:
            turns.append((speaker, [segment.text.strip()]))
    return [(speaker, " ".join(texts)) for speaker, texts in turns]


def diarized_text(transcript: Transcript, names: SpeakerNames | None = None) -> str:
    """``Speaker: text`` lines, one per turn, joined by ``\n`` (no final newline)."""
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
    start, end = _cue_times(segment)
    return {
        "type": SEGMENT_EVENT_TYPE,
        "id": diarized_segment_id(index),
        "start": start / 1000,
        "end": end / 1000,
        "text": segment.text.strip(),
        "speaker": _segment_speaker(segment, names),
    }


def _vtt_escape(text: str) -> str:
    # A voice annotation ends at ">" and may hold character references (WebVTT §4.2.2).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cue_text(segment: Segment) -> str:
    # A line break inside a cue would end it early (or make an empty line end the cue).
    return " ".join(segment.text.split())


def _cue_times(segment: Segment) -> tuple[int, int]:
    start = milliseconds(segment.start)
    return start, max(start, milliseconds(segment.end))


def render_json(transcript: Transcript) -> Rendered:
    """``{"text": ..., "usage": {"type": "duration", "seconds": <int>}}``."""
    body = {"text": transcript_text(transcript), "usage": usage(transcript.duration)}
    return Rendered(_dumps(body), JSON_MEDIA_TYPE)


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
    start, end = _cue_times(segment)
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
        body["speaker"] = _segment_speaker(segment, names)
    return body


def _word_json(
    word: Word, segment: Segment, speakers: bool, names: SpeakerNames | None
) -> dict[str, Any]:
    start = milliseconds(word.start)
    end = max(start, milliseconds(word.end))
    body: dict[str, Any] = {"word": word.text, "start": start / 1000, "end": end / 1000}
    if speakers:
        # A word without its own speaker is its segment's (the pipeline sets both).
        body["speaker"] = (
            speaker_name(word.speaker, names)
            if word.speaker is not None
            else _segment_speaker(segment, names)
        )
    return body


def parse_granularities(values: Iterable[str] | None) -> frozenset[str]:
    """The requested ``timestamp_granularities[]``; none given means ``{"segment"}`` (spec)."""
    chosen = frozenset(v.strip().lower() for v in values or () if v.strip())
    unknown = sorted(chosen - set(GRANULARITIES))
    if unknown:
        raise FormatError(
            f"Invalid timestamp_granularities value(s) {', '.join(map(repr, unknown))}; "
            f"expected any of {', '.join(GRANULARITIES)}.",
            "timestamp_granularities[]",
        )
    return chosen or frozenset({"segment"})


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
        "duration": _seconds("duration", transcript.duration),
        "text": transcript_text(transcript),
    }
    segments = _visible(transcript)
    if "word" in wanted:
        body["words"] = [
            _word_json(w, s, speakers, names) for s in segments for w in s.words if w.text.strip()
        ]
    if "segment" in wanted:
        body["segments"] = [_segment_json(i, s, speakers, names) for i, s in enumerate(segments)]
    body["usage"] = usage(transcript.duration)
    return Rendered(_dumps(body), JSON_MEDIA_TYPE)


def render_srt(transcript: Transcript, *, names: SpeakerNames | None = None) -> Rendered:
    """SubRip: cues numbered from 1, ``HH:MM:SS,mmm``, a blank line after every cue, LF only.

    Diarized, each cue's text starts with ``Speaker: `` (SRT has no speaker markup).
    """
    speakers = is_diarized(transcript)
    cues = []
    for number, segment in enumerate(_visible(transcript), start=1):
        start, end = _cue_times(segment)
        text = _cue_text(segment)
        if speakers:
            text = f"{_segment_speaker(segment, names)}: {text}"
        cues.append(f"{number}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{text}\n\n")
    return Rendered("".join(cues), TEXT_MEDIA_TYPE)


def render_vtt(transcript: Transcript, *, names: SpeakerNames | None = None) -> Rendered:
    """WebVTT: the ``WEBVTT`` header, then cues without ids, ``HH:MM:SS.mmm``.

    Diarized, each cue is a voice span, ``<v Speaker>text``, which players show or style.
    """
    speakers = is_diarized(transcript)
    cues = ["WEBVTT\n\n"]
    for segment in _visible(transcript):
        start, end = _cue_times(segment)
        text = _cue_text(segment)
        if speakers:
            text = f"<v {_vtt_escape(_segment_speaker(segment, names))}>{text}"
        cues.append(f"{_clock(start, '.')} --> {_clock(end, '.')}\n{text}\n\n")
    return Rendered("".join(cues), TEXT_MEDIA_TYPE)


def render_diarized_json(transcript: Transcript, *, names: SpeakerNames | None = None) -> Rendered:
    """OpenAI's ``TranscriptionDiarized``: ``task``, ``duration``, ``text``, ``segments``,
    ``usage``.

    ``text`` is :func:`diarized_text`; segments are :func:`diarized_segment`, numbered over
    the visible segments like ``verbose_json``'s. A transcript without speakers (diarization
    did not run) still renders, every segment under :data:`UNKNOWN_SPEAKER`.
    """
    body = {
        "task": "transcribe",
        "duration": _seconds("duration", transcript.duration),
        "text": diarized_text(transcript, names),
        "segments": [diarized_segment(i, s, names) for i, s in enumerate(_visible(transcript))],
        "usage": usage(transcript.duration),
    }
    return Rendered(_dumps(body), JSON_MEDIA_TYPE)


def render(
    transcript: Transcript,
    response_format: str,
    granularities: Iterable[str] | None = None,
    *,
    names: SpeakerNames | None = None,
) -> Rendered:
    """Dispatch on ``response_format``; ``granularities`` matter only for ``verbose_json``.

    ``names`` maps speaker labels to the names to show (every format that shows speakers).
    Raises :class:`FormatError` (``param="response_format"``) for an unknown format.
    """
    if response_format == "json":
        return render_json(transcript)
    if response_format == "text":
        return render_text(transcript, names=names)
    if response_format == "verbose_json":
        return render_verbose_json(transcript, granularities, names=names)
    if response_format == "srt":
        return render_srt(transcript, names=names)
    if response_format == "vtt":
        return render_vtt(transcript, names=names)
    if response_format == "diarized_json":
        return render_diarized_json(transcript, names=names)
    raise FormatError(
        f"Invalid response_format {response_format!r}; expected one of "
        f"{', '.join(RESPONSE_FORMATS)}.",
        "response_format",
    )
