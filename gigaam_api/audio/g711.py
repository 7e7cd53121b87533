"""G.711 (μ-law and A-law, 8 kHz telephone audio) → 16-bit linear PCM, pure numpy.

OpenAI's realtime sessions take ``audio/pcmu`` and ``audio/pcma`` (beta: ``g711_ulaw``,
``g711_alaw``). Each byte is one companded sample; expanding it with the ITU-T G.711 tables
(the reference decoder's arithmetic, as in FFmpeg's ``pcm_mulaw``/``pcm_alaw`` and Python's
old ``audioop``) gives 8 kHz 16-bit PCM, which then takes the ordinary pushed-audio path to
16 kHz — the same samples an uploaded 8 kHz 16-bit WAV of the expanded audio gives.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

__all__ = ["G711_RATE", "Law", "expand"]

#: G.711 is 8 kHz mono.
G711_RATE: Final = 8000

Law = Literal["ulaw", "alaw"]


def _ulaw_table() -> NDArray[np.int16]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((codes & 0x0F) << 3) + 0x84) << ((codes & 0x70) >> 4)
    return np.where(codes & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


def _alaw_table() -> NDArray[np.int16]:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (codes & 0x70) >> 4
    magnitude = (codes & 0x0F) << 4
    magnitude = np.where(segment == 0, magnitude + 8, magnitude + 0x108)
    magnitude = np.where(segment > 1, magnitude << np.maximum(segment - 1, 0), magnitude)
    return np.where(codes & 0x80, magnitude, -magnitude).astype(np.int16)


_TABLES: Final = {"ulaw": _ulaw_table(), "alaw": _alaw_table()}


def expand(payload: bytes, law: Law) -> bytes:
    """G.711 bytes → 16-bit little-endian PCM bytes (twice as many), same rate (8 kHz)."""
    codes = np.frombuffer(payload, dtype=np.uint8)
    return _TABLES[law][codes].astype("<i2").tobytes()
