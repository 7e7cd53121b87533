"""An utterance as it streams in: format checks, the length cap, and the pushed audio it feeds.

Wyoming audio is raw PCM described by ``rate`` (Hz), ``width`` (bytes per sample: 1 is
unsigned 8-bit as in WAV, 2–4 signed little-endian) and ``channels``. Each chunk is pushed
into the core's :class:`~gigaam_api.audio.PushedAudio`, which converts it in this process to
16 kHz mono with the same resampler and mixer the decoder uses for a file — so an utterance is
recognised from exactly the samples the same audio uploaded as a WAV file over HTTP gives, with
no temporary file and no decoder process. The ``wyoming`` library's ``AudioChunkConverter`` is
deliberately not used: its down-mix adds the channels instead of averaging them (clipping loud
stereo) and its resampler is not FFmpeg's.

Anything that cannot be that format, or a chunk whose format or byte count contradicts the
``audio-start`` it follows, is refused with :class:`AudioFormatError`.
"""

from __future__ import annotations

from typing import Any

from gigaam_api.audio import PushedAudio, RawFormat, RawFormatError

#: The message-level error of this door (the core's :class:`RawFormatError` is one).
AudioFormatError = RawFormatError


def format_of(data: dict[str, Any]) -> RawFormat:
    """Read and check the format fields of an ``audio-start`` / ``audio-chunk`` event."""
    values = {}
    for key in ("rate", "width", "channels"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise AudioFormatError(f"audio '{key}' must be an integer")
        values[key] = value
    return RawFormat(**values)


class Utterance:
    """One utterance pushed to the core as its chunks arrive, cut at ``max_seconds``."""

    def __init__(self, fmt: RawFormat, max_seconds: float) -> None:
        self.format = fmt
        self.audio = PushedAudio(fmt, max_seconds=max_seconds)

    @property
    def seconds(self) -> float:
        return self.audio.seconds

    @property
    def frames(self) -> int:
        return self.audio.frames

    def add(self, fmt: RawFormat, payload: bytes) -> bool:
        """Append a chunk; True when this chunk reached the cap (audio past it is dropped)."""
        if fmt != self.format:
            raise AudioFormatError(
                f"audio-chunk format {fmt} differs from the audio-start format {self.format}"
            )
        return self.audio.push(payload)

    def finish(self) -> PushedAudio:
        """The audio is complete: the source a session reads."""
        self.audio.end()
        return self.audio

    def discard(self) -> None:
        """Drop what was received (an abandoned utterance)."""
        self.audio.abort()
