"""Everything that runs ffmpeg or ffprobe: describing a file, and decoding it on a pipe.

This is the only module that starts a decoder process, so replacing the decoder touches only
this file. Why it is built this way:

* **ffmpeg in a subprocess, read from a pipe.** ffmpeg decodes every container and codec users
  send, and reading its stdout block by block means a 10-hour file costs what a 10-second one
  costs. The child is owned by a :class:`PcmReader`: it is killed on ``close()``, on leaving
  the ``with`` block, on any error and when the reader is garbage-collected, so it never
  outlives its request.
* **Format sniffed from the bytes.** ``ffprobe`` looks at the content; the file name is never
  used to pick a decoder (an MP3 named ``.wav`` decodes as MP3). The decoder is then pinned to
  the demuxer the probe found, so probe and decode cannot disagree.
* **Untrusted input.** Only the ``file`` protocol is allowed, and demuxers that open *other*
  resources named inside the file (HLS/DASH playlists, concat scripts, SDP, image sequences)
  are refused, so an upload cannot make the server read other local files or fetch URLs.
* **Channels kept.** ffmpeg resamples but keeps every channel; :mod:`gigaam_api.audio.mix`
  mixes them so that channels in opposite polarity do not cancel.
* **No hangs.** ffmpeg's stderr is drained by a thread into a bounded buffer (a full stderr pipe
  would block ffmpeg and us with it), the probe has a timeout, and a decoder that produces no
  output for ``stall_timeout`` seconds is killed. Errors carry ffmpeg's own words, stripped of
  server paths.
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
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
from numpy.typing import NDArray

from gigaam_api.audio.errors import FfmpegMissing, NoAudioStream, UnsupportedAudio
from gigaam_api.audio.mix import PolarityMixer
from gigaam_api.audio.probe import MAX_CHANNELS, AudioInfo, check_file
from gigaam_api.audio.readers import DEFAULT_BLOCK_SAMPLES, PcmStream, check_arguments, check_start
from gigaam_api.constants import SAMPLE_RATE

__all__ = ["PROBE_TIMEOUT_S", "STALL_TIMEOUT_S", "PcmReader", "ffprobe", "require"]

#: Seconds ffprobe may take before the file is declared undecodable.
PROBE_TIMEOUT_S: Final = 30.0
#: Seconds the decoder may go without producing any output before it is declared stuck.
STALL_TIMEOUT_S: Final = 60.0
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


# --- probing -----------------------------------------------------------------------------------


def require(name: str) -> str:
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


def ffprobe(file: Path, *, timeout: float = PROBE_TIMEOUT_S) -> AudioInfo:
    """Describe the first audio stream of ``file`` (already checked) with ffprobe.

    Raises :class:`UnsupportedAudio` (not decodable, refused container, probe timeout),
    :class:`NoAudioStream` or :class:`FfmpegMissing`.
    """
    ffprobe = require("ffprobe")
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


class PcmReader(PcmStream):
    """Decode ``path`` to 16 kHz mono int16 blocks, incrementally, with ffmpeg on a pipe.

    The :class:`~gigaam_api.audio.readers.PcmStream` contract; on top of it, iteration raises
    :class:`UnsupportedAudio` if ffmpeg fails or stalls mid-way. Without ``info`` the file is
    described with ffprobe first.
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
        check_arguments(max_seconds, block_samples, stall_timeout)
        check_start(start_seconds)
        self.start_seconds = float(start_seconds)
        file = check_file(path)
        info = info if info is not None else ffprobe(file)
        super().__init__(file, info, max_seconds=max_seconds, block_samples=block_samples)
        self.stall_timeout = float(stall_timeout)
        self._io_lock = threading.RLock()

        channels = self.info.channels
        if channels > MAX_CHANNELS:
            raise UnsupportedAudio(
                f"{channels} audio channels are more than the {MAX_CHANNELS} supported"
            )
        # Keep every channel (same count in and out: ffmpeg never has to guess a downmix for
        # an unknown layout) unless the probe did not say, then let ffmpeg make mono.
        self._out_channels = channels if channels >= 1 else 1
        self._mixer = PolarityMixer(self._out_channels) if self._out_channels > 1 else None
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
        self._open()

    # -- process ---------------------------------------------------------------------------

    def _command(self) -> list[str]:
        demuxer = self.info.format_name.split(",")[0]
        return [
            require("ffmpeg"),
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

    def _read_block(self) -> NDArray[np.int16] | None:
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
            return raw
        return self._mixer.mix(raw.reshape(frames, self._out_channels))

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
            raise self._no_samples(stderr)
        self._completed = True
        self._release()

    # -- stopping --------------------------------------------------------------------------

    def _release(self) -> None:
        self._finalizer()  # kills (if needed), reaps, closes the pipes; runs once
        if self._selector.get_map() is not None:
            self._selector.close()

    def _stop(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(OSError):
                self._proc.kill()  # unblocks a reader waiting in another thread
        with self._io_lock:
            self._release()

    @property
    def pid(self) -> int:
        """Process id of the ffmpeg child (for diagnostics and tests)."""
        return self._proc.pid
