"""Form fields → transcription parameters, as real clients send them (``docs/api.md``)."""

from __future__ import annotations

import base64
import io
import math
import wave

import pytest

from gigaam_api.api.auth import check_api_key, supplied_key
from gigaam_api.api.errors import ApiError
from gigaam_api.api.fields import parse_bool, parse_float
from gigaam_api.api.params import (
    ChunkingStrategy,
    normalise_language,
    parse_transcription_params,
)
from gigaam_api.api.speaker_params import (
    MAX_REFERENCE_BYTES,
    MAX_REFERENCE_FIELD_CHARS,
    DiarizationParams,
    KnownSpeaker,
)
from gigaam_api.config import DIARIZE_MODEL_ALIAS, Settings, load_settings
from gigaam_api.speakers import SpeakerCount


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(_env_file=None, model="v3_ctc", models_dir="/nonexistent")


def test_defaults_for_a_bare_request(settings: Settings) -> None:
    params = parse_transcription_params({}, settings)
    assert params.response_format == "json"
    assert params.granularities == frozenset({"segment"})
    assert not params.stream and not params.wants_sse
    assert params.model == "" and params.language is None


def test_default_response_format_follows_settings() -> None:
    custom = load_settings(_env_file=None, default_response_format="text")
    assert parse_transcription_params({}, custom).response_format == "text"
    assert parse_transcription_params({"response_format": [""]}, custom).response_format == "text"


@pytest.mark.parametrize("model", ["", "v3_ctc", "v3_rnnt", "whisper-1", "gpt-4o-transcribe"])
def test_models_allowed_and_aliases_are_accepted(settings: Settings, model: str) -> None:
    params = parse_transcription_params({"model": [model]}, settings)
    assert params.model == model


@pytest.mark.parametrize("model", ["whisper-2", "v1_ssl", "V3_CTC"])
def test_unknown_model_is_400_model_not_found(settings: Settings, model: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_transcription_params({"model": [model]}, settings)
    assert info.value.status == 400
    assert info.value.param == "model" and info.value.code == "model_not_found"
    assert model in info.value.message


@pytest.mark.parametrize(
    "fmt", ["json", "text", "verbose_json", "srt", "vtt", "SRT", "diarized_json"]
)
def test_response_formats(settings: Settings, fmt: str) -> None:
    params = parse_transcription_params({"response_format": [fmt]}, settings)
    assert params.response_format == fmt.lower()


@pytest.mark.parametrize("fmt", ["xml", "diarized", "js on"])
def test_bad_response_format_names_the_param(settings: Settings, fmt: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_transcription_params({"response_format": [fmt]}, settings)
    assert info.value.status == 400 and info.value.param == "response_format"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"timestamp_granularities[]": ["word"]}, {"word"}),
        ({"timestamp_granularities[]": ["word", "segment"]}, {"word", "segment"}),
        ({"timestamp_granularities": ["word"]}, {"word"}),  # bare name, hand-written clients
        ({"timestamp_granularities": ["segment,word"]}, {"word", "segment"}),
        ({"timestamp_granularities[]": [""]}, {"segment"}),
    ],
)
def test_granularities(
    settings: Settings, fields: dict[str, list[str]], expected: set[str]
) -> None:
    assert parse_transcription_params(fields, settings).granularities == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), ("1", True), ("false", False), ("False", False), ("", False)],
)
def test_booleans(value: str, expected: bool) -> None:
    assert parse_bool(value, "stream") is expected


def test_bad_boolean_is_400() -> None:
    with pytest.raises(ApiError) as info:
        parse_bool("maybe", "stream")
    assert info.value.param == "stream"


@pytest.mark.parametrize(
    ("value", "expected"), [("0", 0.0), ("0.0", 0.0), ("0.2", 0.2), ("1e-05", 1e-5)]
)
def test_numbers_as_the_sdks_write_them(value: str, expected: float) -> None:
    assert parse_float(value, "temperature") == expected


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("timestamp_granularities[]", "char", "timestamp_granularities[]"),
        ("temperature", "hot", "temperature"),
        ("temperature", "nan", "temperature"),
        ("temperature", "inf", "temperature"),
        ("stream", "maybe", "stream"),
    ],
)
def test_a_bad_field_is_400_naming_it(
    settings: Settings, field: str, value: str, param: str
) -> None:
    with pytest.raises(ApiError) as info:
        parse_transcription_params({field: [value]}, settings)
    assert info.value.status == 400 and info.value.param == param


@pytest.mark.parametrize(
    ("value", "expected"),
    [("ru", "ru"), ("RU", "ru"), ("ru-RU", "ru"), ("en_US", "en"), ("", None), ("auto", None)],
)
def test_language_normalisation(value: str, expected: str | None) -> None:
    assert normalise_language(value) == expected


def test_stream_is_sse_only_for_json_text_and_diarized_json(settings: Settings) -> None:
    for fmt, sse in [
        ("json", True),
        ("text", True),
        ("diarized_json", True),
        ("verbose_json", False),
        ("srt", False),
        ("vtt", False),
    ]:
        params = parse_transcription_params(
            {"stream": ["true"], "response_format": [fmt]}, settings
        )
        assert params.stream and params.wants_sse is sse


def test_ignored_fields_do_not_matter(settings: Settings) -> None:
    noisy = {
        "prompt": [""],
        "language": ["en-US"],
        "chunking_strategy[type]": ["server_vad"],
        "chunking_strategy[threshold]": ["0.5"],
        "include[]": ["logprobs"],
        "vad_filter": ["true"],
        "foo[]": ["x"],
    }
    params = parse_transcription_params(noisy, settings)
    assert params.response_format == "json" and params.language == "en"


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"authorization": "Bearer s3cret"}, "s3cret"),
        ({"authorization": "bearer  s3cret "}, "s3cret"),
        ({"api-key": "s3cret"}, "s3cret"),
        ({"authorization": "Basic abc"}, None),
        ({}, None),
    ],
)
def test_supplied_key(headers: dict[str, str], key: str | None) -> None:
    assert supplied_key(headers) == key


def test_api_key_check() -> None:
    check_api_key({}, "")  # auth off: anything goes
    check_api_key({"authorization": "Bearer whatever"}, "")
    check_api_key({"authorization": "Bearer k"}, "k")
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Bearer k2"}):
        with pytest.raises(ApiError) as info:
            check_api_key(headers, "k")
        assert info.value.status == 401 and info.value.code == "invalid_api_key"
        assert "k" not in info.value.message.split()  # the key is never echoed


# --- speaker diarization --------------------------------------------------------------------


def wav_bytes(seconds: float = 2.0) -> bytes:
    """A real (silent) 16 kHz mono WAV file; what it sounds like is the decoder's business."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x00" * int(16000 * seconds))
    return buffer.getvalue()


def data_url(payload: bytes, media_type: str = "audio/wav") -> str:
    return f"data:{media_type};base64,{base64.b64encode(payload).decode('ascii')}"


def rejected(settings: Settings, fields: dict[str, list[str]]) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_transcription_params(fields, settings)
    assert info.value.status == 400
    assert info.value.body()["error"]["param"] == info.value.param
    return info.value


def test_no_diarization_unless_asked(settings: Settings) -> None:
    params = parse_transcription_params({"response_format": ["verbose_json"]}, settings)
    assert params.diarization is None and params.chunking_strategy is None


@pytest.mark.parametrize(
    "fields",
    [
        {"model": [DIARIZE_MODEL_ALIAS]},
        {"response_format": ["diarized_json"]},
        {"response_format": ["DIARIZED_JSON"], "diarize": ["true"]},
        {"diarize": ["true"], "response_format": ["srt"]},
        {"diarize": ["1"]},
        {"diarize": ["True"], "model": ["whisper-1"]},
    ],
)
def test_diarization_is_on_with_the_alias_the_format_or_the_extension(
    settings: Settings, fields: dict[str, list[str]]
) -> None:
    params = parse_transcription_params(fields, settings)
    assert params.diarization == DiarizationParams()
    assert params.diarization.count == SpeakerCount()


def test_the_diarize_alias_is_listed_by_default_and_accepted_regardless() -> None:
    assert DIARIZE_MODEL_ALIAS == "gpt-4o-transcribe-diarize"
    assert DIARIZE_MODEL_ALIAS in load_settings(_env_file=None).model_aliases
    narrow = load_settings(_env_file=None, model_aliases="whisper-1")
    params = parse_transcription_params({"model": [DIARIZE_MODEL_ALIAS]}, narrow)
    assert params.model == DIARIZE_MODEL_ALIAS and params.diarization is not None


def test_diarize_false_turns_the_alias_off_but_not_diarized_json(settings: Settings) -> None:
    fields = {"model": [DIARIZE_MODEL_ALIAS], "diarize": ["false"]}
    assert parse_transcription_params(fields, settings).diarization is None
    assert parse_transcription_params({"diarize": [""]}, settings).diarization is None
    error = rejected(settings, {"response_format": ["diarized_json"], "diarize": ["false"]})
    assert error.param == "response_format" and error.code == "unsupported_value"
    assert rejected(settings, {"diarize": ["maybe"]}).param == "diarize"


def test_diarized_json_streams_as_sse(settings: Settings) -> None:
    params = parse_transcription_params(
        {"response_format": ["diarized_json"], "stream": ["true"]}, settings
    )
    assert params.wants_sse and params.diarization is not None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"num_speakers": ["2"]}, (2, None, None)),
        ({"min_speakers": ["2"], "max_speakers": ["5"]}, (None, 2, 5)),
        ({"num_speakers": ["3"], "min_speakers": ["2"], "max_speakers": ["3"]}, (3, 2, 3)),
        ({"max_speakers": ["1"]}, (None, None, 1)),
        ({"num_speakers": ["32"]}, (32, None, None)),
        ({"num_speakers": ["2.0"], "min_speakers": [""]}, (2, None, None)),  # Python floats
        ({"num_speakers": ["7", "4"]}, (4, None, None)),  # the last of repeated fields
    ],
)
def test_speaker_counts(
    settings: Settings,
    fields: dict[str, list[str]],
    expected: tuple[int | None, int | None, int | None],
) -> None:
    params = parse_transcription_params({**fields, "diarize": ["true"]}, settings)
    assert params.diarization is not None
    d = params.diarization
    assert (d.num_speakers, d.min_speakers, d.max_speakers) == expected
    assert d.count == SpeakerCount(*expected)
    low, high = d.count.bounds()
    assert 1 <= low <= high


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"num_speakers": ["0"]}, "num_speakers"),
        ({"num_speakers": ["33"]}, "num_speakers"),
        ({"num_speakers": ["-1"]}, "num_speakers"),
        ({"num_speakers": ["2.5"]}, "num_speakers"),
        ({"num_speakers": ["two"]}, "num_speakers"),
        ({"num_speakers": ["nan"]}, "num_speakers"),
        ({"min_speakers": ["1e9"]}, "min_speakers"),
        ({"max_speakers": ["9" * 5000]}, "max_speakers"),
        ({"min_speakers": ["4"], "max_speakers": ["2"]}, "min_speakers"),
        ({"num_speakers": ["5"], "max_speakers": ["3"]}, "num_speakers"),
        ({"num_speakers": ["1"], "min_speakers": ["2"]}, "num_speakers"),
    ],
)
def test_impossible_speaker_counts_name_the_field(
    settings: Settings, fields: dict[str, list[str]], param: str
) -> None:
    error = rejected(settings, {**fields, "model": [DIARIZE_MODEL_ALIAS]})
    assert error.param == param and error.code == "invalid_value"
    assert len(error.message) < 200  # a huge value is not echoed back


def test_known_speakers_are_paired_in_order_and_decoded(settings: Settings) -> None:
    anna, boris = wav_bytes(2.0), wav_bytes(3.0)
    params = parse_transcription_params(
        {
            "model": [DIARIZE_MODEL_ALIAS],
            "known_speaker_names[]": ["  Анна  Иванова ", "Boris"],
            "known_speaker_references[]": [
                data_url(anna),
                data_url(boris, "audio/webm;codecs=opus"),
            ],
        },
        settings,
    )
    assert params.diarization is not None
    assert params.diarization.known_speakers == (
        KnownSpeaker("Анна Иванова", "audio/wav", anna),
        KnownSpeaker("Boris", "audio/webm", boris),
    )
    assert "RIFF" not in repr(params.diarization)  # the clips stay out of logs


@pytest.mark.parametrize(
    "media_type",
    [
        "audio/wav",
        "audio/x-wav",
        "audio/mpeg",
        "AUDIO/OGG",
        "video/mp4",
        "application/octet-stream",
    ],
)
def test_reference_media_types_accepted(settings: Settings, media_type: str) -> None:
    params = parse_transcription_params(
        {
            "diarize": ["true"],
            "known_speaker_names": ["Ann"],  # the bare names work as well
            "known_speaker_references": [data_url(b"clip", media_type)],
        },
        settings,
    )
    assert params.diarization is not None
    (speaker,) = params.diarization.known_speakers
    assert speaker.audio == b"clip" and speaker.media_type == media_type.lower()


def test_uppercase_scheme_and_marker_are_fine(settings: Settings) -> None:
    fields = {
        "diarize": ["true"],
        "known_speaker_names[]": ["Ann"],
        "known_speaker_references[]": ["DATA:audio/wav;BASE64,Y2xpcA=="],
    }
    params = parse_transcription_params(fields, settings)
    assert params.diarization is not None
    assert params.diarization.known_speakers[0].audio == b"clip"


def test_a_reference_at_the_size_limit_is_kept(settings: Settings) -> None:
    payload = bytes(range(256)) * (MAX_REFERENCE_BYTES // 256)
    reference = data_url(payload)
    assert len(reference) <= MAX_REFERENCE_FIELD_CHARS
    params = parse_transcription_params(
        {
            "diarize": ["true"],
            "known_speaker_names[]": ["Ann"],
            "known_speaker_references[]": [reference],
        },
        settings,
    )
    assert params.diarization is not None
    assert params.diarization.known_speakers[0].audio == payload


CLIP = data_url(b"RIFF....WAVEfmt ")


@pytest.mark.parametrize(
    ("names", "references", "param", "code"),
    [
        (["Ann"], [], "known_speaker_references[]", "missing_required_parameter"),
        ([], [CLIP], "known_speaker_names[]", "missing_required_parameter"),
        (["Ann", "Bob"], [CLIP], "known_speaker_references[]", "invalid_value"),
        (["Ann"], [CLIP, CLIP], "known_speaker_references[]", "invalid_value"),
        ([f"n{i}" for i in range(5)], [CLIP] * 5, "known_speaker_names[]", "invalid_value"),
        (["Ann"] * 200, [CLIP] * 200, "known_speaker_names[]", "invalid_value"),
        (["Ann", "ann"], [CLIP, CLIP], "known_speaker_names[]", "invalid_value"),
        (["Ann", " "], [CLIP, CLIP], "known_speaker_names[]", "invalid_value"),
        (["x" * 65], [CLIP], "known_speaker_names[]", "invalid_value"),
        (["Я" * 65_000], [CLIP], "known_speaker_names[]", "invalid_value"),
        (["Ann\nBob"], [CLIP], "known_speaker_names[]", "invalid_value"),
        (["Ann\tBob"], [CLIP], "known_speaker_names[]", "invalid_value"),
        (["Ann\u2028Bob"], [CLIP], "known_speaker_names[]", "invalid_value"),
    ],
)
def test_bad_known_speakers_name_the_field(
    settings: Settings, names: list[str], references: list[str], param: str, code: str
) -> None:
    fields = {"model": [DIARIZE_MODEL_ALIAS], "known_speaker_names[]": names}
    if references:
        fields["known_speaker_references[]"] = references
    error = rejected(settings, fields)
    assert (error.param, error.code) == (param, code)
    assert len(error.message) < 300


def test_non_ascii_names_of_exactly_the_limit_are_fine(settings: Settings) -> None:
    name = "Ё" * 64
    decomposed = "Е\u0308"  # the same letter as two code points: one character once composed
    params = parse_transcription_params(
        {
            "diarize": ["true"],
            "known_speaker_names[]": [name, decomposed],
            "known_speaker_references[]": [CLIP, CLIP],
        },
        settings,
    )
    assert params.diarization is not None
    assert [s.name for s in params.diarization.known_speakers] == [name, "Ё"]


B64 = base64.b64encode(b"some audio bytes!").decode("ascii")


@pytest.mark.parametrize(
    "reference",
    [
        "https://example.com/a.wav",
        B64,
        f"data:audio/wav,{B64}",  # no base64 marker
        f"data:audio/wav;charset=utf-8,{B64}",
        f"data:;base64,{B64}",
        f"data:text/plain;base64,{B64}",
        f"data:image/png;base64,{B64}",
        f"data:audio;base64,{B64}",
        f'data:audio/webm;codecs="opus";base64,{B64}',
        f"data:audio/wav;base64,{B64[:8]} {B64[8:]}",
        f"data:audio/wav;base64,{B64[:8]}\n{B64[8:]}",
        f"data:audio/wav;base64,{B64[:8]}\r\n{B64[8:]}",
        f"data:audio/wav;base64,{B64.rstrip('=')}",  # padding missing
        f"data:audio/wav;base64,{B64}{B64}",  # data after the padding
        "data:audio/wav;base64,-_-_",  # URL-safe alphabet
        "data:audio/wav;base64,%2B%2F==",  # percent-encoded
        "data:audio/wav;base64,аудио",  # non-ASCII
        "data:audio/wav;base64,",
        "data:audio/wav;base64",
        "data:" + "a" * 300 + ";base64," + B64,
    ],
)
def test_malformed_data_urls_are_400_naming_the_references(
    settings: Settings, reference: str
) -> None:
    error = rejected(
        settings,
        {
            "response_format": ["diarized_json"],
            "known_speaker_names[]": ["Ann"],
            "known_speaker_references[]": [reference],
        },
    )
    assert error.param == "known_speaker_references[]" and error.code == "invalid_value"
    assert "known_speaker_references[0]" in error.message


def test_an_oversized_reference_is_400_without_echoing_it(settings: Settings) -> None:
    too_big = data_url(b"\x01" * (MAX_REFERENCE_BYTES + 1))
    error = rejected(
        settings,
        {
            "diarize": ["true"],
            "known_speaker_names[]": ["Ann", "Bob"],
            "known_speaker_references[]": [CLIP, too_big],
        },
    )
    assert error.param == "known_speaker_references[]"
    assert "known_speaker_references[1]" in error.message and "too large" in error.message
    assert len(error.message) < 200
    huge = "data:audio/wav;base64," + "A" * (MAX_REFERENCE_FIELD_CHARS + 4)
    error = rejected(
        settings,
        {
            "diarize": ["true"],
            "known_speaker_names[]": ["Ann"],
            "known_speaker_references[]": [huge],
        },
    )
    assert "too large" in error.message
    assert math.ceil(MAX_REFERENCE_BYTES / 3) * 4 < MAX_REFERENCE_FIELD_CHARS


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"num_speakers": ["2"]}, "num_speakers"),
        ({"min_speakers": ["2"], "response_format": ["verbose_json"]}, "min_speakers"),
        ({"max_speakers": ["3"], "model": ["whisper-1"]}, "max_speakers"),
        ({"known_speaker_names[]": ["Ann"]}, "known_speaker_names[]"),
        ({"known_speaker_references[]": [CLIP]}, "known_speaker_references[]"),
        (
            {"num_speakers": ["2"], "model": [DIARIZE_MODEL_ALIAS], "diarize": ["no"]},
            "num_speakers",
        ),
    ],
)
def test_speaker_options_without_diarization_are_400(
    settings: Settings, fields: dict[str, list[str]], param: str
) -> None:
    error = rejected(settings, fields)
    assert error.param == param and DIARIZE_MODEL_ALIAS in error.message


def test_empty_speaker_fields_mean_not_given(settings: Settings) -> None:
    fields = {
        "num_speakers": [""],
        "known_speaker_names[]": [""],
        "known_speaker_references[]": [" "],
    }
    assert parse_transcription_params(fields, settings).diarization is None
    on = parse_transcription_params({**fields, "diarize": ["true"]}, settings)
    assert on.diarization == DiarizationParams()


# --- chunking_strategy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"chunking_strategy": ["auto"]}, ChunkingStrategy("auto")),
        ({"chunking_strategy": [" AUTO "]}, ChunkingStrategy("auto")),
        ({"chunking_strategy[type]": ["server_vad"]}, ChunkingStrategy("server_vad")),
        (
            {
                "chunking_strategy[type]": ["server_vad"],
                "chunking_strategy[threshold]": ["0.5"],
                "chunking_strategy[prefix_padding_ms]": ["300"],
                "chunking_strategy[silence_duration_ms]": ["200.0"],
            },
            ChunkingStrategy("server_vad", 0.5, 300, 200),
        ),
        (
            {
                "chunking_strategy": [
                    '{"type": "server_vad", "threshold": 1, "prefix_padding_ms": 0}'
                ]
            },
            ChunkingStrategy("server_vad", 1.0, 0, None),
        ),
        ({"chunking_strategy": [""]}, None),
        ({"chunking_strategy[threshold]": [""]}, None),
    ],
)
def test_chunking_strategy_is_validated_and_kept(
    settings: Settings, fields: dict[str, list[str]], expected: ChunkingStrategy | None
) -> None:
    assert parse_transcription_params(fields, settings).chunking_strategy == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"chunking_strategy": ["server_vad"]},
        {"chunking_strategy": ["manual"]},
        {"chunking_strategy": ["auto"], "chunking_strategy[type]": ["server_vad"]},
        {"chunking_strategy[type]": ["semantic_vad"]},
        {"chunking_strategy[threshold]": ["0.5"]},  # no type
        {"chunking_strategy[type]": ["server_vad"], "chunking_strategy[threshold]": ["1.5"]},
        {"chunking_strategy[type]": ["server_vad"], "chunking_strategy[threshold]": ["-0.1"]},
        {"chunking_strategy[type]": ["server_vad"], "chunking_strategy[threshold]": ["nan"]},
        {"chunking_strategy[type]": ["server_vad"], "chunking_strategy[prefix_padding_ms]": ["-1"]},
        {
            "chunking_strategy[type]": ["server_vad"],
            "chunking_strategy[prefix_padding_ms]": ["1.5"],
        },
        {
            "chunking_strategy[type]": ["server_vad"],
            "chunking_strategy[silence_duration_ms]": ["x"],
        },
        {
            "chunking_strategy[type]": ["server_vad"],
            "chunking_strategy[silence_duration_ms]": ["9" * 5000],
        },
        {"chunking_strategy[type]": ["server_vad"], "chunking_strategy[foo]": ["1"]},
        {"chunking_strategy[type][x]": ["server_vad"]},
        {"chunking_strategy": ['{"type": "server_vad", "threshold": true}']},
        {"chunking_strategy": ['{"type": "server_vad"']},
        {"chunking_strategy": ["{" + '"a":' + "[" * 100_000 + "]" * 100_000 + "}"]},
        {"chunking_strategy": ['{"type": {"nested": 1}}']},
    ],
)
def test_malformed_chunking_strategy_is_400(
    settings: Settings, fields: dict[str, list[str]]
) -> None:
    error = rejected(settings, fields)
    assert error.param == "chunking_strategy" and error.code == "invalid_value"
    assert len(error.message) < 200
