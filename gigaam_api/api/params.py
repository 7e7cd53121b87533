"""Form fields of ``POST /audio/transcriptions`` → validated parameters (pure functions).

Lenient where real clients differ (``docs/api.md``, "Request fields", read through
``api/fields.py``): bare and ``[]`` array names, ``True``/``true``/``1`` booleans,
``0``/``0.0``/``1e-05`` numbers, empty strings meaning "not given", unknown fields ignored.
Strict where a wrong value would silently change the output: an unknown ``model`` or
``response_format`` is a 400 naming the parameter. The strict option groups have modules of
their own: speaker diarization (``api/speaker_params.py``) and keywords
(``api/keyword_params.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from gigaam_api import formats
from gigaam_api.api.errors import ApiError, bad_request
from gigaam_api.api.fields import (
    Fields,
    invalid,
    last,
    parse_bool,
    parse_float,
    parse_int,
    values,
)
from gigaam_api.api.keyword_params import parse_keywords
from gigaam_api.api.speaker_params import DiarizationParams, parse_diarization
from gigaam_api.config import DIARIZE_MODEL_ALIAS, Settings
from gigaam_api.formats import RESPONSE_FORMATS, STREAMABLE_FORMATS, ResponseFormat
from gigaam_api.keyword_list import KeywordSpec
from gigaam_api.service.languages import normalise_language as normalise_language

CHUNKING_PARAM: Final = "chunking_strategy"
_CHUNKING_KEYS: Final = ("type", "threshold", "prefix_padding_ms", "silence_duration_ms")


@dataclass(frozen=True, slots=True)
class ChunkingStrategy:
    """OpenAI's ``chunking_strategy``: validated and kept, not used (our VAD always chunks)."""

    type: Literal["auto", "server_vad"]
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class TranscriptionParams:
    """What a transcription request asked for, after validation."""

    response_format: ResponseFormat
    granularities: frozenset[str]  # "segment"/"word": what verbose_json carries
    stream: bool  # SSE (json/text deltas; diarized_json segments too)
    model: str  # as requested ("" when not given); the loaded model is always used
    language: str | None  # normalised primary subtag, None when not given/auto
    diarization: DiarizationParams | None = None  # None: no speakers
    chunking_strategy: ChunkingStrategy | None = None  # None: not given
    #: Phrases to favour, with their boosts (None: the server's default); () when none.
    keywords: tuple[KeywordSpec, ...] = ()

    @property
    def wants_sse(self) -> bool:
        return self.stream and self.response_format in STREAMABLE_FORMATS


def check_model(requested: str, settings: Settings) -> None:
    """Accept ALLOWED_MODELS, MODEL_ALIASES, the diarize alias and empty; anything else is
    ``model_not_found``."""
    if requested in ("", DIARIZE_MODEL_ALIAS) or requested in settings.allowed_models:
        return
    if requested in settings.model_aliases:
        return
    known = ", ".join(
        dict.fromkeys([*settings.allowed_models, *settings.model_aliases, DIARIZE_MODEL_ALIAS])
    )
    raise bad_request(
        f"The model '{requested}' does not exist or is not served here (available: {known})",
        param="model",
        code="model_not_found",
    )


def check_language(language: str | None, supported: Sequence[str] | None, model: str) -> None:
    """A 400 naming ``language`` unless the model serves it (``None``: not given, any model).

    ``supported`` is the model's languages (``ru`` for the Russian models, ``ru en kk ky uz``
    for the multilingual ones); ``None`` when not known yet (a job submitted while a local
    checkpoint loads: its run then fails with the same message).
    """
    if language is None or supported is None or language in supported:
        return
    raise bad_request(
        f"Unsupported value for 'language': {language!r}; the model {model} "
        f"transcribes {', '.join(supported) or 'no language'} (ISO 639-1 codes)",
        param="language",
        code="unsupported_value",
    )


def parse_response_format(value: str | None, settings: Settings) -> ResponseFormat:
    if value is None or value == "":
        return settings.default_response_format
    lowered = value.lower()
    for fmt in RESPONSE_FORMATS:
        if fmt == lowered:
            return fmt
    raise bad_request(
        f"Invalid value for 'response_format': {value!r}; "
        f"supported values are {', '.join(RESPONSE_FORMATS)}",
        param="response_format",
        code="unsupported_value",
    )


def parse_granularities(fields: Fields) -> frozenset[str]:
    """``timestamp_granularities[]`` (or the bare name, or ``a,b``); default ``{"segment"}``."""
    asked = [item for raw in values(fields, "timestamp_granularities") for item in raw.split(",")]
    try:
        return formats.parse_granularities(asked)
    except formats.FormatError as exc:
        raise bad_request(exc.message, param=exc.param, code="unsupported_value") from None


def parse_transcription_params(fields: Fields, settings: Settings) -> TranscriptionParams:
    """Validate the non-file fields; raises ``ApiError`` (400) naming the bad parameter."""
    model = last(fields, "model") or ""
    check_model(model, settings)
    response_format = parse_response_format(last(fields, "response_format"), settings)
    granularities = parse_granularities(fields)
    stream = parse_bool(last(fields, "stream"), "stream")
    parse_float(last(fields, "temperature"), "temperature")  # validated, then ignored
    return TranscriptionParams(
        response_format=response_format,
        granularities=granularities,
        stream=stream,
        model=model,
        language=normalise_language(last(fields, "language")),
        diarization=parse_diarization(fields, model=model, response_format=response_format),
        chunking_strategy=parse_chunking_strategy(fields),
        keywords=parse_keywords(fields, settings),
    )


# -- chunking_strategy --------------------------------------------------------------------------


def parse_chunking_strategy(fields: Fields) -> ChunkingStrategy | None:
    """``auto``, or ``server_vad`` in bracket form (``chunking_strategy[type]=server_vad``,
    as the SDKs send an object) or as a JSON object (hand-written clients); validated, then
    only kept: our VAD always chunks, on its own settings.
    """
    prefix = f"{CHUNKING_PARAM}["
    brackets = {
        name[len(prefix) : -1]: values[-1] if values else ""
        for name, values in fields.items()
        if name.startswith(prefix) and name.endswith("]")
    }
    bare = [v.strip() for v in fields.get(CHUNKING_PARAM, ())]
    bare_value = bare[-1] if bare else ""
    if bare_value and any(v.strip() for v in brackets.values()):
        raise invalid(
            "chunking_strategy is given twice (as a value and as an object)", CHUNKING_PARAM
        )
    if bare_value:
        if bare_value.lower() == "auto":
            return ChunkingStrategy("auto")
        if bare_value.startswith("{"):
            return _server_vad(_json_object(bare_value))
        raise invalid(
            f"Invalid chunking_strategy {bare_value[:40]!r}: expected 'auto' or an object "
            "with type 'server_vad'",
            CHUNKING_PARAM,
        )
    if not any(v.strip() for v in brackets.values()):
        return None
    return _server_vad(brackets)


def _json_object(text: str) -> dict[str, str]:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: "{"a":[[[[…" nested too deep
        parsed = None
    if not isinstance(parsed, dict):
        raise invalid("chunking_strategy is not a valid JSON object", CHUNKING_PARAM)
    return {
        str(key): ""
        if value is None
        else json.dumps(value)
        if not isinstance(value, str)
        else value
        for key, value in parsed.items()
    }


def _server_vad(options: Mapping[str, str]) -> ChunkingStrategy:
    unknown = sorted(k for k in options if k not in _CHUNKING_KEYS)
    if unknown:
        raise invalid(
            f"Unknown chunking_strategy field {unknown[0][:40]!r}; expected "
            f"{', '.join(_CHUNKING_KEYS)}",
            CHUNKING_PARAM,
        )
    kind = options.get("type", "").strip().lower()
    if kind != "server_vad":
        raise invalid("chunking_strategy[type] must be 'server_vad'", CHUNKING_PARAM)
    threshold = parse_float(options.get("threshold"), CHUNKING_PARAM)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise invalid("chunking_strategy[threshold] must be from 0 to 1", CHUNKING_PARAM)
    padding, silence = (
        _milliseconds(options.get(key), key) for key in ("prefix_padding_ms", "silence_duration_ms")
    )
    return ChunkingStrategy("server_vad", threshold, padding, silence)


def _milliseconds(value: str | None, key: str) -> int | None:
    if value is None or value.strip() == "":
        return None
    what = f"a whole, non-negative number of milliseconds for chunking_strategy[{key}]"
    number = parse_int(value, CHUNKING_PARAM, what)
    if number < 0:
        raise invalid(f"chunking_strategy[{key}] must not be negative", CHUNKING_PARAM)
    return number


def translation_unsupported() -> ApiError:
    return bad_request(
        "Translation is not supported: GigaAM recognises Russian speech only. "
        "Use POST /v1/audio/transcriptions to get a Russian transcript.",
        code="unsupported_endpoint",
    )
