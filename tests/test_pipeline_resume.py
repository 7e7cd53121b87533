"""Starting the pipeline part-way into a file (how a durable job resumes).

The PyAV decoder worker (decodes from the start, drops what precedes the offset), the direct
WAV reader (a seek), real Silero VAD and
the golden fixture model. A run that starts at the end of chunk *k* of an uninterrupted run
must give absolute, monotonic times that never go before the start, the same total duration,
and — because the start is aligned to a VAD window — exactly the uninterrupted run's chunks
and text from the second chunk after the start on.
"""

from __future__ import annotations

import itertools
import wave
from pathlib import Path

import numpy as np
import pytest

from gigaam_api import audio
from gigaam_api.config import Settings, pipeline_options
from gigaam_api.model import AsrModel, load_model
from gigaam_api.pipeline import RecognisedChunk, transcribe_file
from tests.api_server import tiled_wav

SECONDS = 150.0


@pytest.fixture(scope="module")
def model(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsrModel:
    cache = tmp_path_factory.mktemp("graphs")
    return load_model(golden_dir / "v3_ctc" / "v3_ctc.ckpt", num_threads=2, cache_dir=cache)


@pytest.fixture(scope="module")
def settings(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        checkpoint_path=golden_dir / "v3_ctc" / "v3_ctc.ckpt",
        models_dir=tmp_path_factory.mktemp("models"),
    )


@pytest.fixture(scope="module", params=["decoder", "wav"])
def long_file(
    request: pytest.FixtureRequest, corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("resume")
    stereo = tiled_wav(
        corpus_dir / "longform" / "longform_espeak_ru.wav", folder / "s.wav", SECONDS
    )
    if request.param == "decoder":
        return stereo  # two channels: decoded by a decoder worker
    mono = folder / "mono.wav"  # 16 kHz mono PCM: read directly, no decoder worker
    with wave.open(str(stereo)) as source:
        frames = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
    with wave.open(str(mono), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(frames[::2].tobytes())
    assert audio.probe(mono).is_plain_16k_mono
    return mono


def chunks(
    path: Path, model: AsrModel, settings: Settings, start: float = 0.0
) -> tuple[list[RecognisedChunk], float]:
    run = transcribe_file(path, model.transcribe, pipeline_options(settings), start_seconds=start)
    try:
        return list(run.chunks()), run.duration
    finally:
        run.close()


def test_resuming_after_a_chunk_continues_the_uninterrupted_run(
    long_file: Path, model: AsrModel, settings: Settings
) -> None:
    full, full_duration = chunks(long_file, model, settings)
    assert len(full) >= 6
    k = 2
    start = full[k].end
    resumed, duration = chunks(long_file, model, settings, start)
    assert duration == pytest.approx(full_duration, abs=1e-6)
    segments = [s for c in resumed for s in c.segments]
    assert segments and segments[0].start >= start
    words = [w for s in segments for w in s.words]
    assert all(w.start >= start for w in words)
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(words))

    # from the second resumed chunk on: the uninterrupted run's chunks, times and text
    def key(c: RecognisedChunk) -> tuple[float, float, list[str]]:
        return (round(c.start, 6), round(c.end, 6), [s.text for s in c.segments])

    assert [key(c) for c in resumed[1:]] == [key(c) for c in full[k + 2 :]]
    assert resumed[0].start >= start - 0.032  # the first one starts at the (aligned) offset


def test_a_start_at_or_past_the_end_gives_nothing_more(
    long_file: Path, model: AsrModel, settings: Settings
) -> None:
    """A job killed after its last chunk was committed resumes to find nothing left: no
    segment, no error (the runner then completes it)."""
    run = transcribe_file(
        long_file, model.transcribe, pipeline_options(settings), start_seconds=SECONDS + 5
    )
    assert list(run.chunks()) == []


def test_a_negative_start_is_refused(long_file: Path) -> None:
    with pytest.raises(ValueError, match="start_seconds"):
        audio.decode_pcm(long_file, start_seconds=-1.0)
