"""An utterance as it streams in: format checks, the length cap, and the WAV it becomes.

The audio is written, in the client's own format, to a WAV file in the uploads folder, and
that file is what the transcription pipeline reads: the same decoder (a 16 kHz mono 16-bit
file is read directly, anything else is converted to 16 kHz mono by ffmpeg) as an HTTP upload
of that WAV, so both doors give the same text for the same audio. The ``wyoming`` library's
``AudioChunkConverter`` is deliberately not used: its down-mix adds the channels instead of
averaging them (clipping loud stereo) and its resampler is not ffmpeg's, so a 44.1 kHz
stereo utterance would be recognised from slightly different samples than the same file
uploaded over HTTP.

Wyoming audio is raw PCM described by ``rate`` (Hz), ``width`` (bytes per sample: 1 is
unsigned 8-bit as in WAV, 2–4 signed little-endian) and ``channels``. Anything that cannot be
that, or a chunk whose format or byte count contradicts the ``audio-start`` it follows, is
refused with :class:`AudioFormatError`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_RATE = 8000
MAX_RATE = 96000
WIDTHS = (1, 2, 3, 4)
MAX_CHANNELS = 8


class AudioFormatError(ValueError):
    """The client described or sent audio this server cannot take."""


@dataclass(frozen=True, slots=True)
class PcmFormat:
    """Rate, width and channel count of a Wyoming audio stream."""

    rate: int
    width: int
    channels: int

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels

    @staticmethod
    def from_event_data(data: dict[str, Any]) -> PcmFormat:
        """Read and check the format fields of an ``audio-start`` / ``audio-chunk`` event."""
        values = {}
        for key in ("rate", "width", "channels"):
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise AudioFormatError(f"audio '{key}' must be an integer")
            values[key] = value
        fmt = PcmFormat(**values)
        if not MIN_RATE <= fmt.rate <= MAX_RATE:
            raise AudioFormatError(f"rate {fmt.rate} Hz is outside {MIN_RATE}..{MAX_RATE}")
        if fmt.width not in WIDTHS:
            raise AudioFormatError(f"width {fmt.width} is not one of {WIDTHS} bytes")
        if not 1 <= fmt.channels <= MAX_CHANNELS:
            raise AudioFormatError(f"channels {fmt.channels} is outside 1..{MAX_CHANNELS}")
        return fmt


class Utterance:
    """One utterance written to a WAV file as its chunks arrive, cut at ``max_seconds``."""

    def __init__(self, fmt: PcmFormat, directory: Path, max_seconds: float) -> None:
        self.format = fmt
        handle, name = tempfile.mkstemp(prefix="wyoming-", suffix=".wav", dir=directory)
        os.close(handle)
        self.path = Path(name)
        self._wav: wave.Wave_write | None = wave.open(name, "wb")  # noqa: SIM115 (closed in finish)
        self._wav.setnchannels(fmt.channels)
        self._wav.setsampwidth(fmt.width)
        self._wav.setframerate(fmt.rate)
        self.frames = 0
        self.max_frames = max(1, int(max_seconds * fmt.rate))
        self.truncated = False

    @property
    def seconds(self) -> float:
        return self.frames / self.format.rate

    def add(self, fmt: PcmFormat, payload: bytes) -> bool:
        """Append a chunk; True when this chunk reached the cap (audio past it is dropped)."""
        if fmt != self.format:
            raise AudioFormatError(
                f"audio-chunk format {fmt} differs from the audio-start format {self.format}"
            )
        if len(payload) % fmt.frame_bytes:
            raise AudioFormatError(
                f"audio-chunk of {len(payload)} bytes is not a whole number of "
                f"{fmt.frame_bytes}-byte frames"
            )
        if self._wav is None:
            raise AudioFormatError("audio-chunk after the utterance was finished")
        frames = len(payload) // fmt.frame_bytes
        room = self.max_frames - self.frames
        if frames > room:
            newly_cut = not self.truncated
            self.truncated = True
            frames = max(room, 0)
        else:
            newly_cut = False
        if frames:
            self._wav.writeframes(payload[: frames * fmt.frame_bytes])
            self.frames += frames
        return newly_cut

    def finish(self) -> Path:
        """Close the WAV (its header now holds the real length); the file is ready to read."""
        if self._wav is not None:
            self._wav.close()
            self._wav = None
        return self.path

    def discard(self) -> None:
        """Close and delete the file (an abandoned utterance)."""
        with contextlib.suppress(Exception):
            self.finish()
        self.path.unlink(missing_ok=True)
