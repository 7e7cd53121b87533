"""The decoder worker: FFmpeg's libraries (PyAV) in a process of their own.

Run as ``python -m gigaam_api.audio.decoder_worker``; :mod:`gigaam_api.audio.decoder` starts
and talks to it over its stdin/stdout in the frames of :mod:`gigaam_api.audio.protocol`.
FFmpeg parses hostile uploads, and a crash in one of its decoders (a SIGSEGV) would take the
whole server down if it ran in the serving process; here it ends only this process, the request
it was serving fails, and the next request gets a fresh worker. A worker serves one request at
a time and stays alive between requests, so a short MP3 costs no process start.

What it guarantees, request by request:

* **Format from the bytes.** FFmpeg probes the content; the name is never used. A decode is
  pinned to the demuxer the probe found, so probe and decode cannot disagree.
* **Nothing else is opened.** The input is opened as ``file:<path>`` with
  ``protocol_whitelist=file`` and a ``format_whitelist`` of every demuxer except those that open
  other resources named inside the file (playlists, concat scripts, SDP, image sequences), so
  such a file is refused before FFmpeg reads what it names.
* **Channels kept, then mixed.** libswresample resamples to 16 kHz keeping the channel layout,
  and :class:`~gigaam_api.audio.mix.PolarityMixer` mixes (channels in opposite polarity must not
  cancel), in blocks of the requested size — the one conversion of
  :mod:`~gigaam_api.audio.convert`, which pushed audio goes through too.
* **Bounded.** Each block is written to a pipe; when the consumer is slow the write blocks, so
  the worker never runs more than a pipe buffer ahead.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from collections.abc import Iterator
from typing import IO, Any, Final

import numpy as np
from numpy.typing import NDArray

from gigaam_api.audio import protocol
from gigaam_api.audio.convert import BlockMixer, new_resampler
from gigaam_api.constants import SAMPLE_RATE

__all__ = ["UNSAFE_DEMUXERS", "main"]

#: Demuxers that read other files or URLs named inside the input: refused for uploads.
UNSAFE_DEMUXERS: Final = frozenset(
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


class Refused(Exception):
    """A request that fails with an :class:`~gigaam_api.audio.errors.AudioError` of ``kind``."""

    def __init__(self, kind: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail


def _safe_demuxers(av: Any) -> str:
    names: list[str] = []
    for name in sorted(av.formats_available):
        if name in UNSAFE_DEMUXERS:
            continue
        try:
            av.ContainerFormat(name, "r")
        except ValueError:
            continue  # a muxer only
        names.append(name)
    return ",".join(names)


def _log_text(logs: list[tuple[int, str, str]]) -> str:
    return "\n".join(
        f"[{name}] {message.strip()}" if name else message.strip() for _, name, message in logs
    )


def _last_line(logs: list[tuple[int, str, str]], fallback: str) -> str:
    import av.logging

    errors = [m.strip() for level, _, m in logs if level <= av.logging.ERROR and m.strip()]
    return errors[-1] if errors else fallback


class Worker:
    """One worker's state: the PyAV module and the demuxer whitelist (computed once)."""

    def __init__(self) -> None:
        import av
        import av.logging

        self.av = av
        # FFmpeg's messages are read where they matter (the open, through av.logging.Capture)
        # and otherwise dropped: a damaged file can log thousands of lines into the server log.
        quiet = logging.getLogger("libav")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        av.logging.set_level(av.logging.ERROR)
        av.logging.set_skip_repeated(False)  # the whitelist refusal is read from the log
        self.whitelist = _safe_demuxers(av)

    # -- opening and describing ------------------------------------------------------------

    def _open(self, path: str, demuxer: str | None) -> Any:
        av = self.av
        with av.logging.Capture() as logs:
            try:
                return av.open(
                    f"file:{path}",  # `file:` keeps a name like `http:x` from being a protocol
                    format=demuxer,
                    options={"protocol_whitelist": "file", "format_whitelist": self.whitelist},
                    metadata_errors="ignore",
                )
            except av.FFmpegError as exc:
                refused = [name for _, name, m in logs if "not on whitelist" in m]
                if refused:
                    raise Refused(
                        "unsupported",
                        f"the {refused[0]} format refers to other files or URLs and is not "
                        "accepted; upload the audio itself",
                        _log_text(logs),
                    ) from exc
                reason = _last_line(logs, exc.strerror or type(exc).__name__)
                raise Refused(
                    "unsupported",
                    f"the file is not audio that can be decoded ({reason})",
                    _log_text(logs),
                ) from exc

    def _describe(self, container: Any) -> dict[str, Any]:
        format_name = str(container.format.name)
        if set(format_name.split(",")) & UNSAFE_DEMUXERS:
            raise Refused(
                "unsupported",
                f"the {format_name} format refers to other files or URLs and is not accepted; "
                "upload the audio itself",
            )
        streams = list(container.streams)
        audio = [s for s in streams if s.type == "audio"]
        if not audio:
            kinds = sorted({str(s.type) for s in streams})
            found = f" (it holds only: {', '.join(kinds)})" if kinds else ""
            raise Refused("no_audio_stream", f"the file has no audio stream{found}")
        first = audio[0]
        duration: float | None = None
        if first.duration is not None and first.time_base is not None:
            duration = float(first.duration * first.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        if duration is not None and not (math.isfinite(duration) and duration >= 0):
            duration = None
        context = first.codec_context
        return {
            "duration": duration,
            "sample_rate": int(context.sample_rate or 0),
            "channels": int(context.channels or 0),
            "codec": str(context.codec.canonical_name),
            "format_name": format_name,
        }

    def probe(self, path: str) -> dict[str, Any]:
        container = self._open(path, None)
        try:
            return self._describe(container)
        finally:
            container.close()

    # -- decoding --------------------------------------------------------------------------

    def _frames(self, container: Any, stream: Any) -> Iterator[Any]:
        """Decoded frames of ``stream``, undecodable packets skipped as the ffmpeg tool does:
        a damaged stretch in the middle of a recording costs that stretch, not the file."""
        av = self.av
        errors = 0
        last_error = ""
        produced = False
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                errors += 1
                last_error = str(exc)
                continue
            for frame in frames:
                produced = True
                yield frame
        if errors and not produced:
            raise Refused("unsupported", f"the audio could not be decoded ({last_error})")

    def decode(self, request: dict[str, Any], out: IO[bytes]) -> None:
        container = self._open(str(request["path"]), request.get("demuxer") or None)
        try:
            info = self._describe(container)
            out.write(protocol.encode_json(protocol.INFO, info))
            block_samples = int(request["block_samples"])
            start = float(request.get("start_seconds") or 0.0)
            # Output samples still to drop before `start`. Decoding from the beginning and
            # dropping is exact for every codec; a container seek is not (an MP3 seek lands
            # in timestamps that ignore the encoder padding the full decode removes), and
            # the decoder runs at hundreds of times real time, so this costs seconds per hour.
            skip = round(start * SAMPLE_RATE)
            stream = container.streams.audio[0]
            resampler: Any = None
            blocks: BlockMixer | None = None
            sent = 0

            def send(mono_blocks: list[NDArray[np.int16]]) -> None:
                nonlocal sent
                for mono in mono_blocks:
                    out.write(protocol.encode(protocol.BLOCK, mono.astype("<i2").tobytes()))
                    sent += mono.shape[0]

            for frame in self._frames(container, stream):
                if resampler is None or blocks is None:
                    resampler = new_resampler(self.av, frame.layout, block_samples)
                    blocks = BlockMixer(frame.layout.nb_channels, block_samples, skip=skip)
                for resampled in resampler.resample(frame):
                    send(blocks.add(resampled.to_ndarray()))
            if resampler is not None and blocks is not None:
                for resampled in resampler.resample(None):
                    send(blocks.add(resampled.to_ndarray()))
                send(blocks.finish())
            out.write(protocol.encode_json(protocol.END, {"samples": sent}))
        finally:
            container.close()


def _serve(worker: Worker, requests: IO[bytes], out: IO[bytes]) -> None:
    while True:
        frame = protocol.read_frame(requests)
        if frame is None:
            return
        request = protocol.decode_json(frame[1])
        try:
            if request.get("op") == "probe":
                out.write(protocol.encode_json(protocol.INFO, worker.probe(str(request["path"]))))
            else:
                worker.decode(request, out)
        except Refused as refused:
            out.write(
                protocol.encode_json(
                    protocol.ERROR,
                    {"kind": refused.kind, "message": refused.message, "detail": refused.detail},
                )
            )
        except worker.av.FFmpegError as exc:
            out.write(
                protocol.encode_json(
                    protocol.ERROR,
                    {
                        "kind": "unsupported",
                        "message": f"the audio could not be decoded ({exc.strerror or exc})",
                        "detail": str(exc),
                    },
                )
            )


def main() -> int:
    """Serve requests from stdin until it closes; the protocol owns stdout."""
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # a stray print (or an FFmpeg message) must not corrupt the frames
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    try:
        worker = Worker()
    except ImportError as exc:
        out.write(
            protocol.encode_json(
                protocol.ERROR,
                {
                    "kind": "missing",
                    "message": f"the audio decoder could not start: PyAV is not installed ({exc})",
                    "detail": "",
                },
            )
        )
        return 1
    out.write(protocol.encode(protocol.READY, b""))
    with contextlib.suppress(BrokenPipeError):  # the server went away or cancelled
        _serve(worker, requests, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
