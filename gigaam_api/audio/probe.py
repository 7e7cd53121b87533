"""What a file holds (:class:`AudioInfo`), and the RIFF header reader for plain PCM WAV.

Voice notes and dictation clients mostly send 16-bit PCM WAV, and starting ``ffprobe`` costs
~0.15 s, as much as recognising a few seconds of speech; such a header is therefore read here
directly. Everything else is described by the decoder's prober (:mod:`gigaam_api.audio.ffmpeg`).
The format is always judged by the bytes, never by the file name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gigaam_api.audio.errors import AudioNotFound, EmptyAudio
from gigaam_api.constants import SAMPLE_RATE

__all__ = ["MAX_CHANNELS", "AudioInfo", "check_file", "read_wav_header"]

#: Most channels accepted (ffmpeg's own limit for a channel layout); all are mixed by us.
MAX_CHANNELS: Final = 64


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What the probe found about the first audio stream of a file."""

    #: Seconds, from the stream or the container; ``None`` when the file does not say.
    duration: float | None
    #: The stream's own sample rate (before our resampling to 16 kHz); 0 when unknown.
    sample_rate: int
    #: The stream's channel count; 0 when unknown.
    channels: int
    #: Codec name, e.g. ``"mp3"``, ``"pcm_s16le"``, ``"opus"``.
    codec: str
    #: Container (demuxer) name as ffprobe reports it, e.g. ``"wav"``, ``"matroska,webm"``.
    format_name: str
    #: Byte offset of the PCM samples, when a plain PCM WAV header was read directly.
    data_offset: int | None = None

    @property
    def is_plain_16k_mono(self) -> bool:
        """16 kHz mono 16-bit PCM WAV: already what the model wants, no decoder needed."""
        return (
            self.data_offset is not None
            and self.codec == "pcm_s16le"
            and self.sample_rate == SAMPLE_RATE
            and self.channels == 1
        )


def check_file(path: str | os.PathLike[str]) -> Path:
    """``path`` resolved, when it names a non-empty regular file.

    Raises :class:`AudioNotFound` (missing, a directory…) or :class:`EmptyAudio` (0 bytes), so
    no decoder is ever started for a file that cannot hold audio.
    """
    resolved = Path(path).resolve()
    if not resolved.exists():
        raise AudioNotFound(f"audio file not found: {Path(path).name}")
    if not resolved.is_file():
        raise AudioNotFound(f"not a regular file: {Path(path).name}")
    if resolved.stat().st_size == 0:
        raise EmptyAudio("the file is empty (0 bytes)")
    return resolved


def read_wav_header(file: Path) -> AudioInfo | None:
    """Describe a plain 16-bit PCM WAV from its RIFF header, or ``None`` for anything else.

    Extensible or float formats, odd chunk layouts, a truncated header and other containers
    all return ``None`` and go to the full prober; only the header is trusted here, never more
    data than the file really has.
    """
    try:
        with file.open("rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            fmt: tuple[int, int, int, int, int] | None = None
            for _ in range(64):  # a sane file has a handful of chunks before its data
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                size = int.from_bytes(chunk[4:], "little")
                if chunk[:4] == b"fmt ":
                    body = fh.read(size + (size & 1))
                    if len(body) < 16:
                        return None
                    tag = int.from_bytes(body[0:2], "little")
                    channels = int.from_bytes(body[2:4], "little")
                    rate = int.from_bytes(body[4:8], "little")
                    block = int.from_bytes(body[12:14], "little")
                    bits = int.from_bytes(body[14:16], "little")
                    fmt = (tag, channels, rate, block, bits)
                elif chunk[:4] == b"data":
                    if fmt is None:
                        return None
                    tag, channels, rate, block, bits = fmt
                    if tag != 1 or bits != 16 or not 1 <= channels <= MAX_CHANNELS:
                        return None
                    if rate <= 0 or block != 2 * channels:
                        return None
                    # the header may overstate the data (streamed or cut files): trust the size
                    available = max(0, file.stat().st_size - fh.tell())
                    frames = min(size, available) // block
                    return AudioInfo(
                        frames / rate, rate, channels, "pcm_s16le", "wav", data_offset=fh.tell()
                    )
                else:
                    fh.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        return None
    return None
