"""Receive a multipart/form-data upload straight to a temporary file.

Uploads may be gigabytes (hours of audio), so the body is never held in memory: it is parsed
as it arrives with python-multipart's streaming parser, the ``file`` part goes to a temporary
file in ~1 MiB writes done off the event loop, and ``MAX_UPLOAD_MB`` is checked against the
bytes received so far, so an oversized upload is refused with 413 the moment it crosses the
limit (and the server discards the rest unread into memory). Chunked bodies without a
``Content-Length`` work the same way.

Part order does not matter (the Python SDK sends ``file`` last, Node 5+ first), the file part
may lack a Content-Type, and its name and type are kept only as hints: the audio layer sniffs
the real format from the bytes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from gigaam_api.api.errors import (
    bad_request,
    empty_upload,
    missing_file,
    too_large,
    upload_stalled,
)
from gigaam_api.api.speaker_params import MAX_KNOWN_SPEAKERS, MAX_REFERENCE_FIELD_CHARS

#: Bytes kept per ordinary (non-file) field; longer values are cut (no field we read is long).
FIELD_LIMIT_BYTES = 64 * 1024
#: The one long text field: a known speaker's reference clip as a base64 data URL. The first
#: MAX_KNOWN_SPEAKERS such parts keep one byte more than a valid one can have, so params
#: answers "too large" instead of decoding a cut clip; later ones (a 400 for their count
#: anyway) get the ordinary limit, so repeating the field cannot pile up memory.
REFERENCE_FIELDS = frozenset({"known_speaker_references", "known_speaker_references[]"})
REFERENCE_FIELD_LIMIT_BYTES = MAX_REFERENCE_FIELD_CHARS + 1
#: Parts per request; a form with more is malformed or hostile.
MAX_PARTS = 200
#: Buffered file bytes written to disk in one go (bounded memory per upload).
FLUSH_BYTES = 1024 * 1024
FILE_FIELD = "file"
#: Seconds without a single body byte after which an upload is abandoned (408).
UPLOAD_IDLE_TIMEOUT_S = 60.0


@dataclass
class UploadedFile:
    """The received ``file`` part on disk. ``filename``/``content_type`` are client hints."""

    path: Path
    filename: str | None
    content_type: str | None
    size: int


@dataclass
class FormData:
    """Every form field (repeated names keep all values in order) and the uploaded file."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    file: UploadedFile | None = None
    _tmp_paths: list[Path] = field(default_factory=list, repr=False)

    def first(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def audio_file(self) -> UploadedFile:
        """The ``file`` part, which every audio endpoint requires and which must not be empty:
        both the synchronous and the job endpoints reject the same way."""
        if self.file is None:
            raise missing_file()
        if self.file.size == 0:
            raise empty_upload()
        return self.file

    def cleanup(self) -> None:
        """Remove the temporary file; safe to call any number of times from any thread."""
        while self._tmp_paths:
            path = self._tmp_paths.pop()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class _Collector:
    """python-multipart callbacks: split parts into text fields and the one file sink."""

    def __init__(self, form: FormData, tmp_dir: Path | None) -> None:
        self.form = form
        self.tmp_dir = tmp_dir
        self.parts = 0
        self.finished = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        self._name: str | None = None
        self._sink: str = "discard"  # "field" | "file" | "discard"
        self._value = bytearray()
        self._limit = FIELD_LIMIT_BYTES  # of the field part being read
        self._long_fields = 0  # reference parts given the long limit so far
        self._file_meta: tuple[str | None, str | None] | None = None
        self.file_handle: IO[bytes] | None = None
        self.file_path: Path | None = None
        self.file_size = 0
        self.file_done = False
        self.pending = bytearray()  # file bytes not yet written to disk

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise bad_request(f"Too many form parts (more than {MAX_PARTS})")
        self._headers = {}
        self._name = None
        self._sink = "discard"
        self._value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        name = self._header_field.decode("latin-1").strip().lower()
        # latin-1 maps bytes 1:1, so parse_options_header (which re-encodes values as latin-1)
        # gets the raw bytes back; names are decoded as UTF-8 afterwards (see _text).
        self._headers[name] = self._header_value.decode("latin-1").strip()
        self._header_field = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", ""))
        raw_name = options.get(b"name")
        self._name = _text(raw_name) if raw_name is not None else None
        if self._name == FILE_FIELD and self._file_meta is None:
            raw_filename = options.get(b"filename")
            filename = _text(raw_filename) if raw_filename is not None else None
            self._file_meta = (filename, self._headers.get("content-type") or None)
            self._sink = "file"
        elif self._name is not None and self._name != FILE_FIELD:
            self._sink = "field"
            self._limit = FIELD_LIMIT_BYTES
            if self._name in REFERENCE_FIELDS and self._long_fields < MAX_KNOWN_SPEAKERS:
                self._long_fields += 1
                self._limit = REFERENCE_FIELD_LIMIT_BYTES

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink == "file":
            self.pending += data[start:end]
            self.file_size += end - start
        elif self._sink == "field":
            room = self._limit - len(self._value)
            if room > 0:
                self._value += data[start : min(end, start + room)]

    def on_part_end(self) -> None:
        if self._sink == "field" and self._name is not None:
            value = self._value.decode("utf-8", errors="replace")
            self.form.fields.setdefault(self._name, []).append(value)
        elif self._sink == "file":
            self.file_done = True
        self._sink = "discard"

    def on_end(self) -> None:
        self.finished = True

    # -- disk I/O, always called through a worker thread --------------------------------

    def write_pending(self) -> None:
        if self.file_handle is None:
            fd, name = tempfile.mkstemp(prefix="gigaam-upload-", dir=self.tmp_dir)
            self.file_path = Path(name)
            self.form._tmp_paths.append(self.file_path)
            self.file_handle = os.fdopen(fd, "wb")
        if self.pending:
            self.file_handle.write(self.pending)
            self.pending = bytearray()

    def close_file(self) -> None:
        if self.file_handle is not None:
            self.file_handle.close()


def _text(raw: bytes) -> str:
    """A header parameter's bytes as text: browsers and httpx (so the openai SDK) send
    non-ASCII names and filenames (``запись.m4a``) as raw UTF-8 (RFC 7578 §4.2)."""
    return raw.decode("utf-8", errors="replace")


def _boundary(content_type: str) -> bytes:
    media_type, options = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        raise bad_request(
            "Expected a multipart/form-data body with a 'file' part "
            f"(got Content-Type {content_type or 'none'!r})"
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise bad_request("The multipart/form-data Content-Type has no boundary")
    return boundary


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request("Invalid Content-Length header") from None


async def read_form(
    request: Request,
    *,
    max_bytes: int,
    tmp_dir: Path | None = None,
    idle_timeout: float = UPLOAD_IDLE_TIMEOUT_S,
) -> FormData:
    """Parse the request body; the ``file`` part lands in a temp file (see :class:`FormData`).

    Raises ``ApiError`` 400 for a body that is not well-formed multipart, 413 once more than
    ``max_bytes`` have arrived (or are announced), 408 when no data arrives for
    ``idle_timeout`` seconds (a stalled client must not hold its queue slot forever), and lets
    Starlette's ``ClientDisconnect`` through when the client goes away mid-upload. On any
    failure the temp file is removed.
    """
    boundary = _boundary(request.headers.get("content-type", ""))
    declared = _declared_length(request)
    if declared is not None and declared > max_bytes:
        raise too_large(max_bytes)
    form = FormData()
    collector = _Collector(form, tmp_dir)
    try:
        parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    except FormParserError as exc:  # e.g. a boundary longer than the parser accepts
        raise bad_request(f"Invalid multipart/form-data boundary: {exc}") from None
    received = 0
    try:
        try:
            async with contextlib.aclosing(_body(request)) as chunks:
                while True:
                    with anyio.move_on_after(idle_timeout) as waited:
                        chunk = await anext(chunks, None)
                    if waited.cancelled_caught:
                        raise upload_stalled(idle_timeout)
                    if chunk is None:
                        break
                    received += len(chunk)
                    if received > max_bytes:
                        raise too_large(max_bytes)
                    parser.write(chunk)
                    if len(collector.pending) >= FLUSH_BYTES:
                        await anyio.to_thread.run_sync(collector.write_pending)
            parser.finalize()
        except MultipartParseError as exc:
            raise bad_request(f"Malformed multipart/form-data body: {exc}") from None
        if not collector.finished:
            raise bad_request("Malformed multipart/form-data body: it ends before the last part")
        if collector.file_done and collector._file_meta is not None:
            await anyio.to_thread.run_sync(collector.write_pending)
            assert collector.file_path is not None
            filename, content_type = collector._file_meta
            form.file = UploadedFile(
                collector.file_path, filename, content_type, collector.file_size
            )
    except BaseException:
        # synchronous on purpose: under cancellation an await here would not run
        collector.close_file()
        form.cleanup()
        raise
    await anyio.to_thread.run_sync(collector.close_file)
    return form


async def _body(request: Request) -> AsyncGenerator[bytes, None]:
    async for chunk in request.stream():
        if chunk:
            yield chunk
