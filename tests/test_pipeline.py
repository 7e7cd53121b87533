"""The streaming pipeline end to end: the real decoder, real Silero VAD, the golden fixture model.

The fixture model has random weights, so its words are nonsense; what is checked here is
where they land in time (absolute, monotonic, inside speech and inside the file), how the file
is chunked and batched, that memory stays bounded, and that cancellation stops the decoder.
"""

from __future__ import annotations

import threading
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from gigaam_api.audio import UnsupportedAudio, load_audio
from gigaam_api.cancellation import Cancelled
from gigaam_api.config import Settings, pipeline_options
from gigaam_api.model import AsrModel, load_model
from gigaam_api.model.decoding import Result
from gigaam_api.pipeline import transcribe_file
from gigaam_api.transcript import Segment
from tests.api_server import busy_decoders

ESPEAK_LONGFORM = Path("longform") / "longform_espeak_ru.wav"


@pytest.fixture(scope="module")
def model(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsrModel:
    cache = tmp_path_factory.mktemp("graphs")
    return load_model(golden_dir / "v3_ctc" / "v3_ctc.ckpt", num_threads=2, cache_dir=cache)


@pytest.fixture(scope="module")
def settings(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        checkpoint_path=golden_dir / "v3_ctc" / "v3_ctc.ckpt",
        models_dir=tmp_path_factory.mktemp("models"),
        batch_size=2,
    )


def _reference_segments(tsv: Path) -> list[tuple[float, float]]:
    rows = tsv.read_text(encoding="utf-8").splitlines()
    header = rows[0].split("\t")
    start, end = header.index("speech_start_s"), header.index("speech_end_s")
    return [(float(r.split("\t")[start]), float(r.split("\t")[end])) for r in rows[1:] if r]


def _check_times(segments: Sequence[Segment], duration: float) -> None:
    previous = 0.0
    for index, segment in enumerate(segments):
        assert segment.id == index
        assert segment.words, "every segment holds words"
        assert segment.start == segment.words[0].start
        assert segment.end == segment.words[-1].end
        assert segment.text == " ".join(w.text for w in segment.words)
        for word in segment.words:
            assert previous <= word.start <= word.end <= duration + 1e-9
            previous = word.end


def test_long_file_is_chunked_along_speech(
    model: AsrModel, settings: Settings, corpus_dir: Path
) -> None:
    path = corpus_dir / "longform" / "longform_espeak_ru.wav"
    batches: list[int] = []

    def infer(waves: list[NDArray[np.float32]]) -> Sequence[Result]:
        batches.append(len(waves))
        return model.transcribe(waves)

    run = transcribe_file(path, infer, pipeline_options(settings))
    segments = list(run)
    assert run.duration == pytest.approx(len(load_audio(path)) / 16000)
    assert run.chunks_recognised > 1
    assert sum(batches) == run.chunks_recognised
    assert all(1 <= n <= settings.batch_size for n in batches)
    _check_times(segments, run.duration)
    # the chunk offsets were applied: words start with the first speech and end with the last
    speech = _reference_segments(path.with_name(path.stem + ".segments.tsv"))
    words = [w for s in segments for w in s.words]
    assert speech[0][0] - 0.5 <= words[0].start < speech[0][1]
    assert speech[-1][0] < words[-1].end <= speech[-1][1] + 0.5


def test_short_file_speech_after_leading_silence(
    model: AsrModel, settings: Settings, corpus_dir: Path
) -> None:
    run = transcribe_file(
        corpus_dir / "edge_cases" / "pisets_padded_5s_silence_16k.wav",
        model.transcribe,
        pipeline_options(settings),
    )
    segments = list(run)
    assert segments, "the phrase after the silence is recognised"
    assert segments[0].start >= 4.9
    _check_times(segments, run.duration)
    assert run.chunks_recognised == 1


def test_long_pause_file_has_words_on_both_sides(
    model: AsrModel, settings: Settings, corpus_dir: Path
) -> None:
    run = transcribe_file(
        corpus_dir / "edge_cases" / "espeak_long_pause_30s_16k.wav",
        model.transcribe,
        pipeline_options(settings),
    )
    segments = list(run)
    _check_times(segments, run.duration)
    words = [w for s in segments for w in s.words]
    assert any(w.end < 5 for w in words) and any(w.start > 34 for w in words)
    assert not any(6 < w.start < 34 for w in words), "nothing recognised in the 30 s pause"


@pytest.mark.parametrize("name", ["silence_digital_10s_16k.wav", "noise_white_-45dBFS_5s_16k.wav"])
def test_no_speech_gives_no_segments(
    model: AsrModel, settings: Settings, corpus_dir: Path, name: str
) -> None:
    calls: list[int] = []

    def infer(waves: list[NDArray[np.float32]]) -> Sequence[Result]:
        calls.append(len(waves))
        return model.transcribe(waves)

    run = transcribe_file(corpus_dir / "edge_cases" / name, infer, pipeline_options(settings))
    assert list(run) == []
    assert calls == []
    assert run.duration > 4


def test_corrupt_file_fails_before_any_output(
    model: AsrModel, settings: Settings, corpus_dir: Path
) -> None:
    with pytest.raises(UnsupportedAudio):
        transcribe_file(
            corpus_dir / "pisets" / "notsound.wav", model.transcribe, pipeline_options(settings)
        )


def _tiled_wav(path: Path, source: Path, seconds: float) -> Path:
    """Speech + 20 s of silence, repeated; two identical channels so that a decoder worker reads it
    (16 kHz mono PCM WAV is read directly) and the cancellation tests have a child to watch."""
    speech = load_audio(source)
    unit = np.concatenate([speech, np.zeros(20 * 16000, dtype=np.int16)])
    reps = int(np.ceil(seconds * 16000 / unit.size))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(16000)
        for _ in range(reps):
            out.writeframes(np.repeat(unit, 2).tobytes())
    return path


def test_memory_is_bounded_on_long_audio(
    model: AsrModel, settings: Settings, corpus_dir: Path, tmp_path: Path
) -> None:
    """10 minutes of audio never hold more than about a batch of chunks plus a region."""
    path = _tiled_wav(tmp_path / "long.wav", corpus_dir / ESPEAK_LONGFORM, 600)
    run = transcribe_file(path, model.transcribe, pipeline_options(settings))
    segments = list(run)
    _check_times(segments, run.duration)
    assert run.duration >= 600
    # batch_size chunks of at most strict_limit seconds, plus one open region and a block
    bound = (settings.batch_size + 2) * settings.vad_strict_limit * 16000 * 2
    assert 0 < run.peak_buffer_bytes <= bound
    assert run.peak_buffer_bytes < run.duration * 16000 * 2 / 10


def test_cancel_stops_between_batches_and_kills_the_decoder(
    model: AsrModel, settings: Settings, corpus_dir: Path, tmp_path: Path
) -> None:
    path = _tiled_wav(tmp_path / "long.wav", corpus_dir / ESPEAK_LONGFORM, 300)
    cancel = threading.Event()
    served: list[int] = []

    def infer(waves: list[NDArray[np.float32]]) -> Sequence[Result]:
        served.append(len(waves))
        cancel.set()  # the client goes away while the first batch computes
        return model.transcribe(waves)

    run = transcribe_file(path, infer, pipeline_options(settings), cancel=cancel)
    with pytest.raises(Cancelled):
        list(run)
    assert len(served) == 1
    assert not busy_decoders(), "a decoder must not outlive a cancelled transcription"


def test_close_midway_kills_the_decoder(
    model: AsrModel, settings: Settings, corpus_dir: Path, tmp_path: Path
) -> None:
    path = _tiled_wav(tmp_path / "long.wav", corpus_dir / ESPEAK_LONGFORM, 300)
    run = transcribe_file(path, model.transcribe, pipeline_options(settings))
    first = next(run)
    assert first.id == 0
    assert busy_decoders(), "a decoder is running while the file is being read"
    run.close()
    assert not busy_decoders()
