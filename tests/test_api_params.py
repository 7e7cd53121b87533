"""Form fields → transcription parameters, as real clients send them (``docs/api.md``)."""

from __future__ import annotations

import pytest

from gigaam_api.api.auth import check_api_key, supplied_key
from gigaam_api.api.errors import ApiError
from gigaam_api.api.params import (
    normalise_language,
    parse_bool,
    parse_float,
    parse_transcription_params,
)
from gigaam_api.config import Settings, load_settings


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


@pytest.mark.parametrize("fmt", ["json", "text", "verbose_json", "srt", "vtt", "SRT"])
def test_response_formats(settings: Settings, fmt: str) -> None:
    params = parse_transcription_params({"response_format": [fmt]}, settings)
    assert params.response_format == fmt.lower()


@pytest.mark.parametrize("fmt", ["xml", "diarized_json", "js on"])
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


def test_stream_is_sse_only_for_json_and_text(settings: Settings) -> None:
    for fmt, sse in [("json", True), ("text", True), ("verbose_json", False), ("srt", False)]:
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
