"""Streaming decoding: every corpus file, typed errors, limits, mixdown, the decoder workers.

Reference durations are the corpus' own 16 kHz mono copies (``wav16k/``) where they exist:
the manifest lists container durations, and an MP3's container duration includes the
encoder's padding (``pisets.mp3``: 3.312 s listed, 3.234 s of audio).
"""

from __future__ import annotations

import csv
import gc
import os
import shutil
import signal
import struct
import threading
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from gigaam_api import audio
from gigaam_api.audio import (
    AudioError,
    AudioInfo,
    AudioNotFound,
    AudioTooLong,
    DecoderCrashed,
    EmptyAudio,
    FfmpegMissing,
    NoAudioStream,
    PcmReader,
    UnsupportedAudio,
    decode_pcm,
    probe,
    source,
)
from gigaam_api.audio.probe import read_wav_header
from tests import media
from tests.conftest import CORPUS_DIR

SR = 16000
#: Largest sample difference to the ffmpeg 5.1 tool's output (of 32768: below -76 dBFS).
RESAMPLE_LSB = 8
#: Files whose start differs by the codec's pre-roll (see the test that uses it).
PREROLL_DIFFERS = {"edge_cases/pisets.webm"}
#: A decode that takes longer than this is treated as hung (the watchdog closes the reader).
WATCHDOG_S = 30.0
#: Files whose reference status says they are not audio at all, and the error they must give.
INVALID = {
    "pisets/empty_mono.wav": EmptyAudio,  # valid 44-byte header, zero samples
    "pisets/incorrect_sampling_freq.wav": EmptyAudio,  # header only, declares 8 kHz
    "pisets/notsound.wav": UnsupportedAudio,  # text bytes named .wav
    "pisets/unknown_sound": UnsupportedAudio,  # non-audio bytes, no extension
}


def _manifest() -> dict[str, dict[str, str]]:
    path = CORPUS_DIR / "manifest.tsv"
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["path"]: row for row in csv.DictReader(handle, delimiter="\t")}


MANIFEST = _manifest()
CORPUS_FILES = sorted(
    rel for rel in MANIFEST if rel.startswith(("edge_cases/", "pisets/")) and "/wav16k/" not in rel
)


def _wav16k_copy(rel: str) -> Path | None:
    folder, name = rel.rsplit("/", 1)
    for candidate in (f"{name}.wav", name):
        path = CORPUS_DIR / folder / "wav16k" / candidate
        if path.is_file():
            return path
    return None


def _read_wav(path: Path) -> NDArray[np.int16]:
    with wave.open(str(path)) as handle:
        assert handle.getsampwidth() == 2 and handle.getnchannels() == 1
        return np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2").astype(np.int16)


def _write_wav(path: Path, frames: NDArray[Any], rate: int = SR) -> Path:
    """``frames``: ``[n]`` or ``[n, channels]`` int16."""
    data = np.asarray(frames, dtype=np.int16)
    channels = 1 if data.ndim == 1 else data.shape[1]
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(data.astype("<i2").tobytes())
    return path


def _rms(x: NDArray[Any]) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2))) if len(x) else 0.0


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _decode_all(path: Path, **kwargs: Any) -> tuple[NDArray[np.int16], PcmReader]:
    """Decode with a watchdog: a reader still running after WATCHDOG_S is closed (= hung)."""
    reader = decode_pcm(path, stall_timeout=WATCHDOG_S, **kwargs)
    watchdog = threading.Timer(WATCHDOG_S, reader.close)
    watchdog.start()
    try:
        with reader:
            blocks = list(reader)
    finally:
        watchdog.cancel()
    assert reader.completed, f"{path.name}: decoding hung and was stopped by the watchdog"
    pcm = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int16)
    return pcm, reader


@pytest.fixture
def pisets(corpus_dir: Path) -> Path:
    return corpus_dir / "pisets" / "test_sound_ru.wav"


@pytest.fixture(scope="module")
def long_silence(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s of silence as FLAC: a file that needs the decoder worker (16 kHz mono PCM WAV is
    read directly), for the tests about the worker's lifetime."""
    flac = tmp_path_factory.mktemp("long") / "silence_60s.flac"
    silence = _read_wav(corpus_dir / "edge_cases" / "silence_digital_60s_16k.wav")
    return media.encode(flac, silence, codec="flac")


# --- every corpus file -------------------------------------------------------------------------


@pytest.mark.parametrize("rel", CORPUS_FILES)
def test_corpus_file_decodes_to_its_duration_or_fails_typed(corpus_dir: Path, rel: str) -> None:
    path = corpus_dir / rel
    expected_error = INVALID.get(rel)
    if expected_error is not None:
        with pytest.raises(expected_error) as caught:
            _decode_all(path)
        assert caught.value.message and caught.value.user_error
        assert str(path.parent) not in caught.value.message  # no server paths leak out
        return
    row = MANIFEST[rel]
    pcm, reader = _decode_all(path)
    copy = _wav16k_copy(rel)
    expected = len(_read_wav(copy)) / SR if copy else float(row["duration_s"])
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert len(pcm) == reader.total_samples
    assert reader.duration == pytest.approx(expected, abs=0.05)
    info = reader.info
    assert info.sample_rate == int(row["sample_rate"])
    assert info.channels == int(row["channels"])
    if info.duration is not None and float(row["duration_s"]) > 0:
        assert info.duration == pytest.approx(float(row["duration_s"]), abs=0.1)


@pytest.mark.parametrize(
    "rel",
    [rel for rel in CORPUS_FILES if _wav16k_copy(rel) is not None and rel not in INVALID],
)
def test_decoded_samples_match_ffmpeg_reference_copy(corpus_dir: Path, rel: str) -> None:
    """The corpus' 16 kHz copies were made by the ffmpeg 5.1 tool; the decoder is FFmpeg 8's
    libraries, whose resampler rounds a little differently: at most RESAMPLE_LSB apart. The
    one exception is Opus in WebM, whose codec pre-roll the ffmpeg tool cut by timestamp:
    it starts up to 5 ms earlier here (benchmarks/README.md, "Decoding")."""
    copy = _wav16k_copy(rel)
    assert copy is not None
    pcm, _ = _decode_all(corpus_dir / rel)
    reference = _read_wav(copy)
    if rel in PREROLL_DIFFERS:
        assert 0 <= len(pcm) - len(reference) <= SR // 200
        assert _rms(pcm) == pytest.approx(_rms(reference), rel=0.05)
        return
    assert len(pcm) == len(reference)
    assert np.abs(pcm.astype(np.int32) - reference).max() <= RESAMPLE_LSB


def test_format_is_sniffed_from_content_not_name(corpus_dir: Path) -> None:
    named_wav = corpus_dir / "edge_cases" / "pisets_mp3_named_as.wav"
    info = probe(named_wav)
    assert info.codec == "mp3" and info.format_name == "mp3"
    pcm, _ = _decode_all(named_wav)
    mp3, _ = _decode_all(corpus_dir / "edge_cases" / "pisets.mp3")
    assert len(pcm) == len(mp3) and _rms(pcm) > 500


def test_odd_file_names_are_not_options_or_protocols(pisets: Path, tmp_path: Path) -> None:
    for name in ("-y.wav", "http:example.wav", "a b%20c.wav"):
        target = tmp_path / name
        shutil.copy(pisets, target)
        _, reader = _decode_all(target)
        assert reader.duration == pytest.approx(3.234, abs=0.001)


# --- multichannel ------------------------------------------------------------------------------


def test_phase_inverted_stereo_is_not_cancelled(corpus_dir: Path, pisets: Path) -> None:
    inverted, _ = _decode_all(corpus_dir / "edge_cases" / "stereo_phase_inverted_pisets_16k.wav")
    mono, _ = _decode_all(pisets)
    assert _rms(inverted) > 0.9 * _rms(mono) > 0
    assert np.abs(inverted.astype(np.int32) - mono).max() <= 1  # right = -left → left


def test_dual_mono_and_one_sided_stereo_mix_like_ffmpeg(corpus_dir: Path, pisets: Path) -> None:
    mono, _ = _decode_all(pisets)
    dual, _ = _decode_all(corpus_dir / "edge_cases" / "stereo_dual_mono_pisets_16k.wav")
    assert np.array_equal(dual, mono)
    left_only, _ = _decode_all(
        corpus_dir / "edge_cases" / "stereo_left_speech_right_silent_16k.wav"
    )
    assert _rms(left_only) == pytest.approx(_rms(mono) / 2, rel=0.01)


def test_polarity_flip_in_the_middle_is_followed(tmp_path: Path) -> None:
    """Normal stereo for 6 s, then the right channel inverted: neither half may go silent."""
    rng = np.random.default_rng(1)
    t = np.arange(12 * SR) / SR
    speechlike = (np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))) * 8000
    speechlike += rng.normal(0, 300, t.size)
    left = speechlike.astype(np.int16)
    right = left.copy()
    right[6 * SR :] = -right[6 * SR :]
    path = _write_wav(tmp_path / "flip.wav", np.stack([left, right], axis=1))
    pcm, _ = _decode_all(path, block_samples=4096)
    per_second = [_rms(pcm[i * SR : (i + 1) * SR]) for i in range(12)]
    # One second of adaptation is allowed around the flip, nowhere else may it fall silent.
    allowed_dip = {6}
    for second, level in enumerate(per_second):
        if second not in allowed_dip:
            assert level > 0.5 * _rms(left[second * SR : (second + 1) * SR]), (second, per_second)


def test_independent_channels_are_plainly_averaged(tmp_path: Path) -> None:
    """A call recorded one speaker per channel (uncorrelated): no channel is flipped."""
    rng = np.random.default_rng(2)
    left = rng.normal(0, 3000, 5 * SR).astype(np.int16)
    right = rng.normal(0, 3000, 5 * SR).astype(np.int16)
    path = _write_wav(tmp_path / "call.wav", np.stack([left, right], axis=1))
    pcm, _ = _decode_all(path)
    average = np.rint((left.astype(np.int32) + right) / 2)
    assert np.abs(pcm - average).max() <= 1


@pytest.mark.parametrize(
    "gains",
    [(1.0, 0.8, -1.0, 0.5), (1.0, -1.0) * 6],
    ids=["4ch-one-inverted", "12ch-every-other-inverted"],
)
def test_many_channels_with_inverted_ones(tmp_path: Path, gains: tuple[float, ...]) -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0, 4000, 3 * SR)
    channels = np.stack([base * g for g in gains], axis=1).astype(np.int16)
    path = _write_wav(tmp_path / "multi.wav", channels)
    assert probe(path).channels == len(gains)
    pcm, _ = _decode_all(path)
    # polarity-aligned mean = mean(|gain|) of the base; a plain mean would be mean(gain)
    aligned = float(np.mean(np.abs(gains)))
    assert _rms(pcm) == pytest.approx(_rms(base) * aligned, rel=0.02)
    assert abs(np.mean(gains)) < 0.7 * aligned  # a plain mean would have lost a lot


def test_too_many_channels_is_a_typed_error(tmp_path: Path) -> None:
    path = _write_wav(tmp_path / "many.wav", np.zeros((1600, 65), dtype=np.int16))
    with pytest.raises(UnsupportedAudio, match="65 audio channels"):
        decode_pcm(path)


# --- errors ------------------------------------------------------------------------------------


def test_zero_byte_file_is_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(EmptyAudio):
        probe(empty)
    with pytest.raises(EmptyAudio):
        decode_pcm(empty)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioNotFound, match="not found"):
        probe(tmp_path / "nope.wav")
    with pytest.raises(AudioNotFound, match="not a regular file"):
        decode_pcm(tmp_path)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00" * 4096,
        bytes(np.random.default_rng(4).integers(0, 256, 20000, dtype=np.uint8)),
        b"RIFF\xff\xff\xff\xffWAVEfmt garbage",
        b"<html><body>not audio</body></html>",
    ],
    ids=["zeros", "random", "broken-riff", "html"],
)
def test_non_audio_bytes_are_unsupported(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "upload.mp3"
    path.write_bytes(payload)
    with pytest.raises((UnsupportedAudio, NoAudioStream)) as caught:
        _decode_all(path)
    assert str(tmp_path) not in caught.value.message


def test_truncated_container_is_unsupported(corpus_dir: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.m4a"
    cut.write_bytes((corpus_dir / "edge_cases" / "pisets.m4a").read_bytes()[:5000])
    with pytest.raises(UnsupportedAudio):
        _decode_all(cut)


def test_truncated_stream_decodes_what_is_there(corpus_dir: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp3"
    cut.write_bytes((corpus_dir / "edge_cases" / "pisets.mp3").read_bytes()[:10000])
    pcm, reader = _decode_all(cut)
    assert 0.5 < reader.duration < 3.3 and _rms(pcm) > 0


def test_garbage_in_the_middle_neither_hangs_nor_crashes(corpus_dir: Path, tmp_path: Path) -> None:
    """Thousands of decoder errors on stderr must not block the pipe (stderr is drained)."""
    data = bytearray((corpus_dir / "edge_cases" / "pisets.mp3").read_bytes())
    rng = np.random.default_rng(5)
    data[3000:20000] = bytes(rng.integers(0, 256, 17000, dtype=np.uint8))
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(bytes(data))
    try:
        _, reader = _decode_all(bad)
    except AudioError as exc:  # a typed error is fine; a hang or crash is not
        assert exc.message
    else:
        assert reader.completed and 0 < reader.duration < 3.4


def test_video_without_audio_has_no_audio_stream(tmp_path: Path) -> None:
    image = media.png(tmp_path / "picture.wav")  # a PNG named .wav
    with pytest.raises(NoAudioStream, match="video"):
        decode_pcm(image)


def test_playlists_and_concat_scripts_are_refused(pisets: Path, tmp_path: Path) -> None:
    """Demuxers that open other files named inside the upload must never run."""
    shutil.copy(pisets, tmp_path / "other_upload.wav")
    concat = tmp_path / "upload1.wav"
    concat.write_text("ffconcat version 1.0\nfile 'other_upload.wav'\n")
    with pytest.raises(UnsupportedAudio, match="concat format refers to other files"):
        decode_pcm(concat)

    media.encode(tmp_path / "seg0.ts", _read_wav(pisets), codec="mp2", container="mpegts")
    playlist = tmp_path / "upload2.m3u8"
    playlist.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg0.ts\n"
        "#EXT-X-ENDLIST\n"
    )
    with pytest.raises(UnsupportedAudio, match="hls format refers to other files"):
        decode_pcm(playlist)


def test_probe_refuses_playlists_before_opening_what_they_name(tmp_path: Path) -> None:
    """The playlist's segment is a FIFO: opening it would block, so a refusal that comes back
    at once proves the probe never tried (the post-probe check alone would hang until timeout).
    The name ends in ``.m3u8`` because FFmpeg only detects a playlist so named; any other
    name is not even recognised as one (see the next test)."""
    fifo = tmp_path / "seg0.ts"
    os.mkfifo(fifo)
    playlist = tmp_path / "upload.m3u8"
    playlist.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg0.ts\n"
        "#EXT-X-ENDLIST\n"
    )
    with pytest.raises(UnsupportedAudio, match="hls format refers to other files"):
        probe(playlist, timeout=20)


def test_a_decoder_that_cannot_start_is_a_500_naming_the_fix(
    pisets: Path, corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken install (PyAV not importable in the worker) is the server's problem."""
    mp3 = corpus_dir / "edge_cases" / "pisets.mp3"
    info, wav_info = probe(mp3), probe(pisets)
    shadow = tmp_path / "shadow" / "av"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no FFmpeg libraries here')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    audio.pool.close()  # idle workers were started before the install broke
    with pytest.raises(FfmpegMissing, match="PyAV is not installed") as caught:
        probe(mp3)
    assert not caught.value.user_error  # a server problem: HTTP 500, not 400
    with pytest.raises(FfmpegMissing, match="no FFmpeg libraries here"):
        decode_pcm(mp3, info=info)  # skips the probe, fails on the decoder itself
    # a 16 kHz mono PCM WAV needs no decoder at all
    with decode_pcm(pisets, info=wav_info) as reader:
        assert sum(block.size for block in reader) == round(wav_info.duration * SR)
    monkeypatch.delenv("PYTHONPATH")
    assert probe(mp3) == info  # fixed install: the next request works


def test_bad_arguments(pisets: Path) -> None:
    with pytest.raises(ValueError, match="max_seconds"):
        decode_pcm(pisets, max_seconds=-1)
    with pytest.raises(ValueError, match="block_samples"):
        decode_pcm(pisets, block_samples=0)


# --- MAX_AUDIO_SECONDS -------------------------------------------------------------------------


def test_limit_from_the_probe_refuses_before_decoding(long_silence: Path) -> None:
    with pytest.raises(AudioTooLong, match="MAX_AUDIO_SECONDS=30") as caught:
        decode_pcm(long_silence, max_seconds=30)
    assert "1.0 min" in caught.value.message


def test_limit_is_inclusive_and_zero_means_unlimited(long_silence: Path) -> None:
    assert _decode_all(long_silence, max_seconds=60)[1].duration == 60.0
    assert _decode_all(long_silence, max_seconds=0)[1].duration == 60.0


def _lying_matroska(tmp_path: Path, seconds: int, claimed_ms: float) -> Path:
    """A Matroska file whose header claims ``claimed_ms`` but which holds ``seconds`` of audio."""
    real = media.encode(
        tmp_path / "real.mka", media.sine(seconds), codec="pcm_s16le", container="matroska"
    )
    data = bytearray(real.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Segment Info › Duration, 8-byte float (milliseconds)
    assert at > 0
    data[at + 3 : at + 11] = struct.pack(">d", claimed_ms)
    liar = tmp_path / "liar.mka"
    liar.write_bytes(bytes(data))
    return liar


def test_limit_enforced_while_decoding_a_file_that_lies(tmp_path: Path) -> None:
    liar = _lying_matroska(tmp_path, seconds=30, claimed_ms=1000.0)
    assert probe(liar).duration == pytest.approx(1.0)
    assert _decode_all(liar)[1].duration == pytest.approx(30.0)  # it really holds 30 s
    reader = decode_pcm(liar, max_seconds=10, block_samples=SR)
    pid = reader.pid
    decoded = 0
    with pytest.raises(AudioTooLong, match=r"more than 10\.0 s"), reader:
        for block in reader:
            decoded += len(block)
    assert decoded <= 10 * SR  # stopped within one block of the limit
    assert reader.closed and not reader.completed and _gone(pid)


def test_limit_when_the_duration_is_unknown(long_silence: Path) -> None:
    unknown = AudioInfo(None, 16000, 1, "flac", "flac")
    with pytest.raises(AudioTooLong):
        _decode_all(long_silence, max_seconds=5.5, info=unknown)


# --- blocks, lifetime of the decoder worker ----------------------------------------------------


def test_blocks_are_bounded_and_add_up(long_silence: Path) -> None:
    reader = decode_pcm(long_silence, block_samples=10000)
    with reader:
        sizes = [len(block) for block in reader]
    assert all(size == 10000 for size in sizes[:-1]) and 0 < sizes[-1] <= 10000
    assert sum(sizes) == reader.total_samples == 60 * SR
    # a clean end gives the worker back for the next request instead of killing it
    assert reader.completed and reader.pid in audio.pool.idle_pids()


@pytest.mark.parametrize(
    ("rel", "samples"),
    [
        ("edge_cases/one_sample_16k.wav", 1),
        ("edge_cases/noise_burst_50ms_16k.wav", 800),
        ("edge_cases/truncated_250ms_pisets_16k.wav", 4000),
    ],
)
def test_tiny_files(corpus_dir: Path, rel: str, samples: int) -> None:
    pcm, reader = _decode_all(corpus_dir / rel)
    assert len(pcm) == samples and reader.duration == samples / SR


def _closing_scenarios() -> Iterator[tuple[str, Callable[[PcmReader], None]]]:
    def close(reader: PcmReader) -> None:
        next(reader)
        reader.close()

    def exception_in_with(reader: PcmReader) -> None:
        with pytest.raises(KeyError), reader:
            next(reader)
            raise KeyError("consumer failed")

    def break_out(reader: PcmReader) -> None:
        with reader:
            for _ in reader:
                break

    yield "close", close
    yield "exception", exception_in_with
    yield "break", break_out


@pytest.mark.parametrize(("name", "scenario"), list(_closing_scenarios()))
def test_the_worker_dies_when_the_reader_is_left_early(
    long_silence: Path, name: str, scenario: Callable[[PcmReader], None]
) -> None:
    reader = decode_pcm(long_silence, block_samples=1600)
    pid = reader.pid
    assert not _gone(pid)
    scenario(reader)
    assert _gone(pid), name
    assert not reader.completed
    assert list(reader) == []  # a closed reader yields nothing more


def test_the_worker_dies_when_the_reader_is_garbage_collected(long_silence: Path) -> None:
    reader = decode_pcm(long_silence, block_samples=1600)
    pid = reader.pid
    next(reader)
    del reader
    gc.collect()
    assert _gone(pid)


@pytest.mark.parametrize("via", ["worker", "plain_wav"])
def test_close_from_another_thread_cancels_the_read(
    via: str, long_silence: Path, corpus_dir: Path
) -> None:
    """Both readers: ``close()`` from another thread ends a consumer's iteration early."""
    plain = corpus_dir / "edge_cases" / "silence_digital_60s_16k.wav"
    reader = decode_pcm(long_silence if via == "worker" else plain, block_samples=SR)
    assert isinstance(reader, PcmReader if via == "worker" else audio.WavReader)
    seen: list[int] = []
    first, closed, finished = threading.Event(), threading.Event(), threading.Event()

    def consume() -> None:  # a paused consumer: the worker is blocked on a full pipe meanwhile
        for block in reader:
            seen.append(len(block))
            first.set()
            closed.wait(WATCHDOG_S)
        finished.set()

    worker = threading.Thread(target=consume)
    worker.start()
    assert first.wait(WATCHDOG_S)
    reader.close()  # from this thread, while the consumer is mid-stream
    closed.set()
    worker.join(timeout=WATCHDOG_S)
    assert finished.is_set() and reader.closed and not reader.completed
    assert 0 < sum(seen) < 60 * SR
    if isinstance(reader, PcmReader):
        assert _gone(reader.pid)


def test_a_decoder_that_produces_nothing_is_killed(long_silence: Path) -> None:
    """The stall watchdog, exercised with a real worker that stops (SIGSTOP, as a hung decoder)."""
    reader = decode_pcm(long_silence, block_samples=1600, stall_timeout=0.5)
    os.kill(reader.pid, signal.SIGSTOP)
    with pytest.raises(UnsupportedAudio, match="stalled"), reader:
        for _ in reader:
            pass
    assert _gone(reader.pid)  # killed by the watchdog, not left stopped


def test_load_audio_equals_the_stream(corpus_dir: Path) -> None:
    path = corpus_dir / "edge_cases" / "pisets.opus"
    whole = audio.load_audio(path)
    pcm, _ = _decode_all(path, block_samples=777)
    assert np.array_equal(whole, pcm)


@pytest.mark.parametrize(
    "name",
    [
        "pisets_padded_5s_silence_16k.wav",
        "stereo_phase_inverted_pisets_16k.wav",
        "pisets_telephone_8k_pcm.wav",
        "one_sample_16k.wav",
        "espeak_long_pause_30s_16k.wav",
    ],
)
def test_pcm_wav_header_probe_agrees_with_ffprobe(
    corpus_dir: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ffprobe-free path for 16-bit PCM WAV reports exactly what ffprobe reports."""
    path = corpus_dir / "edge_cases" / name
    quick = read_wav_header(path)
    assert quick is not None
    assert probe(path) == quick
    monkeypatch.setattr(source, "read_wav_header", lambda _path: None)
    full = probe(path)
    assert (full.sample_rate, full.channels, full.codec, full.format_name) == (
        quick.sample_rate,
        quick.channels,
        quick.codec,
        quick.format_name,
    )
    assert full.duration == pytest.approx(quick.duration, abs=2e-3)


@pytest.mark.parametrize(
    "name",
    ["pisets_48k_f32.wav", "pisets_44k_s24.wav", "pisets_22k_u8.wav", "pisets_mp3_named_as.wav"],
)
def test_other_wavs_still_go_to_ffprobe(corpus_dir: Path, name: str) -> None:
    assert read_wav_header(corpus_dir / "edge_cases" / name) is None
    assert probe(corpus_dir / "edge_cases" / name).duration


def test_wav_header_overstating_its_data_is_measured_by_size(tmp_path: Path) -> None:
    """Streamed WAVs often carry a placeholder data size; the file size is what counts."""
    pcm = np.zeros(16000, dtype=np.int16).tobytes()
    header = (
        b"RIFF\xff\xff\xff\xffWAVEfmt "
        + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + (16000).to_bytes(4, "little")
        + (32000).to_bytes(4, "little")
        + (2).to_bytes(2, "little")
        + (16).to_bytes(2, "little")
        + b"data\xff\xff\xff\xff"
    )
    path = tmp_path / "streamed.wav"
    path.write_bytes(header + pcm)
    info = probe(path)
    assert info.duration == pytest.approx(1.0)
    assert audio.load_audio(path).size == 16000


# --- 16 kHz mono PCM WAV: read directly, no decoder ---------------------------------------------


def test_plain_wav_is_read_directly_and_equals_the_decoder(pisets: Path) -> None:
    info = probe(pisets)
    assert info.is_plain_16k_mono
    with decode_pcm(pisets, block_samples=5000) as reader:
        assert isinstance(reader, audio.WavReader)
        blocks = list(reader)
        assert reader.completed and reader.duration == pytest.approx(info.duration or 0)
    assert all(0 < b.size <= 5000 for b in blocks)
    via_decoder = np.concatenate(list(PcmReader(pisets, block_samples=5000)))
    np.testing.assert_array_equal(np.concatenate(blocks), via_decoder)


def test_plain_wav_limits_and_empty_file(pisets: Path, tmp_path: Path) -> None:
    with pytest.raises(AudioTooLong):
        decode_pcm(pisets, max_seconds=1.0)
    # the data chunk's size (capped by the file size) is what is read, never more
    short = AudioInfo(1.0, 16000, 1, "pcm_s16le", "wav", data_offset=probe(pisets).data_offset)
    with decode_pcm(pisets, max_seconds=2.0, info=short) as reader:
        assert sum(block.size for block in reader) == SR
    header_only = tmp_path / "header_only.wav"
    header_only.write_bytes(pisets.read_bytes()[:44])
    with pytest.raises(EmptyAudio):
        decode_pcm(header_only)


# --- the decoder worker: crashes, reuse, resuming at an offset ------------------------------------


@pytest.mark.parametrize(
    ("sig", "user_error"), [(signal.SIGKILL, False), (signal.SIGSEGV, True)], ids=["kill", "segv"]
)
def test_a_worker_dying_mid_request_fails_only_that_request(
    long_silence: Path, corpus_dir: Path, sig: signal.Signals, user_error: bool
) -> None:
    """A real crash (SIGSEGV delivered while it decodes) or kill (the OOM killer's SIGKILL):
    the request gets a clear typed error, the next request a fresh worker and its audio."""
    reader = decode_pcm(long_silence, block_samples=1600)
    next(reader)
    os.kill(reader.pid, sig)
    with pytest.raises(DecoderCrashed, match="decoder") as caught, reader:
        for _ in reader:
            pass
    assert caught.value.user_error is user_error  # SIGSEGV: the file's fault (400); kill: 500
    assert signal.Signals(sig).name in caught.value.message
    assert _gone(reader.pid) and reader.closed and not reader.completed
    pcm, after = _decode_all(corpus_dir / "edge_cases" / "pisets.mp3")
    assert after.pid != reader.pid and _rms(pcm) > 500


def test_a_worker_killed_during_a_probe_fails_that_probe_only(corpus_dir: Path) -> None:
    mp3 = corpus_dir / "edge_cases" / "pisets.mp3"
    probe(mp3)  # leaves an idle worker in the pool
    for pid in audio.pool.idle_pids():
        os.kill(pid, signal.SIGKILL)
    # the dead idle worker is noticed and replaced, not handed out
    assert probe(mp3).codec == "mp3"


def test_workers_are_reused_between_requests(corpus_dir: Path) -> None:
    mp3 = corpus_dir / "edge_cases" / "pisets.mp3"
    first, reader = _decode_all(mp3)
    second, again = _decode_all(mp3)
    assert again.pid == reader.pid and np.array_equal(first, second)


def test_start_seconds_on_plain_wav_is_exact_to_the_sample(pisets: Path) -> None:
    whole = audio.load_audio(pisets)
    for start in (0.0, 0.5, 1.23456, 3.0, 10.0):
        pcm, reader = _decode_all(pisets, start_seconds=start)
        assert isinstance(reader, audio.WavReader)
        np.testing.assert_array_equal(pcm, whole[round(start * SR) :])


@pytest.mark.parametrize(
    "name",
    ["pisets.mp3", "pisets.flac", "pisets.opus", "pisets.m4a", "pisets_48k_f32.wav",
     "pisets_stereo_44k.mp3"],
)  # fmt: skip
def test_start_seconds_through_the_decoder_is_the_full_decodes_tail(
    corpus_dir: Path, name: str
) -> None:
    """The worker decodes from the beginning and drops what precedes the target, so the rest
    is exactly the full decode's tail (a container seek would land in timestamps that ignore
    an MP3's encoder padding, and be off by it)."""
    path = corpus_dir / "edge_cases" / name
    whole = audio.load_audio(path)
    pcm, reader = _decode_all(path, start_seconds=1.5)
    assert isinstance(reader, PcmReader)
    np.testing.assert_array_equal(pcm, whole[round(1.5 * SR) :])


@pytest.mark.parametrize("name", ["pisets/test_sound_ru.wav", "edge_cases/pisets.mp3"])
def test_read_spans_are_those_spans_of_the_whole_decode(corpus_dir: Path, name: str) -> None:
    """What a resumed job's speaker labelling reads again: the samples of the first run, each
    stretch on its own however far apart, in one pass."""
    path = corpus_dir / name
    whole = audio.load_audio(path)
    source = audio.FileSource(path)
    end = len(whole) / SR
    spans = [(0.3, 1.8), (1.23456, 2.73456), (2.0, 2.0), (2.5, 2.6), (end - 0.5, end + 3.0)]
    read = audio.read_spans(source, spans)
    assert len(read) == len(spans)
    for (start, stop), samples in zip(spans[:-1], read, strict=False):
        np.testing.assert_array_equal(samples, whole[round(start * SR) : round(stop * SR)])
    np.testing.assert_array_equal(read[-1], whole[round((end - 0.5) * SR) :])  # to its end
    assert audio.read_spans(source, []) == []


def test_start_seconds_counts_against_the_limit(long_silence: Path) -> None:
    reader = decode_pcm(long_silence, max_seconds=60, start_seconds=50, block_samples=SR)
    with reader:
        assert sum(len(block) for block in reader) == 10 * SR
    with pytest.raises(ValueError, match="start_seconds"):
        decode_pcm(long_silence, start_seconds=-1)
