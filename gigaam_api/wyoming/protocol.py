"""Reading Wyoming events with limits, writing them with the ``wyoming`` library.

The library's reader (``wyoming.event.async_read_event``) trusts the peer: it reads whatever
``data_length`` and ``payload_length`` announce, so one header claiming a 10 GB payload makes
the server buffer until memory runs out, and a header that is valid JSON but not an object
raises an exception the library does not catch. Home Assistant never sends such things, but
the port is reachable by anything on the network, so events are read here instead: the same
framing (header line, optional data, optional payload), with every length checked before a
byte of it is read. The header's ``version`` field, which the library drops, is kept: it tells
whether the client understands streaming transcripts. Writing stays with the library
(``async_write_event``), which produces exactly what Home Assistant parses.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from wyoming.event import Event

#: Longest header line accepted. asyncio's StreamReader refuses longer lines by itself at its
#: default limit (64 KiB), which is also far above any real header (a few hundred bytes).
MAX_HEADER_BYTES = 64 * 1024
#: Longest additional-data block (JSON merged into the header's data).
MAX_DATA_BYTES = 64 * 1024
#: Largest payload: one audio chunk. Home Assistant sends ~2 KB chunks; 1 MiB is over 5 s of
#: 48 kHz stereo 16-bit audio.
MAX_PAYLOAD_BYTES = 1024 * 1024

#: The first protocol version with ``transcript-start`` / ``-chunk`` / ``-stop`` (wyoming 1.7.0).
STREAMING_TRANSCRIPTS_SINCE = (1, 7, 0)


class ProtocolError(Exception):
    """The peer broke the framing; the connection cannot continue after this."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(frozen=True, slots=True)
class Incoming:
    """One event read from a client, with the protocol version its header declared."""

    event: Event
    version: str | None


async def read_event(reader: asyncio.StreamReader) -> Incoming | None:
    """The next event, or None when the client closed the connection (even mid-event).

    Raises :class:`ProtocolError` for anything that is not a well-formed event within limits.
    """
    try:
        line = await reader.readline()
    except ValueError:  # asyncio's limit: the line is longer than the reader's buffer limit
        raise ProtocolError(
            "header_too_long", f"event header longer than {MAX_HEADER_BYTES} bytes"
        ) from None
    if not line or not line.endswith(b"\n"):
        return None
    if len(line) > MAX_HEADER_BYTES:
        raise ProtocolError("header_too_long", f"event header longer than {MAX_HEADER_BYTES} bytes")
    header = _json_object(line, "event header")
    event_type = header.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise ProtocolError("malformed_event", "event header has no 'type' string")
    data = header.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProtocolError("malformed_event", "event 'data' must be a JSON object")
    data_length = _length(header, "data_length", MAX_DATA_BYTES)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    try:
        if data_length:
            data.update(_json_object(await reader.readexactly(data_length), "event data"))
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None  # closed before the announced bytes arrived
    version = header.get("version")
    return Incoming(
        Event(type=event_type, data=data, payload=payload),
        version if isinstance(version, str) else None,
    )


def supports_streaming_transcripts(version: str | None) -> bool:
    """Whether a client that declared ``version`` understands ``transcript-chunk`` events."""
    if version is None:
        return False
    parts: list[int] = []
    for piece in version.split(".")[:3]:
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
    return bool(parts) and tuple(parts) >= STREAMING_TRANSCRIPTS_SINCE


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError("malformed_json", f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ProtocolError("malformed_json", f"{what} must be a JSON object")
    return value


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError("malformed_event", f"'{key}' must be a non-negative integer")
    if value > limit:
        raise ProtocolError("too_large", f"'{key}' is {value} bytes; the limit is {limit}")
    return value
