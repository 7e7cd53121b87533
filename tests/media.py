"""Test media made with PyAV and numpy: the suite needs no ffmpeg program.

``encode`` writes int16 PCM in any container/codec PyAV (FFmpeg's libraries) can write;
``sine`` and ``png`` make the raw material the tests used to ask the ffmpeg tool for.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

SR = 16000


def encode(
    path: Path,
    samples: NDArray[Any],
    *,
    rate: int = SR,
    codec: str = "flac",
    container: str | None = None,
    bit_rate: int | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Write ``samples`` (``[n]`` or ``[n, channels]`` int16) to ``path`` with ``codec``;
    ``options`` go to the muxer (e.g. ``{"write_xing": "0"}`` for MP3)."""
    data = np.asarray(samples, dtype=np.int16)
    frames = data.reshape(-1, 1) if data.ndim == 1 else data
    channels = frames.shape[1]
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    with av.open(str(path), "w", format=container, options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)  # type: ignore[call-overload]
        if bit_rate:
            stream.bit_rate = bit_rate
        step = 4096
        for at in range(0, frames.shape[0], step):
            chunk = np.ascontiguousarray(frames[at : at + step])
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=layout)
            frame.sample_rate = rate
            frame.pts = at
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def decode(path: Path) -> NDArray[np.int16]:
    """``path`` as 16 kHz mono int16, by PyAV directly (a reference, not the server's way)."""
    with av.open(str(path)) as source:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SR)
        parts = [
            out.to_ndarray().reshape(-1)
            for frame in source.decode(audio=0)
            for out in resampler.resample(frame)
        ]
        parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, np.int16)


def sine(
    seconds: float, hz: float = 300.0, rate: int = SR, level: float = 8000.0
) -> NDArray[np.int16]:
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * level).astype(np.int16)


def png(path: Path, width: int = 8, height: int = 8) -> Path:
    """A small solid red PNG (a picture without audio)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )  # fmt: skip
    return path


def with_video(path: Path, samples: NDArray[np.int16], *, rate: int = SR) -> Path:
    """An MP4 with a black video track and ``samples`` as AAC: a phone recording."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        sound = out.add_stream("aac", rate=rate, layout="mono")
        seconds = len(samples) / rate
        black = np.zeros((64, 64, 3), dtype=np.uint8)
        for index in range(int(seconds * 25)):
            picture = av.VideoFrame.from_ndarray(black, format="rgb24")
            picture.pts = index
            for packet in video.encode(picture):
                out.mux(packet)
        step = 1024
        for at in range(0, len(samples), step):
            chunk = np.ascontiguousarray(samples[at : at + step], dtype=np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = at
            for packet in sound.encode(frame):
                out.mux(packet)
        for stream in (video, sound):
            for packet in stream.encode(None):
                out.mux(packet)
    return path
