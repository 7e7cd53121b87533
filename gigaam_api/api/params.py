"""Form fields of ``POST /audio/transcriptions`` → validated parameters (pure functions).

Lenient where real clients differ (``docs/api.md``, "Request fields"): bare and
``[]`` array names, ``True``/``true``/``1`` booleans, ``0``/``0.0``/``1e-05`` numbers, empty
strings meaning "not given", unknown fields ignored. Strict where a wrong value would silently
change the output: an unknown ``model`` or ``response_format`` is a 400 naming the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gigaam_api import formats
from gigaam_api.api.errors import ApiError, bad_request
from gigaam_api.config import Settings
from gigaam_api.formats import RESPONSE_FORMATS, STREAMABLE_FORMATS, ResponseFormat

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class TranscriptionParams:
    """What a transcription request asked for, after validation."""

    response_format: ResponseFormat
    granularities: frozenset[str]  # "segment"/"word": what verbose_json carries
    stream: bool  # SSE (only for json/text)
    model: str  # as requested ("" when not given); the loaded model is always used
    language: str | None  # normalised primary subtag, None when not given/auto

    @property
    def wants_sse(self) -> bool:
        return self.stream and self.response_format in STREAMABLE_FORMATS


def _values(fields: Mapping[str, Sequence[str]], name: str) -> list[str]:
    return [*fields.get(name, ()), *fields.get(f"{name}[]", ())]


def _last(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = _values(fields, name)
    return values[-1].strip() if values else None


def parse_bool(value: str | None, param: str) -> bool:
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise bad_request(
        f"Invalid value for '{param}': {value!r} (expected true or false)",
        param=param,
        code="invalid_value",
    )


def parse_float(value: str | None, param: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise bad_request(
            f"Invalid value for '{param}': {value!r} (expected a number)",
            param=param,
            code="invalid_value",
        )
    return number


def check_model(requested: str, settings: Settings) -> None:
    """Accept ALLOWED_MODELS, MODEL_ALIASES and empty; anything else is ``model_not_found``."""
    if requested == "" or requested in settings.allowed_models:
        return
    if requested in settings.model_aliases:
        return
    known = ", ".join([*settings.allowed_models, *settings.model_aliases])
    raise bad_request(
        f"The model '{requested}' does not exist or is not served here (available: {known})",
        param="model",
        code="model_not_found",
    )


def normalise_language(value: str | None) -> str | None:
    """``ru-RU`` → ``ru``, ``EN`` → ``en``; empty and ``auto`` mean "not given".

    GigaAM recognises Russian only, so the value never changes the result; it is parsed so
    logs show what clients ask for.
    """
    if value is None:
        return None
    primary = value.strip().lower().replace("_", "-").split("-")[0]
    return None if primary in ("", "auto") else primary


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


def parse_granularities(fields: Mapping[str, Sequence[str]]) -> frozenset[str]:
    """``timestamp_granularities[]`` (or the bare name, or ``a,b``); default ``{"segment"}``."""
    values = [item for raw in _values(fields, "timestamp_granularities") for item in raw.split(",")]
    try:
        return formats.parse_granularities(values)
    except formats.FormatError as exc:
        raise bad_request(exc.message, param=exc.param, code="unsupported_value") from None


def parse_transcription_params(
    fields: Mapping[str, Sequence[str]], settings: Settings
) -> TranscriptionParams:
    """Validate the non-file fields; raises ``ApiError`` (400) naming the bad parameter."""
    model = _last(fields, "model") or ""
    check_model(model, settings)
    response_format = parse_response_format(_last(fields, "response_format"), settings)
    granularities = parse_granularities(fields)
    stream = parse_bool(_last(fields, "stream"), "stream")
    parse_float(_last(fields, "temperature"), "temperature")  # validated, then ignored
    return TranscriptionParams(
        response_format=response_format,
        granularities=granularities,
        stream=stream,
        model=model,
        language=normalise_language(_last(fields, "language")),
    )


def translation_unsupported() -> ApiError:
    return bad_request(
        "Translation is not supported: GigaAM recognises Russian speech only. "
        "Use POST /v1/audio/transcriptions to get a Russian transcript.",
        code="unsupported_endpoint",
    )
