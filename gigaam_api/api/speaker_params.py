"""Speaker diarization's form fields → :class:`DiarizationParams` (pure functions).

Strict throughout (``docs/api.md``, "Speakers"): these options change who the text is
attributed to, and the reference clips are client-supplied binary data, so a count that
cannot be met, a name without its clip or a clip that is not a well-formed ``data:`` URL is a
400 naming the field, never a silently different result. Whether a clip really is 2–10 s of
audio needs the decoder and is checked when the request runs.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from gigaam_api.api.errors import ApiError, bad_request
from gigaam_api.api.fields import (
    Fields,
    given,
    invalid,
    last,
    parse_int,
    parse_optional_bool,
    values,
)
from gigaam_api.config import DIARIZE_MODEL_ALIAS
from gigaam_api.formats import ResponseFormat
from gigaam_api.speakers.clustering import SpeakerCount

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
_COUNT_PARAMS: Final = ("num_speakers", "min_speakers", "max_speakers")
#: Media types a reference may declare: what an audio file is labelled as by browsers and by
#: Python's ``mimetypes`` (which says ``video/mp4`` for ``.mp4``, ``video/webm`` for ``.webm``:
#: containers FFmpeg reads the audio of), or "unknown bytes".
_REFERENCE_TYPE_PREFIXES: Final = ("audio/", "video/")
_OCTET_STREAM: Final = "application/octet-stream"
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}", re.ASCII)
_MEDIA_PARAM = re.compile(rf"{_TOKEN}={_TOKEN}", re.ASCII)


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


def parse_diarization(
    fields: Fields, *, model: str, response_format: ResponseFormat
) -> DiarizationParams | None:
    """The diarization options, or ``None`` when the request did not ask for speakers.

    On with ``model=gpt-4o-transcribe-diarize``, ``response_format=diarized_json`` or the
    extension ``diarize=true``; an explicit ``diarize=false`` turns the alias off, and is a
    400 with ``diarized_json`` (which cannot be made without speakers). Speaker options
    without diarization are a 400 naming the option: they would otherwise do nothing.
    """
    flag = parse_optional_bool(last(fields, "diarize"), "diarize")
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
    names = values(fields, "known_speaker_names")
    references = values(fields, "known_speaker_references")
    if not enabled:
        asked = [p for p in _COUNT_PARAMS if last(fields, p)]
        asked += [p for p, v in ((NAMES_PARAM, names), (REFERENCES_PARAM, references)) if given(v)]
        if asked:
            raise invalid(
                f"'{asked[0]}' needs speaker diarization: use model "
                f"'{DIARIZE_MODEL_ALIAS}', response_format 'diarized_json' or diarize=true",
                asked[0],
            )
        return None
    num, low, high = (_speaker_count(last(fields, p), p) for p in _COUNT_PARAMS)
    _check_counts(num, low, high)
    return DiarizationParams(
        num_speakers=num,
        min_speakers=low,
        max_speakers=high,
        known_speakers=parse_known_speakers(names, references),
    )


def _speaker_count(value: str | None, param: str) -> int | None:
    if value is None or value == "":
        return None
    low, high = SPEAKER_COUNT_LIMITS
    count = parse_int(value, param, f"a whole number from {low} to {high}")
    if not low <= count <= high:
        raise invalid(f"'{param}' must be from {low} to {high}, got {count}", param)
    return count


def _check_counts(num: int | None, low: int | None, high: int | None) -> None:
    """The combinations no clustering can meet, each a 400 naming the field at fault.

    :meth:`SpeakerCount.bounds` owns the min/max rule; it ignores ``min``/``max`` beside
    ``num``, which a request must not contradict either.
    """
    try:
        SpeakerCount(None, low, high).bounds()
    except ValueError as exc:
        raise invalid(str(exc), "min_speakers") from None
    if num is not None and not (low or num) <= num <= (high or num):
        raise invalid(
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
    has_names, has_references = given(names), given(references)
    if not has_names and not has_references:
        return ()
    if len(names) > MAX_KNOWN_SPEAKERS:
        raise invalid(
            f"At most {MAX_KNOWN_SPEAKERS} known speakers, got {len(names)} names", NAMES_PARAM
        )
    if len(references) > MAX_KNOWN_SPEAKERS:
        raise invalid(
            f"At most {MAX_KNOWN_SPEAKERS} known speakers, got {len(references)} references",
            REFERENCES_PARAM,
        )
    if not has_references:
        raise invalid(
            f"'{NAMES_PARAM}' needs '{REFERENCES_PARAM}': one audio clip per name, same order",
            REFERENCES_PARAM,
            "missing_required_parameter",
        )
    if not has_names:
        raise invalid(
            f"'{REFERENCES_PARAM}' needs '{NAMES_PARAM}': one name per audio clip, same order",
            NAMES_PARAM,
            "missing_required_parameter",
        )
    if len(names) != len(references):
        raise invalid(
            f"{len(names)} known speaker names but {len(references)} references; "
            "give one reference per name, in the same order",
            REFERENCES_PARAM,
        )
    clean = [speaker_name(raw, i) for i, raw in enumerate(names)]
    seen: set[str] = set()
    for name in clean:
        if name.casefold() in seen:
            raise invalid(f"Known speaker names must be distinct: {name!r} repeats", NAMES_PARAM)
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
        raise invalid(f"{NAMES_PARAM[:-2]}[{index}] is empty", NAMES_PARAM)
    if len(name) > MAX_SPEAKER_NAME_CHARS:
        raise invalid(
            f"{NAMES_PARAM[:-2]}[{index}] is longer than {MAX_SPEAKER_NAME_CHARS} characters",
            NAMES_PARAM,
        )
    if any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in name):
        raise invalid(
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
        return invalid(f"{where} {why}", REFERENCES_PARAM)

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
