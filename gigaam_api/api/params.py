"""Form fields of ``POST /audio/transcriptions`` → validated parameters (pure functions).

Lenient where real clients differ (``docs/api.md``, "Request fields"): bare and
``[]`` array names, ``True``/``true``/``1`` booleans, ``0``/``0.0``/``1e-05`` numbers, empty
strings meaning "not given", unknown fields ignored. Strict where a wrong value would silently
change the output: an unknown ``model`` or ``response_format`` is a 400 naming the parameter.

Speaker diarization (``docs/api.md``, "Speakers") is strict throughout: its options change
who the text is attributed to, and its reference clips are client-supplied binary data, so a
count that cannot be met, a name without its clip or a clip that is not a well-formed
``data:`` URL is a 400 naming the field, never a silently different result. Whether a clip
really is 2–10 s of audio needs the decoder and is checked when the request runs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from gigaam_api import formats
from gigaam_api.api.errors import ApiError, bad_request
from gigaam_api.config import DIARIZE_MODEL_ALIAS, Settings
from gigaam_api.formats import RESPONSE_FORMATS, STREAMABLE_FORMATS, ResponseFormat
from gigaam_api.service.languages import normalise_language as normalise_language
from gigaam_api.speakers.clustering import SpeakerCount

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}

#: Speakers a request may name with reference clips (OpenAI's limit).
MAX_KNOWN_SPEAKERS: Final = 4
#: Characters in a known speaker's name, after trimming.
MAX_SPEAKER_NAME_CHARS: Final = 64
#: Decoded bytes of one reference clip: 10 s of even 48 kHz stereo float WAV fits (3.8 MB);
#: four clips bound a request's references to 16 MiB.
MAX_REFERENCE_BYTES: Final = 4 * 1024 * 1024
#: Characters before the comma of a reference data URL (``data:audio/webm;codecs=opus;base64``).
MAX_DATA_URL_HEADER_CHARS: Final = 200
#: The longest reference field that can be valid; ``api/uploads.py`` keeps this much of it.
MAX_REFERENCE_FIELD_CHARS: Final = (
    MAX_DATA_URL_HEADER_CHARS + 1 + 4 * math.ceil(MAX_REFERENCE_BYTES / 3)
)
#: The range of ``num_speakers``, ``min_speakers`` and ``max_speakers``.
SPEAKER_COUNT_LIMITS: Final = (1, 32)
#: Form fields (as the SDKs name them) of the diarization options, for ``param``.
NAMES_PARAM: Final = "known_speaker_names[]"
REFERENCES_PARAM: Final = "known_speaker_references[]"
CHUNKING_PARAM: Final = "chunking_strategy"
_COUNT_PARAMS: Final = ("num_speakers", "min_speakers", "max_speakers")
#: Media types a reference may declare: what an audio file is labelled as by browsers and by
#: Python's ``mimetypes`` (which says ``video/mp4`` for ``.mp4``, ``video/webm`` for ``.webm``:
#: containers FFmpeg reads the audio of), or "unknown bytes".
_REFERENCE_TYPE_PREFIXES: Final = ("audio/", "video/")
_OCTET_STREAM: Final = "application/octet-stream"
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}", re.ASCII)
_MEDIA_PARAM = re.compile(rf"{_TOKEN}={_TOKEN}", re.ASCII)
_CHUNKING_KEYS: Final = ("type", "threshold", "prefix_padding_ms", "silence_duration_ms")
#: Digits a count or a millisecond value may have (int() of a huge string is slow, then fails).
_MAX_INT_CHARS: Final = 24


@dataclass(frozen=True, slots=True)
class KnownSpeaker:
    """A name and its reference clip, decoded from the data URL (not yet checked as audio)."""

    name: str
    media_type: str  # lower-cased, as declared in the data URL (a hint; the decoder decides)
    audio: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class DiarizationParams:
    """Speaker diarization was asked for, with these options (all optional)."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    #: In request order; names are unique (case-insensitively) and at most four.
    known_speakers: tuple[KnownSpeaker, ...] = ()

    @property
    def count(self) -> SpeakerCount:
        """The clustering's view of the three counts."""
        return SpeakerCount(self.num_speakers, self.min_speakers, self.max_speakers)


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


def parse_optional_bool(value: str | None, param: str) -> bool | None:
    """Like :func:`parse_bool`, but "not given" (absent or empty) is ``None``."""
    if value is None or value.strip() == "":
        return None
    return parse_bool(value, param)


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
        diarization=parse_diarization(fields, model=model, response_format=response_format),
        chunking_strategy=parse_chunking_strategy(fields),
    )


# -- speaker diarization ------------------------------------------------------------------------


def _invalid(message: str, param: str, code: str = "invalid_value") -> ApiError:
    return bad_request(message, param=param, code=code)


def _given(values: Sequence[str]) -> bool:
    # The SDKs leave empty lists out; a lone empty part means "not given", like any field.
    return any(v.strip() for v in values)


def parse_diarization(
    fields: Mapping[str, Sequence[str]], *, model: str, response_format: ResponseFormat
) -> DiarizationParams | None:
    """The diarization options, or ``None`` when the request did not ask for speakers.

    On with ``model=gpt-4o-transcribe-diarize``, ``response_format=diarized_json`` or the
    extension ``diarize=true``; an explicit ``diarize=false`` turns the alias off, and is a
    400 with ``diarized_json`` (which cannot be made without speakers). Speaker options
    without diarization are a 400 naming the option: they would otherwise do nothing.
    """
    flag = parse_optional_bool(_last(fields, "diarize"), "diarize")
    if flag is False and response_format == "diarized_json":
        raise bad_request(
            "response_format 'diarized_json' needs speaker diarization, "
            "which diarize=false turns off",
            param="response_format",
            code="unsupported_value",
        )
    enabled = (
        flag
        if flag is not None
        else (model == DIARIZE_MODEL_ALIAS or response_format == "diarized_json")
    )
    names = _values(fields, "known_speaker_names")
    references = _values(fields, "known_speaker_references")
    if not enabled:
        asked = [p for p in _COUNT_PARAMS if _last(fields, p)]
        asked += [p for p, v in ((NAMES_PARAM, names), (REFERENCES_PARAM, references)) if _given(v)]
        if asked:
            raise _invalid(
                f"'{asked[0]}' needs speaker diarization: use model "
                f"'{DIARIZE_MODEL_ALIAS}', response_format 'diarized_json' or diarize=true",
                asked[0],
            )
        return None
    num, low, high = (_speaker_count(_last(fields, p), p) for p in _COUNT_PARAMS)
    _check_counts(num, low, high)
    return DiarizationParams(
        num_speakers=num,
        min_speakers=low,
        max_speakers=high,
        known_speakers=parse_known_speakers(names, references),
    )


def _parse_int(value: str, param: str, what: str) -> int:
    """A whole number as clients write it: ``3``, or ``3.0`` (Python's ``str`` of a float)."""
    text = value.strip()
    number = math.nan
    if len(text) <= _MAX_INT_CHARS:
        with contextlib.suppress(ValueError):
            number = float(text)
    if not math.isfinite(number) or not number.is_integer():
        raise _invalid(f"Invalid value for '{param}': {value[:40]!r} (expected {what})", param)
    return int(number)


def _speaker_count(value: str | None, param: str) -> int | None:
    if value is None or value == "":
        return None
    low, high = SPEAKER_COUNT_LIMITS
    count = _parse_int(value, param, f"a whole number from {low} to {high}")
    if not low <= count <= high:
        raise _invalid(f"'{param}' must be from {low} to {high}, got {count}", param)
    return count


def _check_counts(num: int | None, low: int | None, high: int | None) -> None:
    """The combinations no clustering can meet, each a 400 naming the field at fault.

    :meth:`SpeakerCount.bounds` owns the min/max rule; it ignores ``min``/``max`` beside
    ``num``, which a request must not contradict either.
    """
    try:
        SpeakerCount(None, low, high).bounds()
    except ValueError as exc:
        raise _invalid(str(exc), "min_speakers") from None
    if num is not None and not (low or num) <= num <= (high or num):
        raise _invalid(
            f"num_speakers ({num}) is outside min_speakers..max_speakers "
            f"({low or '-'}..{high or '-'})",
            "num_speakers",
        )


def parse_known_speakers(
    names: Sequence[str], references: Sequence[str]
) -> tuple[KnownSpeaker, ...]:
    """``known_speaker_names[]`` with ``known_speaker_references[]``, paired in order.

    Counts are checked before anything is decoded, so a hostile request with hundreds of
    parts costs nothing.
    """
    has_names, has_references = _given(names), _given(references)
    if not has_names and not has_references:
        return ()
    if len(names) > MAX_KNOWN_SPEAKERS:
        raise _invalid(
            f"At most {MAX_KNOWN_SPEAKERS} known speakers, got {len(names)} names", NAMES_PARAM
        )
    if len(references) > MAX_KNOWN_SPEAKERS:
        raise _invalid(
            f"At most {MAX_KNOWN_SPEAKERS} known speakers, got {len(references)} references",
            REFERENCES_PARAM,
        )
    if not has_references:
        raise _invalid(
            f"'{NAMES_PARAM}' needs '{REFERENCES_PARAM}': one audio clip per name, same order",
            REFERENCES_PARAM,
            "missing_required_parameter",
        )
    if not has_names:
        raise _invalid(
            f"'{REFERENCES_PARAM}' needs '{NAMES_PARAM}': one name per audio clip, same order",
            NAMES_PARAM,
            "missing_required_parameter",
        )
    if len(names) != len(references):
        raise _invalid(
            f"{len(names)} known speaker names but {len(references)} references; "
            "give one reference per name, in the same order",
            REFERENCES_PARAM,
        )
    clean = [speaker_name(raw, i) for i, raw in enumerate(names)]
    seen: set[str] = set()
    for name in clean:
        if name.casefold() in seen:
            raise _invalid(f"Known speaker names must be distinct: {name!r} repeats", NAMES_PARAM)
        seen.add(name.casefold())
    return tuple(
        KnownSpeaker(name, *reference_data_url(raw, i))
        for i, (name, raw) in enumerate(zip(clean, references, strict=True))
    )


def speaker_name(value: str, index: int = 0) -> str:
    """One known speaker's name: trimmed, NFC, inner spaces collapsed, 1..64 characters, one
    line (a line break would split the ``Speaker: text`` lines and subtitle cues)."""
    name = " ".join(part for part in unicodedata.normalize("NFC", value).strip().split(" ") if part)
    if not name:
        raise _invalid(f"{NAMES_PARAM[:-2]}[{index}] is empty", NAMES_PARAM)
    if len(name) > MAX_SPEAKER_NAME_CHARS:
        raise _invalid(
            f"{NAMES_PARAM[:-2]}[{index}] is longer than {MAX_SPEAKER_NAME_CHARS} characters",
            NAMES_PARAM,
        )
    if any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in name):
        raise _invalid(
            f"{NAMES_PARAM[:-2]}[{index}] contains a control character or line break",
            NAMES_PARAM,
        )
    return name


def reference_data_url(value: str, index: int = 0) -> tuple[str, bytes]:
    """``data:<media type>[;k=v]*;base64,<payload>`` → (media type, decoded bytes).

    Strict RFC 2397 with base64 only: an audio or video type (or octet-stream), the base64
    marker, the standard alphabet with its padding and nothing else (no whitespace, no
    line breaks, no URL-safe letters), at most :data:`MAX_REFERENCE_BYTES` decoded. The
    message names the clip by its index and never echoes the payload.
    """
    where = f"{REFERENCES_PARAM[:-2]}[{index}]"

    def bad(why: str) -> ApiError:
        return _invalid(f"{where} {why}", REFERENCES_PARAM)

    text = value.strip()
    if len(text) > MAX_REFERENCE_FIELD_CHARS:
        raise bad(f"is too large: a reference clip may be at most {MAX_REFERENCE_BYTES} bytes")
    comma = text.find(",", 0, MAX_DATA_URL_HEADER_CHARS + 1)
    if not text[:5].lower() == "data:" or comma < 0:
        raise bad("must be a data URL: data:audio/<type>;base64,<base64 of the audio>")
    media_type, *parameters = text[5:comma].split(";")
    media_type = media_type.strip().lower()
    if not parameters or parameters[-1].strip().lower() != "base64":
        raise bad("must be base64-encoded (data:<type>;base64,...)")
    if not _MEDIA_TYPE.fullmatch(media_type) or not (
        media_type.startswith(_REFERENCE_TYPE_PREFIXES) or media_type == _OCTET_STREAM
    ):
        raise bad(f"must be audio (an audio/* media type), not {media_type[:60]!r}")
    if not all(_MEDIA_PARAM.fullmatch(p.strip()) for p in parameters[:-1]):
        raise bad("has a malformed media type parameter")
    payload = text[comma + 1 :]
    if not payload:
        raise bad("is empty")
    if len(payload) > 4 * math.ceil(MAX_REFERENCE_BYTES / 3):
        raise bad(f"is too large: a reference clip may be at most {MAX_REFERENCE_BYTES} bytes")
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise bad("is not valid base64 (standard alphabet, padded, no spaces)") from None
    if len(audio) > MAX_REFERENCE_BYTES:
        raise bad(f"is too large: a reference clip may be at most {MAX_REFERENCE_BYTES} bytes")
    return media_type, audio


# -- chunking_strategy --------------------------------------------------------------------------


def parse_chunking_strategy(fields: Mapping[str, Sequence[str]]) -> ChunkingStrategy | None:
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
        raise _invalid(
            "chunking_strategy is given twice (as a value and as an object)", CHUNKING_PARAM
        )
    if bare_value:
        if bare_value.lower() == "auto":
            return ChunkingStrategy("auto")
        if bare_value.startswith("{"):
            return _server_vad(_json_object(bare_value))
        raise _invalid(
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
        raise _invalid("chunking_strategy is not a valid JSON object", CHUNKING_PARAM)
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
        raise _invalid(
            f"Unknown chunking_strategy field {unknown[0][:40]!r}; expected "
            f"{', '.join(_CHUNKING_KEYS)}",
            CHUNKING_PARAM,
        )
    kind = options.get("type", "").strip().lower()
    if kind != "server_vad":
        raise _invalid("chunking_strategy[type] must be 'server_vad'", CHUNKING_PARAM)
    threshold = parse_float(options.get("threshold"), CHUNKING_PARAM)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise _invalid("chunking_strategy[threshold] must be from 0 to 1", CHUNKING_PARAM)
    padding, silence = (
        _milliseconds(options.get(key), key) for key in ("prefix_padding_ms", "silence_duration_ms")
    )
    return ChunkingStrategy("server_vad", threshold, padding, silence)


def _milliseconds(value: str | None, key: str) -> int | None:
    if value is None or value.strip() == "":
        return None
    what = f"a whole, non-negative number of milliseconds for chunking_strategy[{key}]"
    number = _parse_int(value, CHUNKING_PARAM, what)
    if number < 0:
        raise _invalid(f"chunking_strategy[{key}] must not be negative", CHUNKING_PARAM)
    return number


def translation_unsupported() -> ApiError:
    return bad_request(
        "Translation is not supported: GigaAM recognises Russian speech only. "
        "Use POST /v1/audio/transcriptions to get a Russian transcript.",
        code="unsupported_endpoint",
    )
