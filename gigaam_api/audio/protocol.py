"""The wire format between the serving process and the decoder worker: length-prefixed frames.

Both sides import this module, so a frame is written and read by the same code. A request is
one JSON frame (the operation, the path, the options); the worker answers with typed frames:
``INFO`` (what the file holds, JSON), then for a decode any number of ``BLOCK`` frames (raw
little-endian int16 mono samples at 16 kHz), then ``END`` (JSON) or ``ERROR`` (JSON: the kind
of :class:`~gigaam_api.audio.errors.AudioError`, the user message, the decoder's diagnostics).
A pipe between the two holds at most one pipe buffer, so a worker that runs ahead of a slow
consumer blocks on its write: memory stays bounded without any other flow control.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any, Final

__all__ = [
    "BLOCK",
    "END",
    "ERROR",
    "HEADER",
    "INFO",
    "MAX_FRAME_BYTES",
    "READY",
    "decode_json",
    "encode",
    "encode_json",
    "read_frame",
]

#: The worker started and can decode (sent once, before the first request is read).
READY: Final = b"R"
#: A request (parent → worker) or a probe result (worker → parent); JSON.
INFO: Final = b"I"
#: Decoded samples: little-endian int16, mono, 16 kHz.
BLOCK: Final = b"B"
#: The decode finished; JSON with the sample count.
END: Final = b"E"
#: The request failed; JSON ``{"kind", "message", "detail"}``.
ERROR: Final = b"X"

#: One type byte and a 32-bit little-endian payload length.
HEADER: Final = struct.Struct("<cI")
#: Larger frames are a protocol error (a block is at most a few hundred KiB).
MAX_FRAME_BYTES: Final = 64 * 1024 * 1024


def encode(kind: bytes, payload: bytes) -> bytes:
    """One frame: header then payload."""
    return HEADER.pack(kind, len(payload)) + payload


def encode_json(kind: bytes, value: dict[str, Any]) -> bytes:
    return encode(kind, json.dumps(value, ensure_ascii=False).encode("utf-8"))


def decode_json(payload: bytes) -> dict[str, Any]:
    value = json.loads(payload.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("a JSON frame must hold an object")
    return value


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> tuple[bytes, bytes] | None:
    """The next ``(kind, payload)`` from a blocking stream, ``None`` at its end."""
    header = _read_exact(stream, HEADER.size)
    if header is None:
        return None
    kind, size = HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {size} bytes is too large")
    payload = _read_exact(stream, size) if size else b""
    if payload is None:
        return None
    return kind, payload
