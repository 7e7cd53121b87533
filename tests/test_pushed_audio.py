"""Pushed PCM (a door's blocks) → the same 16 kHz mono samples the file path gives.

The file path is the reference: a WAV file of the same raw PCM, decoded by the real decoder
worker (FFmpeg) or read directly. Pushed audio must give exactly those samples — whatever the
rate, width, channel count and block sizes — because both doors must recognise the same text.
"""

from __future__ import annotations

import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from gigaam_api import audio
from gigaam_api.audio import EmptyAudio, PushedAudio, RawFormat, RawFormatError

FORMATS = [
    (16000, 2, 1),  # the model's own format: taken as it is
    (44100, 2, 2),
    (22050, 1, 1),  # unsigned 8-bit
    (48000, 3, 2),  # 24-bit
    (8000, 4, 3),  # 32-bit, three channels
    (16000, 2, 2),  # the right rate, but stereo: mixed
    (96000, 2, 8),
]


def raw_pcm(rate: int, width: int, channels: int, seconds: float, seed: int = 1) -> bytes:
    frames = int(rate * seconds) + 123  # not a whole number of blocks
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=frames * channels * width, dtype=np.uint8).tobytes()


def as_wav(path: Path, rate: int, width: int, channels: int, payload: bytes) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(payload)
    return path


def pushed_samples(source: PushedAudio) -> np.ndarray:
    with source.open() as reader:
        return np.concatenate(list(reader))


@pytest.mark.parametrize(("rate", "width", "channels"), FORMATS, ids=str)
def test_pushed_blocks_give_the_file_paths_samples(
    rate: int, width: int, channels: int, tmp_path: Path
) -> None:
    payload = raw_pcm(rate, width, channels, 7.0)
    reference = audio.load_audio(as_wav(tmp_path / "ref.wav", rate, width, channels, payload))
    source = PushedAudio(RawFormat(rate, width, channels), max_seconds=60)
    step = channels * width * 997  # blocks of an odd size, unrelated to the decoder's
    for offset in range(0, len(payload), step):
        assert source.push(payload[offset : offset + step]) is False
    source.end()
    assert source.duration == pytest.approx(reference.size / 16000)
    samples = pushed_samples(source)
    assert samples.dtype == np.int16
    assert np.array_equal(samples, reference)


def test_the_reader_waits_for_audio_pushed_while_it_reads() -> None:
    fmt = RawFormat(44100, 2, 2)
    payload = raw_pcm(*(44100, 2, 2), 5.0)
    whole = PushedAudio(fmt, max_seconds=60)
    whole.push(payload)
    whole.end()
    expected = pushed_samples(whole)

    live = PushedAudio(fmt, max_seconds=60)
    got: list[np.ndarray] = []
    opened = threading.Event()

    def read() -> None:
        with live.open() as reader:  # nothing pushed yet: opening waits for the first block
            opened.set()
            got.extend(reader)

    def push() -> None:
        step = 4 * 4410  # a tenth of a second at a time, as a live client sends
        for offset in range(0, len(payload), step):
            live.push(payload[offset : offset + step])
        live.end()

    reader_thread = threading.Thread(target=read)
    reader_thread.start()
    pusher = threading.Thread(target=push)
    pusher.start()
    pusher.join(10)
    reader_thread.join(10)
    assert opened.is_set() and not reader_thread.is_alive()
    assert np.array_equal(np.concatenate(got), expected)


def test_blocks_are_handed_on_whole_whatever_the_clients_chunk_size() -> None:
    """The pipeline gets ``block_samples`` blocks (the last one shorter), as from a file."""
    source = PushedAudio(RawFormat(16000, 2, 1), max_seconds=60, block_samples=8192)
    for _ in range(50):
        source.push(b"\x02\x00" * 1024)  # Wyoming's usual chunk: 1024 samples
    source.end()
    with source.open() as reader:
        sizes = [block.size for block in reader]
    assert sizes == [8192] * 6 + [50 * 1024 - 6 * 8192]


def test_audio_past_the_cap_is_dropped_and_reported_once() -> None:
    source = PushedAudio(RawFormat(16000, 2, 1), max_seconds=1.0)
    half = b"\x01\x00" * 8000
    assert [source.push(half) for _ in range(4)] == [False, False, True, False]
    source.end()
    assert source.truncated and source.seconds == 1.0
    assert pushed_samples(source).size == 16000


@pytest.mark.parametrize(
    ("rate", "width", "channels", "message"),
    [
        (4000, 2, 1, "rate"),
        (200000, 2, 1, "rate"),
        (16000, 5, 1, "width"),
        (16000, 2, 0, "channels"),
        (16000, 2, 9, "channels"),
    ],
)
def test_a_format_it_cannot_take_is_refused(
    rate: int, width: int, channels: int, message: str
) -> None:
    with pytest.raises(RawFormatError, match=message):
        RawFormat(rate, width, channels)


def test_a_block_of_partial_frames_or_after_the_end_is_refused() -> None:
    source = PushedAudio(RawFormat(16000, 2, 2), max_seconds=10)
    with pytest.raises(RawFormatError, match="whole number"):
        source.push(b"\x00" * 6)
    source.end()
    with pytest.raises(RawFormatError, match="after the end"):
        source.push(b"\x00" * 4)


def test_no_audio_at_all_is_empty_audio() -> None:
    source = PushedAudio(RawFormat(16000, 2, 1), max_seconds=10)
    source.end()
    with pytest.raises(EmptyAudio):
        source.open()


def test_abort_wakes_a_reader_that_waits_for_more() -> None:
    source = PushedAudio(RawFormat(16000, 2, 1), max_seconds=10, block_samples=4000)
    source.push(b"\x01\x00" * 16000)
    took_first, finished = threading.Event(), threading.Event()

    def read() -> None:
        with source.open() as reader:
            next(reader)  # the pushed second
            took_first.set()
            list(reader)  # then waits for more
        finished.set()

    thread = threading.Thread(target=read)
    thread.start()
    assert took_first.wait(10)
    source.abort()
    thread.join(10)
    assert finished.is_set()
