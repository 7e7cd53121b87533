"""The entry points every caller uses: :func:`probe` a file, :func:`decode_pcm` it, or hand
the pipeline a :class:`PcmSource` (:class:`FileSource` here, pushed audio in
:mod:`~gigaam_api.audio.pushed`).

They pick the cheapest way in: a 16 kHz mono 16-bit PCM WAV is described from its header and
read straight from the file in this process (:class:`~gigaam_api.audio.readers.WavReader`);
everything else is described and decoded by FFmpeg in a decoder worker process
(:mod:`gigaam_api.audio.decoder`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from gigaam_api.audio import decoder
from gigaam_api.audio.probe import AudioInfo, check_file, read_wav_header
from gigaam_api.audio.readers import DEFAULT_BLOCK_SAMPLES, PcmStream, WavReader, check_arguments
from gigaam_api.constants import SAMPLE_RATE

__all__ = ["FileSource", "PcmSource", "decode_pcm", "load_audio", "probe", "read_spans"]


def probe(path: str | os.PathLike[str], *, timeout: float = decoder.PROBE_TIMEOUT_S) -> AudioInfo:
    """Describe the first audio stream of ``path``, judging the format by its content.

    Raises :class:`~gigaam_api.audio.errors.AudioNotFound`, ``EmptyAudio`` (zero-byte file),
    ``UnsupportedAudio`` (not decodable, refused container, probe timeout), ``NoAudioStream``,
    ``DecoderCrashed`` or ``FfmpegMissing``.
    """
    file = check_file(path)
    quick = read_wav_header(file)
    if quick is not None:
        return quick
    return decoder.probe_file(file, timeout=timeout)


def decode_pcm(
    path: str | os.PathLike[str],
    *,
    max_seconds: float = 0.0,
    block_samples: int = DEFAULT_BLOCK_SAMPLES,
    info: AudioInfo | None = None,
    stall_timeout: float = decoder.STALL_TIMEOUT_S,
    start_seconds: float = 0.0,
) -> PcmStream:
    """Open ``path`` for streaming decoding; see :class:`~gigaam_api.audio.readers.PcmStream`.

    ``max_seconds`` is ``MAX_AUDIO_SECONDS`` (0 = unlimited). Pass ``info`` when the file was
    already probed to skip a second probe. ``start_seconds`` starts reading there (a resumed
    job), exact to the sample: a plain WAV is read from that offset; anything else is decoded
    from the beginning by the worker, which drops what precedes it (a container seek is not
    sample-exact for every codec; skipping costs ~2 s of decoding per hour skipped).
    """
    check_arguments(max_seconds, block_samples, stall_timeout)
    file = check_file(path)
    info = info if info is not None else probe(file)
    if info.is_plain_16k_mono:
        return WavReader(
            file,
            info,
            max_seconds=max_seconds,
            block_samples=block_samples,
            start_seconds=start_seconds,
        )
    return decoder.PcmReader(
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


def read_spans(source: PcmSource, spans: Sequence[tuple[float, float]]) -> list[NDArray[np.int16]]:
    """Stretches [start, end) seconds of a source's audio, in time order, 16 kHz mono int16
    (shorter where the audio ends): what a resumed job's speaker labelling reads again. One
    pass from the first start, keeping only the stretches (a few windows of speech may lie
    far apart); exact to the sample, as :meth:`PcmSource.open` is from ``start_seconds``."""
    if not spans:
        return []
    origin = spans[0][0]
    bounds = [
        (round((start - origin) * SAMPLE_RATE), round((end - origin) * SAMPLE_RATE))
        for start, end in spans
    ]
    last = max(end for _, end in bounds)
    parts: list[list[NDArray[np.int16]]] = [[] for _ in spans]
    position = 0
    with source.open(start_seconds=origin) as reader:
        for block in reader:
            after = position + len(block)
            for part, (start, end) in zip(parts, bounds, strict=True):
                if start < after and end > position:
                    part.append(block[max(start, position) - position : min(end, after) - position])
            position = after
            if position >= last:
                break
    return [np.concatenate(p) if p else np.zeros(0, dtype=np.int16) for p in parts]


@runtime_checkable
class PcmSource(Protocol):
    """Where a transcription's audio comes from: a file, or PCM a door pushes.

    ``duration`` is the length when known up front (a probed file) or once the audio ended
    (pushed audio), else ``None``; :meth:`open` gives the 16 kHz mono stream from
    ``start_seconds`` on, refusing audio past ``max_seconds`` (0 = unlimited). :meth:`abort`
    is how a cancelled session stops whatever feeds the source, from any thread: pushed audio
    ends, waking a reader that waits for more (a file has no feeder: its reader is closed by
    the pipeline's own cancel).
    """

    @property
    def duration(self) -> float | None: ...

    def open(self, *, max_seconds: float = 0.0, start_seconds: float = 0.0) -> PcmStream: ...

    def abort(self) -> None: ...


class FileSource:
    """A file on disk as a :class:`PcmSource`.

    Probed on first use — by the pipeline, on the thread that runs it, not by the door that
    made the source — so a missing, corrupt, empty or (by its header) over-long file raises its
    typed :class:`~gigaam_api.audio.errors.AudioError` before any output is produced. Pass
    ``info`` when the file was already probed.
    """

    def __init__(self, path: str | os.PathLike[str], *, info: AudioInfo | None = None) -> None:
        self.path = Path(path)
        self._info = info

    @property
    def info(self) -> AudioInfo:
        if self._info is None:
            self._info = probe(self.path)
        return self._info

    @property
    def duration(self) -> float | None:
        return self.info.duration

    def open(self, *, max_seconds: float = 0.0, start_seconds: float = 0.0) -> PcmStream:
        return decode_pcm(
            self.path, max_seconds=max_seconds, info=self.info, start_seconds=start_seconds
        )

    def abort(self) -> None:
        """Nothing to do: no one feeds a file, and the pipeline's cancel closes its reader."""
