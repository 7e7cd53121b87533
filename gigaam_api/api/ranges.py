"""HTTP Range requests (RFC 9110 §14) for serving a stored upload, e.g. a job's audio.

A browser's ``<audio>`` element seeks by asking for ``Range: bytes=N-``; without a ``206``
answer it can only play from the start, and a multi-hour recording would have to download
whole before the player could jump to a word. This module is the pure part (header →
decision) plus a small response builder that streams one slice of a file.

Decisions, each allowed by RFC 9110 §14.2:

* no header, another unit than ``bytes``, or a syntactically invalid header → ignore it and
  send the whole file with ``200`` (a server *may* ignore an invalid ranges-specifier);
* more than one range → ``200`` with the whole file: browsers and players only ever ask for
  one, and a ``multipart/byteranges`` body is a lot of code for no user;
* one satisfiable range (``a-b``, ``a-``, ``-suffix``; ``b`` past the end is clamped) → ``206``
  with ``Content-Range: bytes a-b/size``;
* one unsatisfiable range (``a`` at or past the end, or ``-0``) → ``416`` with
  ``Content-Range: bytes */size``;
* ``If-Range`` that does not match the file's current validator → the whole file (``200``).
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote

import anyio
from fastapi.responses import Response, StreamingResponse

from gigaam_api.api.errors import error_response, range_not_satisfiable

#: Bytes read from disk per chunk of the streamed body.
CHUNK_BYTES = 256 * 1024

_RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


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
    if header is None:
        return None
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = specs.split(",")
    if len(parts) != 1:
        return None  # several ranges (or a stray comma): ignore, serve everything
    match = _RANGE_SPEC.match(parts[0])
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None  # "bytes=-" is not a range-spec
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(0, size - suffix), size - 1, size)
    start = int(first)
    if last and int(last) < start:
        return None  # last-pos < first-pos makes the range-spec invalid: ignore it
    if start >= size:
        raise RangeNotSatisfiable(size)
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end, size)


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


def validators(path: Path) -> tuple[str, str, int]:
    """``(ETag, Last-Modified, size)`` of a file, from its size and modification time."""
    stat = path.stat()
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    return etag, formatdate(stat.st_mtime, usegmt=True), stat.st_size


def if_range_matches(if_range: str | None, etag: str, last_modified: str) -> bool:
    """Whether a ``Range`` may be honoured: no ``If-Range``, or it names the current file."""
    if if_range is None:
        return True
    value = if_range.strip()
    return value in (etag, last_modified)


async def _read_slice(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    """The bytes ``start .. start+length-1`` of ``path``, read off the event loop."""
    async with await anyio.open_file(path, "rb") as handle:
        await handle.seek(start, os.SEEK_SET)
        remaining = length
        while remaining > 0:
            chunk = await handle.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break  # the file shrank under us; the client sees a short body
            remaining -= len(chunk)
            yield chunk


def file_response(
    path: Path,
    *,
    media_type: str,
    range_header: str | None = None,
    if_range: str | None = None,
    filename: str | None = None,
) -> Response:
    """``200`` with the whole file, ``206`` with one slice, or ``416`` — per the headers given.

    ``filename`` (the name the user uploaded) goes into an ``inline`` ``Content-Disposition``
    so "save audio as" in the browser suggests it.
    """
    etag, last_modified, size = validators(path)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": last_modified,
        "Cache-Control": "private, no-cache",
        # An upload is untrusted bytes: never sniffed into something runnable, never a
        # document with this origin's rights if opened in a tab, and the URL (which may carry
        # a signed link) is never sent on as a Referer.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Referrer-Policy": "no-referrer",
    }
    if filename:
        headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(filename)}"
    chosen: ByteRange | None = None
    if if_range_matches(if_range, etag, last_modified):
        try:
            chosen = parse_range(range_header, size)
        except RangeNotSatisfiable:
            return error_response(range_not_satisfiable(size))
    if chosen is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(
            _read_slice(path, 0, size), status_code=200, media_type=media_type, headers=headers
        )
    headers["Content-Length"] = str(chosen.length)
    headers["Content-Range"] = chosen.content_range
    return StreamingResponse(
        _read_slice(path, chosen.start, chosen.length),
        status_code=206,
        media_type=media_type,
        headers=headers,
    )
