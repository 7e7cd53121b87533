"""The six response formats, byte for byte as ``docs/api.md`` describes them."""

from __future__ import annotations

import dataclasses
import json
import re
import zlib
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
from openai.types.audio import Transcription, TranscriptionDiarized, TranscriptionVerbose

from gigaam_api.formats import (
    GRANULARITIES,
    JSON_MEDIA_TYPE,
    RESPONSE_FORMATS,
    STREAMABLE_FORMATS,
    TEXT_MEDIA_TYPE,
    UNKNOWN_SPEAKER,
    FormatError,
    Rendered,
    compression_ratio,
    diarized_segment,
    diarized_segment_id,
    diarized_text,
    is_diarized,
    milliseconds,
    render,
    render_diarized_json,
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
        "diarized_json": render_diarized_json,
    }
    assert set(renderers) == set(RESPONSE_FORMATS)
    for fmt, renderer in renderers.items():
        assert render(transcript, fmt) == renderer(transcript)


def test_unknown_format_and_granularity_are_typed_errors() -> None:
    with pytest.raises(FormatError) as format_error:
        render(sample(), "diarized")
    assert format_error.value.param == "response_format"
    assert "'diarized'" in format_error.value.message
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
        response_format=fmt,
        **{"model": "whisper-1", **extra},
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


# --- speakers (diarization) ---------------------------------------------------------------------


def said(speaker: str | None, text: str, start: float, end: float) -> list[Word]:
    tokens = text.split()
    step = (end - start) / len(tokens)
    return [
        Word(token, start + i * step, start + (i + 1) * step, speaker)
        for i, token in enumerate(tokens)
    ]


def dialogue() -> Transcript:
    """A, A, B, (blank), A: two consecutive segments of A make one turn."""
    turns = [
        ("A", "Добрый день.", 0.0, 2.5),
        ("A", "Как вы?", 2.5, 4.0),
        ("B", "Отлично, спасибо.", 4.2, 6.0),
        ("B", "  ", 6.0, 6.5),
        ("A", "А вы?", 6.5, 8.0),
    ]
    segments = [
        Segment(
            i, start, end, text, tuple(said(who, text, start, end)) if text.strip() else (), who
        )
        for i, (who, text, start, end) in enumerate(turns)
    ]
    return Transcript(segments=segments, duration=8.0)


def without_speakers(transcript: Transcript) -> Transcript:
    return Transcript(
        segments=[
            dataclasses.replace(
                s,
                speaker=None,
                words=tuple(dataclasses.replace(w, speaker=None) for w in s.words),
            )
            for s in transcript.segments
        ],
        duration=transcript.duration,
    )


DIALOGUE_TEXT = "A: Добрый день. Как вы?\nB: Отлично, спасибо.\nA: А вы?"


def test_diarized_json_is_openais_shape_byte_for_byte() -> None:
    rendered = render(dialogue(), "diarized_json")
    assert rendered.media_type == JSON_MEDIA_TYPE
    assert rendered.body == (
        '{"task":"transcribe","duration":8.0,"text":"A: Добрый день. Как вы?\\nB: Отлично, '
        'спасибо.\\nA: А вы?","segments":['
        '{"type":"transcript.text.segment","id":"seg_001","start":0.0,"end":2.5,'
        '"text":"Добрый день.","speaker":"A"},'
        '{"type":"transcript.text.segment","id":"seg_002","start":2.5,"end":4.0,'
        '"text":"Как вы?","speaker":"A"},'
        '{"type":"transcript.text.segment","id":"seg_003","start":4.2,"end":6.0,'
        '"text":"Отлично, спасибо.","speaker":"B"},'
        '{"type":"transcript.text.segment","id":"seg_004","start":6.5,"end":8.0,'
        '"text":"А вы?","speaker":"A"}],'
        '"usage":{"type":"duration","seconds":8}}'
    )
    body = json.loads(rendered.body)
    assert body["usage"] == json.loads(render_json(dialogue()).body)["usage"]
    assert body["text"] == DIALOGUE_TEXT == diarized_text(dialogue())


def test_official_sdk_parses_diarized_json_into_its_own_type() -> None:
    parsed = transcribe_via_sdk(
        render(dialogue(), "diarized_json"), "diarized_json", model="gpt-4o-transcribe-diarize"
    )
    assert isinstance(parsed, TranscriptionDiarized)
    assert parsed.text == DIALOGUE_TEXT and parsed.duration == 8.0
    assert [(s.id, s.speaker, s.text) for s in parsed.segments] == [
        ("seg_001", "A", "Добрый день."),
        ("seg_002", "A", "Как вы?"),
        ("seg_003", "B", "Отлично, спасибо."),
        ("seg_004", "A", "А вы?"),
    ]
    assert parsed.usage is not None and parsed.usage.type == "duration"
    empty_body = transcribe_via_sdk(
        render(empty(), "diarized_json"), "diarized_json", model="gpt-4o-transcribe-diarize"
    )
    assert isinstance(empty_body, TranscriptionDiarized)
    assert empty_body.text == "" and empty_body.segments == []


def test_segment_ids_are_seg_and_the_number_from_one() -> None:
    assert [diarized_segment_id(i) for i in (0, 1, 9, 998, 999)] == [
        "seg_001",
        "seg_002",
        "seg_010",
        "seg_999",
        "seg_1000",
    ]
    with pytest.raises(ValueError):
        diarized_segment_id(-1)
    segment = dialogue().segments[2]
    assert diarized_segment(2, segment) == {
        "type": "transcript.text.segment",
        "id": "seg_003",
        "start": 4.2,
        "end": 6.0,
        "text": "Отлично, спасибо.",
        "speaker": "B",
    }


def test_diarized_text_srt_and_vtt_show_the_speaker() -> None:
    transcript = dialogue()
    assert render_text(transcript).body == DIALOGUE_TEXT + "\n"
    assert render_srt(transcript).body == (
        "1\n00:00:00,000 --> 00:00:02,500\nA: Добрый день.\n\n"
        "2\n00:00:02,500 --> 00:00:04,000\nA: Как вы?\n\n"
        "3\n00:00:04,200 --> 00:00:06,000\nB: Отлично, спасибо.\n\n"
        "4\n00:00:06,500 --> 00:00:08,000\nA: А вы?\n\n"
    )
    assert render_vtt(transcript).body == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.500\n<v A>Добрый день.\n\n"
        "00:00:02.500 --> 00:00:04.000\n<v A>Как вы?\n\n"
        "00:00:04.200 --> 00:00:06.000\n<v B>Отлично, спасибо.\n\n"
        "00:00:06.500 --> 00:00:08.000\n<v A>А вы?\n\n"
    )


def test_json_text_stays_the_plain_transcript_when_diarized() -> None:
    transcript = dialogue()
    assert render_json(transcript) == render_json(without_speakers(transcript))
    parsed = json.loads(render_json(transcript).body)
    assert parsed["text"] == "Добрый день. Как вы? Отлично, спасибо. А вы?"


def test_verbose_json_segments_and_words_carry_the_speaker() -> None:
    transcript = dialogue()
    rendered = render_verbose_json(transcript, ["word", "segment"])
    body = json.loads(rendered.body)
    assert body["text"] == transcript_text(transcript)  # plain, no "A: "
    assert [s["speaker"] for s in body["segments"]] == ["A", "A", "B", "A"]
    assert [(w["word"], w["speaker"]) for w in body["words"]][:3] == [
        ("Добрый", "A"),
        ("день.", "A"),
        ("Как", "A"),
    ]
    assert {w["speaker"] for w in body["words"]} == {"A", "B"}
    # Apart from "speaker", every segment and word is exactly the undiarized one.
    plain = json.loads(render_verbose_json(without_speakers(transcript), ["word", "segment"]).body)
    for key in ("segments", "words"):
        assert [{k: v for k, v in item.items() if k != "speaker"} for item in body[key]] == plain[
            key
        ]
    verbose = transcribe_via_sdk(
        rendered, "verbose_json", timestamp_granularities=["word", "segment"]
    )
    assert isinstance(verbose, TranscriptionVerbose)
    assert verbose.segments is not None and len(verbose.segments) == 4


def test_without_speakers_no_format_shows_any() -> None:
    transcript = sample()
    assert not is_diarized(transcript) and is_diarized(dialogue())
    for fmt in ("json", "text", "verbose_json", "srt", "vtt"):
        body = render(transcript, fmt, ["word", "segment"]).body
        assert "speaker" not in body and "<v " not in body and "A: " not in body
    # The same dialogue stripped of its speakers renders as before diarization existed.
    plain = without_speakers(dialogue())
    assert render_text(plain).body == "Добрый день. Как вы? Отлично, спасибо. А вы?\n"
    assert "A:" not in render_srt(plain).body and "<v" not in render_vtt(plain).body


def test_names_rename_the_speakers_in_every_format() -> None:
    transcript = dialogue()
    names = {"A": "Анна", "B": "Борис Петров"}
    assert render(transcript, "text", names=names).body == (
        "Анна: Добрый день. Как вы?\nБорис Петров: Отлично, спасибо.\nАнна: А вы?\n"
    )
    assert "\nАнна: Как вы?\n" in render(transcript, "srt", names=names).body
    assert "\n<v Борис Петров>Отлично, спасибо.\n" in render(transcript, "vtt", names=names).body
    verbose = json.loads(render(transcript, "verbose_json", ["word", "segment"], names=names).body)
    assert [s["speaker"] for s in verbose["segments"]] == ["Анна", "Анна", "Борис Петров", "Анна"]
    assert {w["speaker"] for w in verbose["words"]} == {"Анна", "Борис Петров"}
    diarized = json.loads(render(transcript, "diarized_json", names=names).body)
    assert [s["speaker"] for s in diarized["segments"]] == ["Анна", "Анна", "Борис Петров", "Анна"]
    assert diarized["text"].splitlines()[1] == "Борис Петров: Отлично, спасибо."
    assert render(transcript, "json", names=names) == render_json(transcript)
    # Labels not in the mapping keep their label; a partial mapping is fine.
    assert render(transcript, "text", names={"B": "Борис"}).body.startswith("A: Добрый")


def test_names_are_one_line_and_escaped_where_markup_needs_it() -> None:
    transcript = dialogue()
    names = {"A": "Ann\n & <Bob>", "B": "   "}  # a blank name falls back to the label
    assert render(transcript, "text", names=names).body.splitlines()[0] == (
        "Ann & <Bob>: Добрый день. Как вы?"
    )
    vtt = render(transcript, "vtt", names=names).body
    assert "\n<v Ann &amp; &lt;Bob&gt;>Добрый день.\n" in vtt
    assert "\n<v B>Отлично, спасибо.\n" in vtt
    # Two labels renamed to one person make a single turn.
    merged = render(transcript, "diarized_json", names={"A": "Иван", "B": "Иван"})
    assert json.loads(merged.body)["text"] == "Иван: Добрый день. Как вы? Отлично, спасибо. А вы?"


def test_missing_speaker_shows_as_unknown() -> None:
    body = json.loads(render(sample(), "diarized_json").body)
    assert {s["speaker"] for s in body["segments"]} == {UNKNOWN_SPEAKER}
    assert body["text"] == f"{UNKNOWN_SPEAKER}: {sample().text}"
    mixed = dialogue()
    mixed.segments[4] = dataclasses.replace(
        mixed.segments[4],
        speaker=None,
        words=tuple(dataclasses.replace(w, speaker=None) for w in mixed.segments[4].words),
    )
    assert render(mixed, "text").body.endswith(f"\n{UNKNOWN_SPEAKER}: А вы?\n")
    # Words alone may carry the speaker (a hand-made segment): the segment takes theirs.
    words_only = Transcript(
        segments=[Segment(0, 0.0, 1.0, "Да.", tuple(said("C", "Да.", 0.0, 1.0)))], duration=1.0
    )
    assert is_diarized(words_only)
    assert render(words_only, "srt").body == "1\n00:00:00,000 --> 00:00:01,000\nC: Да.\n\n"


def test_diarized_json_streams_and_has_a_file_extension() -> None:
    assert "diarized_json" in STREAMABLE_FORMATS
    assert render(empty(), "diarized_json").body == (
        '{"task":"transcribe","duration":3.0,"text":"","segments":[],'
        '"usage":{"type":"duration","seconds":3}}'
    )
