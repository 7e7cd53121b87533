"""The six ``response_format`` bodies, as pure functions over a :class:`Transcript`.

The API routes and the CLI both render through :func:`render`, and only wrap or write the
:class:`Rendered` body; bodies are ``str``, which the caller encodes as UTF-8 (the media types
say so). The package is split by idea:

* :mod:`.catalogue` — the format names, media types, file extensions, granularities and
  :class:`FormatError`: the one home of these facts;
* :mod:`.timing` — milliseconds (rounded once, so cue times and segment times agree exactly),
  the subtitle clocks and the billed ``usage``;
* :mod:`.text` — the visible segments, the top-level ``text`` and :class:`DeltaJoiner`, the
  same text built one segment at a time for streaming (SSE deltas, Wyoming chunks);
* :mod:`.bodies` — the five plain bodies (``json``, ``text``, ``verbose_json``, ``srt``,
  ``vtt``) and the layout choices the contract leaves open;
* :mod:`.speakers` — speakers in those bodies (who is shown, by what ``names``, as ``A: ``
  prefixes or WebVTT voice spans) and OpenAI's ``diarized_json``; a transcript without
  speakers renders byte for byte as before diarization existed.
"""

from __future__ import annotations

from collections.abc import Iterable

from gigaam_api.formats.bodies import (
    compression_ratio,
    render_json,
    render_srt,
    render_text,
    render_verbose_json,
    render_vtt,
)
from gigaam_api.formats.catalogue import (
    FILE_EXTENSIONS,
    GRANULARITIES,
    JSON_MEDIA_TYPE,
    RESPONSE_FORMATS,
    STREAMABLE_FORMATS,
    TEXT_MEDIA_TYPE,
    FormatError,
    Rendered,
    ResponseFormat,
    parse_granularities,
    unknown_format,
)
from gigaam_api.formats.speakers import (
    SEGMENT_EVENT_TYPE,
    UNKNOWN_SPEAKER,
    SpeakerNames,
    diarized_segment,
    diarized_segment_id,
    diarized_text,
    is_diarized,
    render_diarized_json,
    speaker_name,
    speaker_turns,
)
from gigaam_api.formats.text import DeltaJoiner, delta_text, transcript_text
from gigaam_api.formats.timing import (
    milliseconds,
    srt_timestamp,
    usage,
    usage_seconds,
    vtt_timestamp,
)
from gigaam_api.transcript import Transcript

__all__ = [
    "FILE_EXTENSIONS",
    "GRANULARITIES",
    "JSON_MEDIA_TYPE",
    "RESPONSE_FORMATS",
    "SEGMENT_EVENT_TYPE",
    "STREAMABLE_FORMATS",
    "TEXT_MEDIA_TYPE",
    "UNKNOWN_SPEAKER",
    "DeltaJoiner",
    "FormatError",
    "Rendered",
    "ResponseFormat",
    "SpeakerNames",
    "compression_ratio",
    "delta_text",
    "diarized_segment",
    "diarized_segment_id",
    "diarized_text",
    "is_diarized",
    "milliseconds",
    "parse_granularities",
    "render",
    "render_diarized_json",
    "render_json",
    "render_srt",
    "render_text",
    "render_verbose_json",
    "render_vtt",
    "speaker_name",
    "speaker_turns",
    "srt_timestamp",
    "transcript_text",
    "usage",
    "usage_seconds",
    "vtt_timestamp",
]


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
    raise unknown_format(response_format)
