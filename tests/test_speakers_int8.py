"""The int8 copy of an ONNX speaker model: made from the fp32 file, checked, cached, or refused.

The model here is a small convolutional network of the published models' signature
(``speakers_data.conv_speaker_model``) with random weights: what matters is the
mechanism — the quantizer's real output (``QLinearConv``), the calibration on the bundled real
speech, the check's verdict on windows it did not see, the cache, the refusal and the fall back
to fp32 — which runs as it does for CAM++. What the copy costs and how close it stays on the full
random CAM++ is in ``benchmarks/README.md`` (the real CAM++ weights cannot be downloaded here).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from gigaam_api import audio
from gigaam_api.service.speakers import SpeakerModel
from gigaam_api.speaker_int8 import speaker_model_to_run
from gigaam_api.speakers import FbankOnnxEmbedder, load_embedder
from gigaam_api.speakers.int8 import CALIBRATION_CLIP, cached_int8, compare, make_int8
from tests.speakers_data import conv_speaker_model, resemblyzer_wheel


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return (audio.load_audio(str(CALIBRATION_CLIP)).astype(np.float32) / 32768.0).astype(np.float32)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "speaker.onnx"
    conv_speaker_model(path)
    return path


def test_the_calibration_clip_is_a_minute_of_speech(speech: np.ndarray) -> None:
    from gigaam_api.vad.detector import speech_regions

    seconds = len(speech) / 16000
    assert 55 <= seconds <= 75
    pcm = (speech * 32767).astype(np.int16)
    voiced = sum(r.end - r.start for r in speech_regions([pcm]))
    assert voiced / seconds > 0.9  # made of the VAD's own speech regions


def test_the_copy_is_made_checked_and_cached(
    model: Path, tmp_path: Path, speech: np.ndarray
) -> None:
    import onnx

    cache = tmp_path / "models"
    assert cached_int8(model, cache) is None
    copy, check = make_int8(model, cache, speech)
    assert copy is not None and copy.name == "speaker.int8.onnx"
    assert check.accepted and check.reason == ""
    # Windows at odd multiples of half a window: the ones calibration did not see.
    assert check.windows == len(range(0, len(speech) - 24000 + 1, 12000)) // 2
    assert check.lowest_self_cosine >= 0.95 and check.similarity_drift <= 0.05
    ops = {node.op_type for node in onnx.load(str(copy)).graph.node}
    assert "QLinearConv" in ops and "Conv" not in ops
    # sherpa-onnx's metadata survives, so the copy opens as the same kind of model.
    embedder = load_embedder(copy)
    assert isinstance(embedder, FbankOnnxEmbedder) and embedder.dimension == 64
    windows = [speech[k : k + 24000] for k in range(6000, len(speech) - 24000, 30000)]
    close = (load_embedder(model).embed(windows) * embedder.embed(windows)).sum(axis=1)
    assert close.min() > 0.95
    # Read back, not made again.
    made = copy.stat().st_mtime_ns
    assert cached_int8(model, cache) == (copy, check)
    assert make_int8(model, cache, speech) == (copy, check)
    assert copy.stat().st_mtime_ns == made
    # A damaged verdict is not trusted: the copy is made again.
    (copy.parent / "check.json").write_text("{not json")
    assert cached_int8(model, cache) is None
    again, recheck = make_int8(model, cache, speech)
    assert again is not None and recheck.accepted


def test_a_copy_that_fails_the_check_is_refused_and_remembered(
    model: Path, tmp_path: Path, speech: np.ndarray
) -> None:
    cache = tmp_path / "models"
    copy, check = make_int8(model, cache, speech, min_self_cosine=1.01)
    assert copy is None and not check.accepted
    assert "cosine" in check.reason and check.windows > 20
    assert not list(cache.rglob("*.int8.onnx"))  # nothing left to load by mistake
    assert cached_int8(model, cache) == (None, check)  # the next start does not try again
    # The server then runs the fp32 file.
    assert speaker_model_to_run(model, cache, int8=True) == model


def test_the_verdict() -> None:
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((12, 32)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    same = compare(rows, rows, 0.95, 0.05)
    assert same.accepted and same.windows == 12 and same.reason == ""
    assert same.lowest_self_cosine == pytest.approx(1.0) and same.similarity_drift < 1e-5
    noisy = rows + 0.3 * rng.standard_normal(rows.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    refused = compare(rows, noisy, 0.95, 0.05)
    assert not refused.accepted
    assert "cosine" in refused.reason and "similarity" in refused.reason
    broken = compare(rows, np.full_like(rows, np.nan), 0.95, 0.05)
    assert not broken.accepted


def test_the_server_makes_it_in_a_child_process_and_runs_it(
    model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "models"
    caplog.set_level(logging.INFO, logger="gigaam_api")
    speakers = SpeakerModel(str(model), cache, int8=True)
    embedder = speakers.get()
    assert embedder.name == "speaker.int8"
    assert "int8 copy (lowest cosine to fp32" in caplog.text
    assert cached_int8(model, cache) is not None
    # Off, or not an ONNX fbank model: the file itself.
    assert SpeakerModel(str(model), cache, int8=False).get().name == "speaker"
    wheel = resemblyzer_wheel()
    assert speaker_model_to_run(wheel, cache, int8=True) == wheel


def test_when_no_copy_can_be_made_the_fp32_model_serves(
    model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_folder = tmp_path / "models"
    not_a_folder.write_text("a file where the cache folder should be")
    caplog.set_level(logging.WARNING, logger="gigaam_api")
    assert speaker_model_to_run(model, not_a_folder, int8=True) == model
    assert "no int8 copy" in caplog.text and "using fp32" in caplog.text
