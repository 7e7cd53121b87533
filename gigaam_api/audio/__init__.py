"""Any audio file → a stream of 16 kHz mono int16 blocks, in bounded memory.

The package face: callers import from here. Inside, one module per idea —
:mod:`~gigaam_api.audio.errors` (the typed error family), :mod:`~gigaam_api.audio.probe`
(what a file holds; the RIFF header reader), :mod:`~gigaam_api.audio.mix` (polarity-safe
mixdown), :mod:`~gigaam_api.audio.readers` (the one reader contract and the WAV reader),
:mod:`~gigaam_api.audio.decoder` (the decoder worker pool and its reader; FFmpeg itself runs
only in :mod:`~gigaam_api.audio.decoder_worker` processes, spoken to in the frames of
:mod:`~gigaam_api.audio.protocol`), :mod:`~gigaam_api.audio.convert` (the one resample-and-mix
chain to 16 kHz mono), :mod:`~gigaam_api.audio.pushed` (raw PCM a door pushes, converted as it
arrives) and :mod:`~gigaam_api.audio.source` (``probe`` / ``decode_pcm`` / ``FileSource``:
pick the reader).
"""

from gigaam_api.audio.decoder import PcmReader, pool
from gigaam_api.audio.errors import (
    AudioError,
    AudioNotFound,
    AudioTooLong,
    DecoderCrashed,
    EmptyAudio,
    FfmpegMissing,
    NoAudioStream,
    UnsupportedAudio,
)
from gigaam_api.audio.probe import AudioInfo
from gigaam_api.audio.pushed import PushedAudio, RawFormat, RawFormatError
from gigaam_api.audio.readers import DEFAULT_BLOCK_SAMPLES, PcmStream, WavReader
from gigaam_api.audio.source import (
    FileSource,
    PcmSource,
    decode_pcm,
    load_audio,
    probe,
    read_spans,
)

__all__ = [
    "DEFAULT_BLOCK_SAMPLES",
    "AudioError",
    "AudioInfo",
    "AudioNotFound",
    "AudioTooLong",
    "DecoderCrashed",
    "EmptyAudio",
    "FfmpegMissing",
    "FileSource",
    "NoAudioStream",
    "PcmReader",
    "PcmSource",
    "PcmStream",
    "PushedAudio",
    "RawFormat",
    "RawFormatError",
    "UnsupportedAudio",
    "WavReader",
    "decode_pcm",
    "load_audio",
    "pool",
    "probe",
    "read_spans",
]
