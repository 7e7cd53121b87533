"""Any audio file → a stream of 16 kHz mono int16 blocks, through ffmpeg, in bounded memory.

Why it is built this way:

* **ffmpeg in a subprocess, read from a pipe.** ffmpeg decodes every container and codec users
  send, and reading its stdout block by block means a 10-hour file costs what a 10-second one
  costs (the reference decodes the whole file into RAM). The child is owned by a
  :class:`PcmReader`: it is killed on ``close()``, on leaving the ``with`` block, on any error
  and when the reader is garbage-collected, so it never outlives its request.
* **Format sniffed from the bytes.** ``ffprobe`` looks at the content; the file name is never
  used to pick a decoder (an MP3 named ``.wav`` decodes as MP3). The decoder is then pinned to
  the demuxer the probe found, so probe and decode cannot disagree.
* **Untrusted input.** Only the ``file`` protocol is allowed, and demuxers that open *other*
  resources named inside the file (HLS/DASH playlists, concat scripts, SDP, image sequences)
  are refused, so an upload cannot make the server read other local files or fetch URLs.
* **Channels that cancel.** ffmpeg's ``-ac 1`` averages the channels, which turns a stereo file
  whose right channel is the inverted left into silence. We let ffmpeg resample but keep the
  channels, and mix them ourselves as the *mean of polarity-aligned channels*: each channel's
  polarity relative to the loudest one is estimated from a running (~1 s) correlation, and a
  clearly anti-correlated channel (r < -0.3) is flipped before averaging (flipped back once
  clearly correlated again, r > 0.3). Ordinary stereo (r > 0) therefore gets exactly ffmpeg's
  average, independent channels (a call recorded one speaker per channel, r ≈ 0) are left
  alone, and only destructive interference is removed. The decision for a block includes that
  block's own statistics, so even the first second is not silent.
* **Limits enforced twice.** ``max_seconds`` is checked against the probed duration before
  decoding and again on the samples actually produced, because container durations can lie.
* **Typed errors** (:class:`AudioError` subclasses) carry a message fit for the end user, with
  ffmpeg's own words (stripped of server paths) and a machine-readable ``code``.
* **No hangs.** ffmpeg's stderr is drained by a thread into a bounded buffer (a full stderr pipe
  would block ffmpeg and us with it), the probe has a timeout, and a decoder that produces no
  output for ``stall_timeout`` seconds is killed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import selectors
import shutil
import subprocess
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_BLOCK_SAMPLES",
    "SAMPLE_RATE",
    "AudioError",
    "AudioInfo",
    "AudioNotFound",
    "AudioTooLong",
    "EmptyAudio",
    "FfmpegMissing",
    "NoAudioStream",
    "PcmReader",
    "UnsupportedAudio",
    "decode_pcm",
    "load_audio",
    "probe",
]

#: Output sample rate: what GigaAM and Silero VAD expect.
SAMPLE_RATE: Final = 16000
#: Samples per block handed to the caller (2.048 s; a multiple of Silero's 512-sample window).
DEFAULT_BLOCK_SAMPLES: Final = 32768
#: Seconds ffprobe may take before the file is declared undecodable.
PROBE_TIMEOUT_S: Final = 30.0
#: Seconds the decoder may go without producing any output before it is declared stuck.
STALL_TIMEOUT_S: Final = 60.0
#: Most channels accepted (ffmpeg's own limit for a channel layout); all are mixed by us.
MAX_CHANNELS: Final = 64
#: Bytes of ffmpeg's stderr kept for error messages (the rest is drained and dropped).
STDERR_KEEP_BYTES: Final = 8192

#: Demuxers that read other files or URLs named inside the input: refused for uploads.
_UNSAFE_DEMUXERS: Final = frozenset(
    {
        "concat",
        "dash",
        "hls",
        "applehttp",
        "imf",
        "image2",
        "image2pipe",
        "lavfi",
        "rtp",
        "rtsp",
        "sdp",
        "webm_dash_manifest",
    }
)

_FFMPEG_FIX: Final = (
    "install ffmpeg and make sure it is on PATH (Debian/Ubuntu: `apt-get install ffmpeg`, "
    "macOS: `brew install ffmpeg`)"
)


# --- errors ------------------------------------------------------------------------------------


class AudioError(Exception):
    """An input that cannot be turned into audio; ``message`` is meant for the end user.

    ``code`` is a stable machine-readable name (used as the OpenAI error ``code``), and
    ``user_error`` tells whether the client sent something wrong (HTTP 400) or the server is
    misconfigured (HTTP 500). ``detail`` keeps ffmpeg's diagnostics for the log.
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
    """The bytes are not audio ffmpeg can decode: corrupt, truncated, unknown or refused."""

    code = "unsupported_audio"


class EmptyAudio(AudioError):
    """The file is readable but holds no samples (a zero-byte file, a header without data)."""

    code = "empty_audio"


class AudioTooLong(AudioError):
    """The audio is longer than ``MAX_AUDIO_SECONDS``."""

    code = "audio_too_long"


class FfmpegMissing(AudioError):
    """ffmpeg/ffprobe is not installed: a server problem, not the client's."""

    code = "ffmpeg_missing"
    user_error = False


# --- probing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What ffprobe found about the first audio stream of a file."""

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


def _tool(name: str) -> str:
    """Resolve ffmpeg/ffprobe on PATH at call time (so a changed PATH is honoured)."""
    found = shutil.which(name)
    if found is None:
        raise FfmpegMissing(f"{name} was not found on PATH; {_FFMPEG_FIX}")
    return found


@functools.cache
def _safe_demuxers(ffprobe: str) -> str | None:
    """Every demuxer this ffmpeg build has, minus the unsafe ones, for ``-format_whitelist``.

    Refusing an HLS playlist or a concat script *after* probing is too late: probing it already
    opened the local files it names. With the whitelist ffprobe refuses such a format before
    reading anything else. ``None`` (no whitelist, the post-probe check alone) if the list
    cannot be read.
    """
    try:
        done = subprocess.run(
            [ffprobe, "-hide_banner", "-demuxers"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    names: list[str] = []
    listing = done.stdout.decode("ascii", "replace").partition("\n --\n")[2]
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].startswith("D"):
            names += [n for n in fields[1].split(",") if n not in _UNSAFE_DEMUXERS]
    return ",".join(names) if done.returncode == 0 and names else None


def _check_path(path: str | os.PathLike[str]) -> Path:
    resolved = Path(path).resolve()
    if not resolved.exists():
        raise AudioNotFound(f"audio file not found: {Path(path).name}")
    if not resolved.is_file():
        raise AudioNotFound(f"not a regular file: {Path(path).name}")
    return resolved


def _input_url(path: Path) -> str:
    # `file:` keeps a name like `http:x` or `-y` from being read as a protocol or an option.
    return f"file:{path}"


def _clean(text: str, path: Path) -> str:
    """ffmpeg's diagnostics without the server-side path of the (temporary) input file."""
    for variant in (_input_url(path), str(path)):
        text = text.replace(variant, "<input>")
    return text.strip()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _number(value: object) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _int(value: object) -> int:
    try:
        return max(0, int(str(value)))
    except ValueError:
        return 0


def _probe_pcm_wav(file: Path) -> AudioInfo | None:
    """Describe a plain 16-bit PCM WAV from its RIFF header, without starting ffprobe.

    Voice notes and dictation clients mostly send exactly this, and an ffprobe start costs
    ~0.15 s, as much as recognising a few seconds of speech. Anything else (extensible or
    float formats, odd chunk layouts, a truncated header, other containers) returns ``None``
    and goes to ffprobe as before; ffmpeg still does the decoding.
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


def probe(path: str | os.PathLike[str], *, timeout: float = PROBE_TIMEOUT_S) -> AudioInfo:
    """Describe the first audio stream of ``path``, judging the format by its content.

    Raises :class:`AudioNotFound`, :class:`EmptyAudio` (zero-byte file),
    :class:`UnsupportedAudio` (not decodable, refused container, probe timeout),
    :class:`NoAudioStream` or :class:`FfmpegMissing`.
    """
    file = _check_path(path)
    if file.stat().st_size == 0:
        raise EmptyAudio("the file is empty (0 bytes)")
    ffprobe = _tool("ffprobe")
    quick = _probe_pcm_wav(file)
    if quick is not None:
        return quick
    whitelist = _safe_demuxers(ffprobe)
    command = [
        ffprobe,
        "-v",
        "error",
        "-hide_banner",
        "-protocol_whitelist",
        "file",
        *(["-format_whitelist", whitelist] if whitelist else []),
        "-of",
        "json",
        "-show_entries",
        "format=format_name,duration:stream=codec_type,codec_name,sample_rate,channels,duration",
        _input_url(file),
    ]
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:  # removed between which() and exec
        raise FfmpegMissing(f"ffprobe could not be started; {_FFMPEG_FIX}") from exc
    except subprocess.TimeoutExpired as exc:
        raise UnsupportedAudio(
            f"the file could not be analysed within {timeout:g} s (corrupt or unsupported)"
        ) from exc
    stderr = _clean(done.stderr.decode("utf-8", "replace"), file)
    if done.returncode != 0 and "not on whitelist" in stderr:
        format_name = stderr.partition("[")[2].partition(" @")[0] or "this"
        raise UnsupportedAudio(
            f"the {format_name} format refers to other files or URLs and is not accepted; "
            "upload the audio itself",
            detail=stderr,
        )
    if done.returncode != 0:
        reason = _last_line(stderr) or f"ffprobe exited with status {done.returncode}"
        raise UnsupportedAudio(
            f"the file is not audio that can be decoded ({reason})", detail=stderr
        )
    try:
        report: dict[str, Any] = json.loads(done.stdout.decode("utf-8", "replace") or "{}")
    except json.JSONDecodeError as exc:
        raise UnsupportedAudio("the file could not be analysed", detail=stderr) from exc
    container: dict[str, Any] = report.get("format") or {}
    format_name = str(container.get("format_name", ""))
    if not format_name:
        raise UnsupportedAudio("the file is not in a recognised audio format", detail=stderr)
    if set(format_name.split(",")) & _UNSAFE_DEMUXERS:
        raise UnsupportedAudio(
            f"the {format_name} format refers to other files or URLs and is not accepted; "
            "upload the audio itself"
        )
    streams: list[dict[str, Any]] = report.get("streams") or []
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not audio:
        kinds = sorted({str(s.get("codec_type", "unknown")) for s in streams})
        found = f" (it holds only: {', '.join(kinds)})" if kinds else ""
        raise NoAudioStream(f"the file has no audio stream{found}")
    first = audio[0]
    duration = _number(first.get("duration"))
    if duration is None:
        duration = _number(container.get("duration"))
    return AudioInfo(
        duration=duration,
        sample_rate=_int(first.get("sample_rate")),
        channels=_int(first.get("channels")),
        codec=str(first.get("codec_name", "")),
        format_name=format_name,
    )


def _format_seconds(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _too_long(seconds: float, limit: float, *, at_least: bool = False) -> AudioTooLong:
    length = ("more than " if at_least else "") + _format_seconds(seconds)
    return AudioTooLong(
        f"the audio is {length} long; the limit is {_format_seconds(limit)} "
        f"(MAX_AUDIO_SECONDS={limit:g})"
    )


# --- channel mixing ----------------------------------------------------------------------------


class _PolarityMixer:
    """Mean of polarity-aligned channels (see the module docstring for the reasoning)."""

    #: Time constant (seconds) of the running covariance the polarity decisions use: short
    #: enough to follow a polarity change within about a second, long enough that the
    #: near-zero correlation of independent channels does not flip-flop.
    TAU_S = 1.0
    #: Correlation beyond which a channel is considered clearly anti-/correlated.
    FLIP_AT = 0.3

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.signs = np.ones(channels, dtype=np.int32)
        self._cov = np.zeros((channels, channels), dtype=np.float64)

    def mix(self, frames: NDArray[np.int16]) -> NDArray[np.int16]:
        """``frames`` is ``[n, channels]`` int16; returns ``[n]`` int16."""
        if frames.shape[0] == 0:
            return np.zeros(0, dtype=np.int16)
        centred = frames.astype(np.float64)
        centred -= centred.mean(axis=0)
        decay = math.exp(-frames.shape[0] / (SAMPLE_RATE * self.TAU_S))
        self._cov *= decay
        self._cov += centred.T @ centred
        self._update_signs()
        total = frames.astype(np.int32) @ self.signs
        return np.rint(total / self.channels).astype(np.int16)

    def _update_signs(self) -> None:
        power = np.diag(self._cov)
        ref = int(np.argmax(power))
        if power[ref] <= 0.0:
            return
        for ch in range(self.channels):
            if ch == ref or power[ch] <= power[ref] * 1e-8:
                continue
            corr = self._cov[ref, ch] / math.sqrt(power[ref] * power[ch])
            # Correlation as mixed: < 0 means this channel currently cancels the reference.
            if corr * self.signs[ref] * self.signs[ch] < -self.FLIP_AT:
                self.signs[ch] = -self.signs[ch]


# --- decoding ----------------------------------------------------------------------------------


def _drain(stream: IO[bytes], keep: deque[bytes]) -> None:
    """Read a pipe to its end, keeping only the last bytes (ffmpeg must never block on it)."""
    kept = 0
    try:
        while chunk := stream.read(4096):
            keep.append(chunk)
            kept += len(chunk)
            while kept > STDERR_KEEP_BYTES and len(keep) > 1:
                kept -= len(keep.popleft())
    except (OSError, ValueError):
        pass


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """Kill ffmpeg (if still running) and reap it. Safe to call more than once."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):  # a SIGKILLed child always exits
        proc.wait(timeout=10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _check_start(start_seconds: float) -> None:
    if not math.isfinite(start_seconds) or start_seconds < 0:
        raise ValueError(f"start_seconds must be >= 0, got {start_seconds!r}")


def _check_arguments(max_seconds: float, block_samples: int, stall_timeout: float) -> None:
    if not math.isfinite(max_seconds) or max_seconds < 0:
        raise ValueError(f"max_seconds must be >= 0 (0 = unlimited), got {max_seconds!r}")
    if int(block_samples) != block_samples or block_samples < 1:
        raise ValueError(f"block_samples must be a positive integer, got {block_samples!r}")
    if not stall_timeout > 0:
        raise ValueError(f"stall_timeout must be > 0, got {stall_timeout!r}")


class PcmReader:
    """Decode ``path`` to 16 kHz mono int16 blocks, incrementally, with ffmpeg on a pipe.

    Use it as a context manager and iterate it::

        with decode_pcm(path, max_seconds=36000) as reader:
            for block in reader:          # NDArray[int16], at most block_samples long
                ...
            reader.duration               # seconds actually decoded

    Opening probes the file and decodes the first block, so a corrupt, empty or header-only
    file fails right here with a typed :class:`AudioError`, before any output is produced.
    Iteration raises :class:`AudioTooLong` as soon as more than ``max_seconds`` have been
    decoded, :class:`UnsupportedAudio` if ffmpeg fails or stalls mid-way. ``close()`` may be
    called from another thread to cancel: the reading thread then sees the end of the stream
    (with :attr:`completed` false).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_seconds: float = 0.0,
        block_samples: int = DEFAULT_BLOCK_SAMPLES,
        info: AudioInfo | None = None,
        stall_timeout: float = STALL_TIMEOUT_S,
        start_seconds: float = 0.0,
    ) -> None:
        _check_arguments(max_seconds, block_samples, stall_timeout)
        _check_start(start_seconds)
        self.start_seconds = float(start_seconds)
        self.path = _check_path(path)
        self.max_seconds = float(max_seconds)
        self.block_samples = int(block_samples)
        self.stall_timeout = float(stall_timeout)
        self.info = info if info is not None else probe(self.path)
        #: Mono samples produced so far (the decoded length once iteration has finished).
        self.total_samples = 0
        self._max_samples = round(self.max_seconds * SAMPLE_RATE) if self.max_seconds else 0
        self._completed = False
        self._closed = False
        self._io_lock = threading.RLock()
        duration = self.info.duration
        if self._max_samples and duration is not None and duration > self.max_seconds:
            raise _too_long(duration, self.max_seconds)

        channels = self.info.channels
        if channels > MAX_CHANNELS:
            raise UnsupportedAudio(
                f"{channels} audio channels are more than the {MAX_CHANNELS} supported"
            )
        # Keep every channel (same count in and out: ffmpeg never has to guess a downmix for
        # an unknown layout) unless the probe did not say, then let ffmpeg make mono.
        self._out_channels = channels if channels >= 1 else 1
        self._mixer = _PolarityMixer(self._out_channels) if self._out_channels > 1 else None
        self._frame_bytes = 2 * self._out_channels

        self._stderr_tail: deque[bytes] = deque()
        self._proc = self._spawn()
        self._finalizer = weakref.finalize(self, _terminate, self._proc)
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._stdout = self._proc.stdout
        self._stderr_thread = threading.Thread(
            target=_drain,
            args=(self._proc.stderr, self._stderr_tail),
            name="ffmpeg-stderr",
            daemon=True,
        )
        self._stderr_thread.start()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._stdout, selectors.EVENT_READ)
        self._pending: NDArray[np.int16] | None = None
        try:
            self._pending = self._next_block()
        except BaseException:
            self.close()
            raise

    # -- process ---------------------------------------------------------------------------

    def _command(self) -> list[str]:
        demuxer = self.info.format_name.split(",")[0]
        return [
            _tool("ffmpeg"),
            "-nostdin",
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file",
            # input seeking (before -i): resuming a durable job must not decode what it skips
            *(["-ss", f"{self.start_seconds:.6f}"] if self.start_seconds > 0 else []),
            "-f",
            demuxer,
            "-i",
            _input_url(self.path),
            "-map",
            "0:a:0",
            "-vn",
            "-sn",
            "-dn",
            "-f",
            "s16le",
            "-acodec",
            "pcm_s16le",
            "-ar",
            str(SAMPLE_RATE),
            "-ac",
            str(self._out_channels),
            "pipe:1",
        ]

    def _spawn(self) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
            )
        except FileNotFoundError as exc:
            raise FfmpegMissing(f"ffmpeg could not be started; {_FFMPEG_FIX}") from exc

    def _stderr_text(self) -> str:
        self._stderr_thread.join(timeout=5)
        return _clean(b"".join(self._stderr_tail).decode("utf-8", "replace"), self.path)

    # -- reading ---------------------------------------------------------------------------

    def _read_into(self, view: memoryview) -> int:
        """One read from ffmpeg's stdout: bytes read, 0 at the end of the stream."""
        while True:
            if self._closed:
                return 0
            if not self._selector.select(timeout=self.stall_timeout):
                raise UnsupportedAudio(
                    f"decoding stalled: ffmpeg produced no audio for {self.stall_timeout:g} s"
                )
            got = self._stdout.readinto(view)  # type: ignore[attr-defined]
            if got is not None:
                return int(got)

    def _next_block(self) -> NDArray[np.int16] | None:
        """Decode the next block, or ``None`` at the (checked) end of the stream."""
        with self._io_lock:
            if self._closed or self._completed:
                return None
            want = self.block_samples * self._frame_bytes
            buffer = bytearray(want)
            view = memoryview(buffer)
            filled = 0
            while filled < want:
                got = self._read_into(view[filled:])
                if got == 0:
                    break
                filled += got
            view.release()
            if self._closed:
                return None
            frames = filled // self._frame_bytes
            if frames == 0:
                self._finish()
                return None
        raw = np.frombuffer(buffer, dtype="<i2", count=frames * self._out_channels)
        raw = raw.astype(np.int16, copy=False)
        if self._mixer is None:
            block = raw
        else:
            block = self._mixer.mix(raw.reshape(frames, self._out_channels))
        self.total_samples += frames
        if self._max_samples and self.total_samples > self._max_samples:
            self.close()
            raise _too_long(self.max_seconds, self.max_seconds, at_least=True)
        return block

    def _finish(self) -> None:
        """End of stream: check how ffmpeg ended and that anything was decoded at all."""
        try:
            status = self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            status = None
        if status != 0:
            stderr = self._stderr_text()
            self.close()
            reason = _last_line(stderr) or (
                "ffmpeg did not exit" if status is None else f"ffmpeg exited with {status}"
            )
            raise UnsupportedAudio(f"the audio could not be decoded ({reason})", detail=stderr)
        if self.total_samples == 0:
            stderr = self._stderr_text()
            self.close()
            raise EmptyAudio("the file contains no audio samples", detail=stderr)
        self._completed = True
        self._release()

    # -- public API ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[NDArray[np.int16]]:
        return self

    def __next__(self) -> NDArray[np.int16]:
        pending = self._pending
        if pending is not None:
            self._pending = None
            return pending
        try:
            block = self._next_block()
        except BaseException:
            self.close()
            raise
        if block is None:
            raise StopIteration
        return block

    def __enter__(self) -> PcmReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _release(self) -> None:
        self._finalizer()  # kills (if needed), reaps, closes the pipes; runs once
        if self._selector.get_map() is not None:
            self._selector.close()

    def close(self) -> None:
        """Stop decoding and kill ffmpeg. Idempotent; safe from any thread."""
        if self._closed:
            return
        self._closed = True
        if self._proc.poll() is None:
            with contextlib.suppress(OSError):
                self._proc.kill()  # unblocks a reader waiting in another thread
        with self._io_lock:
            self._pending = None
            self._release()

    @property
    def completed(self) -> bool:
        """True once the whole file was decoded (false when closed early or failed)."""
        return self._completed

    @property
    def closed(self) -> bool:
        return self._closed or self._completed

    @property
    def duration(self) -> float:
        """Seconds decoded so far; the file's real length once :attr:`completed`."""
        return self.total_samples / SAMPLE_RATE

    @property
    def pid(self) -> int:
        """Process id of the ffmpeg child (for diagnostics and tests)."""
        return self._proc.pid


class WavReader:
    """16 kHz mono 16-bit PCM WAV read straight from the file, with :class:`PcmReader`'s API.

    Such a file is already what the model wants, so starting ffmpeg (~0.1 s, a process per
    request) would only copy it. Same contract: blocks of at most ``block_samples``,
    ``max_seconds`` checked up front and while reading, :class:`EmptyAudio` at open for a file
    without samples, ``close()`` safe from any thread.
    """

    def __init__(
        self,
        path: Path,
        info: AudioInfo,
        *,
        max_seconds: float = 0.0,
        block_samples: int = DEFAULT_BLOCK_SAMPLES,
        start_seconds: float = 0.0,
    ) -> None:
        _check_start(start_seconds)
        if info.data_offset is None or not info.is_plain_16k_mono:
            raise ValueError("WavReader reads 16 kHz mono 16-bit PCM WAV only")
        self.path = path
        self.info = info
        self.max_seconds = float(max_seconds)
        self.block_samples = int(block_samples)
        self.total_samples = 0
        self._max_samples = round(self.max_seconds * SAMPLE_RATE) if self.max_seconds else 0
        if self._max_samples and (info.duration or 0.0) > self.max_seconds:
            raise _too_long(info.duration or 0.0, self.max_seconds)
        self._remaining = round((info.duration or 0.0) * SAMPLE_RATE)
        skip = min(round(start_seconds * SAMPLE_RATE), self._remaining)  # resuming a job
        self._remaining -= skip
        self._completed = False
        self._closed = False
        self._lock = threading.Lock()
        self._file = path.open("rb")
        self._file.seek(info.data_offset + 2 * skip)
        self._pending: NDArray[np.int16] | None = None
        try:
            self._pending = self._next_block()
        except BaseException:
            self.close()
            raise

    def _next_block(self) -> NDArray[np.int16] | None:
        with self._lock:
            if self._closed or self._completed:
                return None
            want = min(self.block_samples, self._remaining)
            data = self._file.read(2 * want) if want > 0 else b""
            frames = len(data) // 2
            if frames == 0:
                if self.total_samples == 0:
                    self._closed = True
                    self._file.close()
                    raise EmptyAudio("the file contains no audio samples")
                self._completed = True
                self._file.close()
                return None
            self._remaining -= frames
        block = np.frombuffer(bytearray(data[: 2 * frames]), dtype="<i2").astype(np.int16)
        self.total_samples += frames
        if self._max_samples and self.total_samples > self._max_samples:
            self.close()
            raise _too_long(self.max_seconds, self.max_seconds, at_least=True)
        return block

    def __iter__(self) -> Iterator[NDArray[np.int16]]:
        return self

    def __next__(self) -> NDArray[np.int16]:
        pending = self._pending
        if pending is not None:
            self._pending = None
            return pending
        block = self._next_block()
        if block is None:
            raise StopIteration
        return block

    def __enter__(self) -> WavReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading. Idempotent; safe from any thread."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._pending = None
                self._file.close()

    @property
    def completed(self) -> bool:
        return self._completed

    @property
    def closed(self) -> bool:
        return self._closed or self._completed

    @property
    def duration(self) -> float:
        return self.total_samples / SAMPLE_RATE


#: What :func:`decode_pcm` hands back: the ffmpeg pipe, or the file itself when it needs none.
PcmStream = PcmReader | WavReader


def decode_pcm(
    path: str | os.PathLike[str],
    *,
    max_seconds: float = 0.0,
    block_samples: int = DEFAULT_BLOCK_SAMPLES,
    info: AudioInfo | None = None,
    stall_timeout: float = STALL_TIMEOUT_S,
    start_seconds: float = 0.0,
) -> PcmStream:
    """Open ``path`` for streaming decoding; see :class:`PcmReader`.

    ``max_seconds`` is ``MAX_AUDIO_SECONDS`` (0 = unlimited). Pass ``info`` when the file was
    already probed to skip a second ffprobe run. A 16 kHz mono 16-bit PCM WAV is read directly
    (:class:`WavReader`); everything else goes through ffmpeg. ``start_seconds`` skips the
    beginning (a resumed job); an offset at or past the end gives :class:`EmptyAudio`.
    """
    _check_arguments(max_seconds, block_samples, stall_timeout)
    file = _check_path(path)
    info = info if info is not None else probe(file)
    if info.is_plain_16k_mono:
        return WavReader(
            file,
            info,
            max_seconds=max_seconds,
            block_samples=block_samples,
            start_seconds=start_seconds,
        )
    return PcmReader(
        file,
        max_seconds=max_seconds,
        block_samples=block_samples,
        info=info,
        stall_timeout=stall_timeout,
        start_seconds=start_seconds,
    )


def load_audio(path: str | os.PathLike[str], *, max_seconds: float = 0.0) -> NDArray[np.int16]:
    """The whole file as one 16 kHz mono int16 array: for short audio and tests only."""
    with decode_pcm(path, max_seconds=max_seconds) as reader:
        blocks = list(reader)
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int16)
