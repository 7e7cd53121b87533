"""The typed errors an input can fail with, and the one builder of the "too long" message.

Every reader and the probe raise these, so the API and the CLI map one family to one OpenAI
error shape: ``code`` becomes the error code, ``user_error`` picks 400 (the client sent
something wrong) or 500 (the server is misconfigured), ``message`` is shown to the user and
``detail`` (the decoder's own diagnostics) goes to the log only.
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "AudioNotFound",
    "AudioTooLong",
    "DecoderCrashed",
    "EmptyAudio",
    "FfmpegMissing",
    "NoAudioStream",
    "UnsupportedAudio",
    "too_long",
]


class AudioError(Exception):
    """An input that cannot be turned into audio; ``message`` is meant for the end user.

    ``code`` is a stable machine-readable name (used as the OpenAI error ``code``), and
    ``user_error`` tells whether the client sent something wrong (HTTP 400) or the server is
    misconfigured (HTTP 500). ``detail`` keeps the decoder's diagnostics for the log.
    """

    code: str = "invalid_audio"
    user_error: bool = True

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class AudioNotFound(AudioError):
    """The path does not name a readable regular file."""

    code = "audio_not_found"


class NoAudioStream(AudioError):
    """The file is a valid media file without any audio stream (a picture, a silent video)."""

    code = "no_audio_stream"


class UnsupportedAudio(AudioError):
    """The bytes are not audio that can be decoded: corrupt, truncated, unknown or refused."""

    code = "unsupported_audio"


class EmptyAudio(AudioError):
    """The file is readable but holds no samples (a zero-byte file, a header without data)."""

    code = "empty_audio"


class AudioTooLong(AudioError):
    """The audio is longer than ``MAX_AUDIO_SECONDS``."""

    code = "audio_too_long"


class FfmpegMissing(AudioError):
    """The decoder (FFmpeg's libraries from PyAV) cannot start: a server problem.

    The name and code are kept from when FFmpeg was a system program, so clients and alerts
    that match on ``ffmpeg_missing`` keep working.
    """

    code = "ffmpeg_missing"
    user_error = False


class DecoderCrashed(AudioError):
    """The decoder process died while serving this request; the server itself is unharmed.

    A crash by the decoder's own fault (SIGSEGV, SIGABRT…) was caused by the input, so it is
    the client's 400; a process killed from outside (the OOM killer, an operator) is a 500
    worth retrying.
    """

    code = "decoder_crashed"

    def __init__(self, message: str, *, user_error: bool, detail: str = "") -> None:
        super().__init__(message, detail=detail)
        self.user_error = user_error


def _format_seconds(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def too_long(seconds: float, limit: float, *, at_least: bool = False) -> AudioTooLong:
    """The :class:`AudioTooLong` for ``seconds`` of audio against ``limit`` (readable units).

    ``at_least`` is for a limit found while decoding, when the real length is not known yet.
    """
    length = ("more than " if at_least else "") + _format_seconds(seconds)
    return AudioTooLong(
        f"the audio is {length} long; the limit is {_format_seconds(limit)} "
        f"(MAX_AUDIO_SECONDS={limit:g})"
    )
