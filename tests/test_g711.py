"""G.711 expansion (``audio/g711.py``) against the reference tables: Python's own ``audioop``
(ITU-T G.711, as in Sun's reference coder) where this Python still has it, and FFmpeg's
``pcm_mulaw``/``pcm_alaw`` decoders (through PyAV) always."""

from __future__ import annotations

import importlib
import io

import av
import numpy as np
import pytest

from gigaam_api.audio.g711 import expand

CODES = bytes(range(256))


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_expansion_matches_ffmpeg(law: str) -> None:
    codec = {"ulaw": "pcm_mulaw", "alaw": "pcm_alaw"}[law]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="wav") as out:
        stream = out.add_stream(codec, rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(expand(CODES, law), dtype="<i2").reshape(1, -1),
            format="s16",
            layout="mono",
        )
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = b"".join(f.to_ndarray().tobytes() for f in container.decode(audio=0))
    assert decoded == expand(CODES, law)  # the encoder round-trips every decoded value


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_expansion_matches_audioop(law: str) -> None:
    try:
        audioop = importlib.import_module("audioop")
    except ImportError:
        pytest.skip("audioop is gone from this Python")
    reference = audioop.ulaw2lin if law == "ulaw" else audioop.alaw2lin
    assert expand(CODES, law) == reference(CODES, 2)


def test_two_bytes_out_per_byte_in() -> None:
    assert len(expand(b"\x00\xff\x80", "ulaw")) == 6
