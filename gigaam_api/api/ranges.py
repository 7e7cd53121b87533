"""HTTP Range requests (RFC 9110 §14) for serving a stored upload, e.g. a job's audio.

A browser's ``<audio>`` element seeks by asking for ``Range: bytes=N-``; without a ``206``
answer it can only play from the start, and a multi-hour recording would have to download
whole before the player could jump to a word. Starlette's ``FileResponse`` sends the bytes
(``200``, ``206`` with ``Content-Range``, ``If-Range`` against its ``ETag``/``Last-Modified``);
this module decides first which ``Range`` it gets to see, because the framework alone would
answer some headers in ways this API does not:

* another unit than ``bytes`` → ignored, the whole file (``200``); RFC 9110 §14.2 says a
  server MUST ignore a unit it does not know, where the framework answers ``400``;
* a syntactically invalid header (``bytes=abc``, ``bytes=5-1``) → ignored, ``200`` (§14.2
  allows ignoring it; the framework answers a plain-text ``400`` outside the API's envelope);
* more than one range → ignored, ``200`` (§14.2 allows ignoring any ``Range``): browsers and
  players only ever ask for one, and the framework's ``multipart/byteranges`` answers ``416``
  when any one range, rather than every one (§14.1.1), lies past the end;
* one satisfiable range (``a-b``, ``a-``, ``-suffix``; ``b`` past the end is clamped) → the
  framework's ``206``;
* one unsatisfiable range (``a`` at or past the end, or ``-0``) → ``416`` with
  ``Content-Range: bytes */size`` in the OpenAI error envelope (the framework's is plain text).
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from fastapi.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from gigaam_api.api.errors import error_response, range_not_satisfiable

#: One byte range and nothing else (several, another unit or a stray comma do not match).
_ONE_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE | re.ASCII)

#: An upload is untrusted bytes: never sniffed into something runnable, never a document with
#: this origin's rights if opened in a tab, and the URL (which may carry a signed link) is
#: never sent on as a Referer.
UPLOAD_HEADERS = {
    "Cache-Control": "private, no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class ByteRange:
    """An inclusive byte range ``start..end`` of a file of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


class RangeNotSatisfiable(Exception):
    """The single requested range lies wholly outside a file of ``size`` bytes → 416."""

    def __init__(self, size: int) -> None:
        super().__init__(f"Requested range not satisfiable (the file has {size} bytes)")
        self.size = size


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range to serve, or ``None`` for the whole file; raises :class:`RangeNotSatisfiable`.

    ``header`` is the raw ``Range`` value. See the module docstring for the rules.
    """
    match = _ONE_RANGE.fullmatch(header or "")
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        if not last:
            return None  # "bytes=-" is not a range-spec
        if int(last) == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(0, size - int(last)), size - 1, size)
    start = int(first)
    if last and int(last) < start:
        return None  # last-pos < first-pos makes the range-spec invalid: ignore it
    if start >= size:
        raise RangeNotSatisfiable(size)
    return ByteRange(start, min(int(last), size - 1) if last else size - 1, size)


def media_type_for(filename: str | None) -> str:
    """The ``Content-Type`` to serve an upload with, guessed from the name the user gave it.

    Browsers sniff audio anyway; a right type mainly lets ``<audio>`` skip formats it cannot
    play without downloading them first. Only audio and video types are ever named: the name
    is the uploader's choice, and a file that passed the audio probe but is called
    ``page.html`` or ``x.svg`` must not be served as a document of this origin.
    """
    guessed, _ = mimetypes.guess_type(filename or "")
    if guessed and guessed.split("/", 1)[0] in ("audio", "video"):
        return guessed
    return "application/octet-stream"


class _UploadFile(FileResponse):
    """The framework's file response, with the request's ``Range`` hidden from it when this
    module decided to ignore that header (then the whole file goes, ``200``)."""

    honour_range = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.honour_range:
            headers = [(name, value) for name, value in scope["headers"] if name != b"range"]
            scope = {**scope, "headers": headers}
        await super().__call__(scope, receive, send)


def file_response(
    path: Path,
    *,
    media_type: str,
    range_header: str | None = None,
    if_range: str | None = None,
    filename: str | None = None,
) -> Response:
    """``200`` with the whole file, ``206`` with one slice, or ``416`` — per the request's own
    ``Range`` and ``If-Range`` headers, given here (the framework reads them again to send).

    ``filename`` (the name the user uploaded) goes into an ``inline`` ``Content-Disposition``
    so "save audio as" in the browser suggests it. Raises ``FileNotFoundError`` when the file
    is gone.
    """
    stat = path.stat()
    headers = dict(UPLOAD_HEADERS)
    if filename:
        headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(filename)}"
    response = _UploadFile(path, media_type=media_type, headers=headers, stat_result=stat)
    validators = (response.headers["etag"], response.headers["last-modified"])
    # A stale If-Range means the whole file whatever the Range says (RFC 9110 §13.1.5); the
    # framework checks that too, so only a fresh (or absent) one gets here the range decided.
    if if_range is None or if_range.strip() in validators:
        try:
            response.honour_range = parse_range(range_header, stat.st_size) is not None
        except RangeNotSatisfiable:
            return error_response(range_not_satisfiable(stat.st_size))
    return response
