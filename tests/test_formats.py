"""The five response formats, byte for byte as ``docs/api.md`` describes them."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
from openai.types.audio import Transcription, TranscriptionVerbose

from gigaam_api.formats import (
    GRANULARITIES,
    JSON_MEDIA_TYPE,
    RESPONSE_FORMATS,
    TEXT_MEDIA_TYPE,
    FormatError,
    Rendered,
    compression_ratio,
    milliseconds,
    render,
    render_json,
    render_srt,
    render_text,
    render_verbose_json,
    render_vtt,
    srt_timestamp,
    transcript_text,
    usage_seconds,
    vtt_timestamp,
)
from gigaam_api.transcript import Segment, Transcript, Word, build_segments

SRT_TIME = re.compile(r"^\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}$")
VTT_TIME = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d{3} --> \d{2}:\d{2}:\d{2}\.\d{3}$")


def spoken(text: str, start: float = 0.25, step: float = 0.37) -> list[Word]:
    return [
        Word(token, start + i * step, start + i * step + step * 0.8)
        for i, token in enumerate(text.split())
    ]


def sample() -> Transcript:
    """Three segments (a pause and a sentence end split them), with words, ~8.5 s of audio."""
    words = spoken("Привет, как дела? Всё хорошо, спасибо.")
    words += spoken("А у тебя что нового", start=4.1)
    return Transcript(segments=build_segments(words, start_id=0), duration=8.47)


def empty(duration: float = 3.0) -> Transcript:
    return Transcript(segments=[], duration=duration)


def cues(body: str) -> list[list[str]]:
    assert body.endswith("\n\n")
    return [block.split("\n") for block in body[:-2].split("\n\n")]


# --- json and text --------------------------------------------------------------------------


def test_json_is_compact_with_text_and_duration_usage() -> None:
    transcript = sample()
    rendered = render_json(transcript)
    assert rendered.media_type.startswith("application/json")
    assert rendered.body == (
        '{"text":"Привет, как дела? Всё хорошо, спасибо. А у тебя что нового",'
        '"usage":{"type":"duration","seconds":9}}'
    )
    parsed = json.loads(rendered.body)
    assert parsed["text"] == parsed["text"].strip() == transcript.text
    assert parsed["usage"]["seconds"] >= transcript.duration


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [(0.0, 0), (0.01, 1), (6.96, 7), (7.0, 7), (0.1 * 3 * 10, 3), (7.0000625, 8), (36000.0, 36000)],
)
def test_usage_seconds_round_up(duration: float, seconds: int) -> None:
    assert usage_seconds(duration) == seconds
    assert isinstance(usage_seconds(duration), int)


def test_text_is_the_transcript_and_one_newline_unquoted() -> None:
    transcript = sample()
    rendered = render_text(transcript)
    assert rendered == Rendered(transcript.text + "\n", "text/plain; charset=utf-8")
    assert not rendered.body.startswith('"')


def test_no_speech_bodies() -> None:
    transcript = empty()
    assert json.loads(render_json(transcript).body) == {
        "text": "",
        "usage": {"type": "duration", "seconds": 3},
    }
    assert render_text(transcript).body == "\n"
    assert render_srt(transcript).body == ""
    assert render_vtt(transcript).body == "WEBVTT\n\n"
    verbose = json.loads(render_verbose_json(transcript, ["word", "segment"]).body)
    assert verbose["text"] == ""
    assert verbose["segments"] == [] and verbose["words"] == []
    assert verbose["duration"] == 3.0


# --- srt and vtt ------------------------------------------------------------------------------


def two_cues() -> Transcript:
    return Transcript(
        segments=[
            Segment(0, 0.0, 2.5, "First segment text."),
            Segment(1, 2.5, 5.0, "Second segment text."),
        ],
        duration=5.0,
    )


@pytest.mark.parametrize(
    ("renderer", "expected"),
    [
        (
            render_srt,  # upstream's layout
            "1\n00:00:00,000 --> 00:00:02,500\nFirst segment text.\n\n"
            "2\n00:00:02,500 --> 00:00:05,000\nSecond segment text.\n\n",
        ),
        (
            render_vtt,  # the documented layout
            "WEBVTT\n\n"
            "00:00:00.000 --> 00:00:02.500\nFirst segment text.\n\n"
            "00:00:02.500 --> 00:00:05.000\nSecond segment text.\n\n",
        ),
    ],
    ids=["srt", "vtt"],
)
def test_subtitles_match_the_layout_byte_for_byte(
    renderer: Callable[[Transcript], Rendered], expected: str
) -> None:
    rendered = renderer(two_cues())
    assert rendered.media_type == TEXT_MEDIA_TYPE
    assert rendered.body == expected


def test_srt_cues_are_numbered_timed_and_never_empty() -> None:
    body = render_srt(sample()).body
    assert "\r" not in body
    blocks = cues(body)
    assert [int(block[0]) for block in blocks] == list(range(1, len(blocks) + 1))
    for block in blocks:
        assert len(block) == 3
        assert SRT_TIME.match(block[1])
        assert block[2].strip() == block[2] != ""


def test_vtt_has_its_header_and_unnumbered_cues() -> None:
    body = render_vtt(sample()).body
    assert body.startswith("WEBVTT\n\n")
    assert "\r" not in body
    blocks = cues(body[len("WEBVTT\n\n") :])
    for block in blocks:
        assert len(block) == 2  # no numeric identifier line
        assert VTT_TIME.match(block[0])
        assert block[1]


def test_cues_equal_verbose_segments_to_the_millisecond() -> None:
    transcript = Transcript(
        segments=[
            Segment(0, 0.0004, 1.2345, "раз"),
            Segment(1, 1.5, 1.5, "два"),
            Segment(2, 2.0, 3.0, "   "),  # no text: neither a cue nor a segment
            Segment(3, 3.9996, 4.0004, "три\nчетыре"),
        ],
        duration=5.0,
    )
    segments = json.loads(render_verbose_json(transcript).body)["segments"]
    srt_blocks = cues(render_srt(transcript).body)
    vtt_blocks = cues(render_vtt(transcript).body[len("WEBVTT\n\n") :])
    assert len(segments) == len(srt_blocks) == len(vtt_blocks) == 3
    expected = [
        ("00:00:00,000", "00:00:01,235", 0.0, 1.235),
        ("00:00:01,500", "00:00:01,500", 1.5, 1.5),
        ("00:00:04,000", "00:00:04,000", 4.0, 4.0),
    ]
    for segment, srt, vtt, (start, end, s, e) in zip(
        segments, srt_blocks, vtt_blocks, expected, strict=True
    ):
        assert srt[1] == f"{start} --> {end}"
        assert vtt[0] == f"{start} --> {end}".replace(",", ".")
        assert (segment["start"], segment["end"]) == (s, e)
    # A line break inside a segment's text must not end the cue early.
    assert srt_blocks[2][2] == vtt_blocks[2][1] == "три четыре"
    assert [s["id"] for s in segments] == [0, 1, 2]


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt"),
    [
        (0.0, "00:00:00,000", "00:00:00.000"),
        (0.0004, "00:00:00,000", "00:00:00.000"),
        (0.0006, "00:00:00,001", "00:00:00.001"),
        (2.9996, "00:00:03,000", "00:00:03.000"),
        (59.9999, "00:01:00,000", "00:01:00.000"),
        (3725.5, "01:02:05,500", "01:02:05.500"),
        (3599.9996, "01:00:00,000", "01:00:00.000"),
        (36000.0, "10:00:00,000", "10:00:00.000"),
        (10 * 3600 + 59 * 60 + 59.999, "10:59:59,999", "10:59:59.999"),
        (100 * 3600.0, "100:00:00,000", "100:00:00.000"),
        (-0.001, "00:00:00,000", "00:00:00.000"),
    ],
)
def test_timestamps_round_to_the_millisecond_and_grow_past_hours(
    seconds: float, srt: str, vtt: str
) -> None:
    assert srt_timestamp(seconds) == srt
    assert vtt_timestamp(seconds) == vtt


def test_long_transcripts_keep_timestamps_exact() -> None:
    # Ten hours of two-second segments: no drift, the last cue is at 9:59:58.
    segments = [Segment(i, i * 2.0, i * 2.0 + 1.5, f"фраза {i}") for i in range(18000)]
    transcript = Transcript(segments=segments, duration=36000.0)
    blocks = cues(render_srt(transcript).body)
    assert len(blocks) == 18000
    assert blocks[-1] == ["18000", "09:59:58,000 --> 09:59:59,500", "фраза 17999"]
    assert cues(render_vtt(transcript).body[8:])[1800][0] == "01:00:00.000 --> 01:00:01.500"


# --- verbose_json -----------------------------------------------------------------------------

SEGMENT_TYPES: dict[str, type | tuple[type, ...]] = {
    "id": int,
    "seek": int,
    "start": float,
    "end": float,
    "text": str,
    "tokens": list,
    "temperature": float,
    "avg_logprob": float,
    "compression_ratio": float,
    "no_speech_prob": float,
}


def test_verbose_json_top_level_fields() -> None:
    transcript = sample()
    rendered = render_verbose_json(transcript)
    assert rendered.media_type == JSON_MEDIA_TYPE
    body = json.loads(rendered.body)
    assert body["task"] == "transcribe"
    assert body["language"] == "russian"
    assert isinstance(body["duration"], float) and body["duration"] == 8.47
    assert body["text"] == transcript.text
    assert body["usage"] == {"type": "duration", "seconds": 9}
    # Whole floats stay floats on the wire (the SDK type says float).
    assert '"duration":3.0,' in render_verbose_json(Transcript(duration=3)).body


def test_verbose_json_segments_have_all_ten_fields() -> None:
    transcript = sample()
    segments = json.loads(render_verbose_json(transcript).body)["segments"]
    assert len(segments) == len(transcript.segments) == 3
    for index, (segment, source) in enumerate(zip(segments, transcript.segments, strict=True)):
        assert set(segment) == set(SEGMENT_TYPES)
        for key, kind in SEGMENT_TYPES.items():
            assert isinstance(segment[key], kind), key
        assert segment["id"] == index
        assert segment["seek"] == 0 and segment["tokens"] == []
        assert segment["temperature"] == segment["avg_logprob"] == segment["no_speech_prob"] == 0
        assert segment["start"] <= segment["end"]
        assert segment["text"] == " " + source.text
        data = segment["text"].encode("utf-8")
        assert segment["compression_ratio"] == len(data) / len(zlib.compress(data))
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)


def test_verbose_json_text_is_the_segments_joined_and_trimmed() -> None:
    body = json.loads(render_verbose_json(sample()).body)
    assert body["text"] == "".join(s["text"] for s in body["segments"]).strip()


def test_padded_or_blank_segment_texts_keep_every_format_consistent() -> None:
    transcript = Transcript(
        segments=[
            Segment(0, 0.0, 1.0, " Да. "),
            Segment(1, 1.0, 2.0, " "),
            Segment(2, 2.0, 3.0, "Нет."),
        ],
        duration=3.0,
    )
    assert transcript_text(transcript) == "Да. Нет."
    assert json.loads(render_json(transcript).body)["text"] == "Да. Нет."
    assert render_text(transcript).body == "Да. Нет.\n"
    body = json.loads(render_verbose_json(transcript).body)
    assert [s["text"] for s in body["segments"]] == [" Да.", " Нет."]
    assert body["text"] == "".join(s["text"] for s in body["segments"]).strip()


@pytest.mark.parametrize(
    ("granularities", "has_segments", "has_words"),
    [
        (None, True, False),
        ([], True, False),
        (["segment"], True, False),
        (["word"], False, True),
        (["word", "segment"], True, True),
        (["segment", "word", "word"], True, True),
        ([" Word "], False, True),
    ],
)
def test_verbose_json_lists_follow_the_granularities(
    granularities: list[str] | None, has_segments: bool, has_words: bool
) -> None:
    body = json.loads(render_verbose_json(sample(), granularities).body)
    assert ("segments" in body) is has_segments
    assert ("words" in body) is has_words


def test_verbose_json_words() -> None:
    transcript = sample()
    body = json.loads(render_verbose_json(transcript, ["word"]).body)
    words = body["words"]
    assert [w["word"] for w in words] == [w.text for w in transcript.words]
    for word in words:
        assert set(word) == {"word", "start", "end"}
        assert 0.0 <= word["start"] <= word["end"] <= body["duration"] + 0.5
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    assert words[0] == {"word": "Привет,", "start": 0.25, "end": 0.546}


def test_granularities_are_ignored_by_the_other_formats() -> None:
    transcript = sample()
    for fmt in ("json", "text", "srt", "vtt"):
        with_words = render(transcript, fmt, ["word"])
        assert with_words == render(transcript, fmt)
        assert '"words"' not in with_words.body


def test_compression_ratio_flags_repetition() -> None:
    varied = compression_ratio(" Сегодня утром в Москве было прохладно.")
    looping = compression_ratio(" да" * 40)
    assert looping > 2.4 > varied > 0


# --- dispatch and bad input --------------------------------------------------------------------


def test_render_dispatches_every_format() -> None:
    transcript = sample()
    renderers: dict[str, Callable[[Transcript], Rendered]] = {
        "json": render_json,
        "text": render_text,
        "verbose_json": render_verbose_json,
        "srt": render_srt,
        "vtt": render_vtt,
    }
    assert set(renderers) == set(RESPONSE_FORMATS)
    for fmt, renderer in renderers.items():
        assert render(transcript, fmt) == renderer(transcript)


def test_unknown_format_and_granularity_are_typed_errors() -> None:
    with pytest.raises(FormatError) as format_error:
        render(sample(), "diarized_json")
    assert format_error.value.param == "response_format"
    assert "diarized_json" in format_error.value.message
    with pytest.raises(FormatError) as granularity_error:
        render(sample(), "verbose_json", ["sentence"])
    assert granularity_error.value.param == "timestamp_granularities[]"
    assert set(GRANULARITIES) == {"segment", "word"}


def test_non_finite_duration_is_a_value_error_not_invalid_json() -> None:
    for fmt in ("json", "verbose_json"):
        with pytest.raises(ValueError):
            render(Transcript(duration=float("nan")), fmt)
    with pytest.raises(ValueError):
        milliseconds(float("inf"))


# --- the official SDK parses every body ------------------------------------------------------


def sdk_client(rendered: Rendered, *, strict: bool) -> openai.OpenAI:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200,
            content=rendered.body.encode("utf-8"),
            headers={"content-type": rendered.media_type},
        )

    return openai.OpenAI(
        api_key="test",
        base_url="http://testserver/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
        max_retries=0,
        _strict_response_validation=strict,
    )


def transcribe_via_sdk(rendered: Rendered, fmt: str, **extra: Any) -> Any:
    client = sdk_client(rendered, strict=True)
    return client.audio.transcriptions.create(  # type: ignore[call-overload]
        file=("a.wav", b"RIFF", "audio/wav"),
        model="whisper-1",
        response_format=fmt,
        **extra,
    )


def test_official_sdk_parses_every_format_with_strict_validation() -> None:
    transcript = sample()
    parsed = transcribe_via_sdk(render(transcript, "json"), "json")
    assert isinstance(parsed, Transcription)
    assert parsed.text == transcript.text
    verbose = transcribe_via_sdk(
        render(transcript, "verbose_json", ["word", "segment"]),
        "verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert isinstance(verbose, TranscriptionVerbose)
    assert verbose.duration == 8.47 and verbose.language == "russian"
    assert verbose.segments is not None and len(verbose.segments) == 3
    assert verbose.words is not None and verbose.words[0].word == "Привет,"
    for fmt in ("text", "srt", "vtt"):
        rendered = render(transcript, fmt)
        assert transcribe_via_sdk(rendered, fmt) == rendered.body
    assert transcribe_via_sdk(render(transcript, "text"), "text") == parsed.text + "\n"
