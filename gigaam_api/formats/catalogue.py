"""The response formats themselves: their names, media types and file extensions, the
timestamp granularities, and the errors for a name that is none of them.

The one home of these facts: the API's parameters, the streaming decision, the CLI's
``--response-format`` choices and the files it writes all read them here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final, Literal, NamedTuple, get_args

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


def unknown_format(response_format: str) -> FormatError:
    """The error for a ``response_format`` that is none of :data:`RESPONSE_FORMATS`."""
    return FormatError(
        f"Invalid response_format {response_format!r}; expected one of "
        f"{', '.join(RESPONSE_FORMATS)}.",
        "response_format",
    )


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


def json_body(payload: object) -> Rendered:
    """A JSON body: compact like upstream; Cyrillic as is (smaller, readable); NaN is a bug,
    not JSON."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Rendered(body, JSON_MEDIA_TYPE)
