"""The numpy log-mel front end against the reference features of every golden fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gigaam_api.model.checkpoint import read_checkpoint
from gigaam_api.model.features import (
    LOG_FLOOR,
    MEL_FB_KEY,
    WINDOW_KEY,
    FeatureError,
    FeatureExtractor,
    encoded_lengths,
    feature_lengths,
)
from tests.conftest import MODELS

ATOL = 1e-3  # suggested parity tolerance for features (golden/README.md)


def _extractor(golden_dir: Path, name: str) -> FeatureExtractor:
    ckpt = read_checkpoint(golden_dir / name / f"{name}.ckpt")
    return FeatureExtractor.from_state_dict(ckpt.state_dict)


@pytest.fixture(scope="module")
def v3_ctc(golden_dir: Path) -> FeatureExtractor:
    return _extractor(golden_dir, "v3_ctc")


@pytest.mark.parametrize("name", MODELS)
def test_single_matches_reference(golden_dir: Path, name: str) -> None:
    fixture = golden_dir / name
    features, lengths = _extractor(golden_dir, name)([np.load(fixture / "waveform.npy")])
    expected = np.load(fixture / "features.npy")
    assert features.dtype == np.float32 and lengths.dtype == np.int64
    assert features.shape == expected.shape
    np.testing.assert_allclose(features, expected, atol=ATOL, rtol=0)
    np.testing.assert_array_equal(lengths, np.load(fixture / "feature_lengths.npy"))


@pytest.mark.parametrize("name", MODELS)
def test_batch_matches_reference_including_padding(golden_dir: Path, name: str) -> None:
    fixture = golden_dir / name
    padded = np.load(fixture / "batch_waveforms.npy")
    n_samples = np.load(fixture / "batch_lengths.npy")
    waves = [padded[i, : n_samples[i]] for i in range(len(n_samples))]
    features, lengths = _extractor(golden_dir, name)(waves)
    expected = np.load(fixture / "batch_features.npy")
    assert features.shape == expected.shape
    # The whole tensor, padded columns included: they must be what the reference computes
    # from the zero-padded batch (tail frames mixing audio and zeros, then the log floor).
    np.testing.assert_allclose(features, expected, atol=ATOL, rtol=0)
    np.testing.assert_array_equal(lengths, np.load(fixture / "batch_feature_lengths.npy"))
    short = int(n_samples[1])
    touched = -(-short // 160)
    assert (features[1, :, touched:] == np.float32(LOG_FLOOR)).all()
    assert (features[1, :, touched - 1] > LOG_FLOOR).any()


def test_length_helpers_match_reference(golden_dir: Path) -> None:
    fixture = golden_dir / "v3_ctc"
    n_samples = np.load(fixture / "batch_lengths.npy")
    f_lengths = feature_lengths(n_samples)
    np.testing.assert_array_equal(f_lengths, np.load(fixture / "batch_feature_lengths.npy"))
    np.testing.assert_array_equal(
        encoded_lengths(f_lengths), np.load(fixture / "batch_encoded_lengths.npy")
    )
    assert encoded_lengths(feature_lengths(int(n_samples[0]))) == 170


@pytest.mark.parametrize(
    ("n", "frames", "encoded"),
    [(0, 0, 0), (319, 0, 0), (320, 1, 1), (479, 1, 1), (480, 2, 1), (800, 4, 1), (960, 5, 2)],
)
def test_length_helpers_edges(n: int, frames: int, encoded: int) -> None:
    assert feature_lengths(n) == frames
    assert encoded_lengths(frames) == encoded
    assert feature_lengths(np.array([n])).tolist() == [frames]
    assert encoded_lengths(np.array([frames])).tolist() == [encoded]


def test_encoded_lengths_is_two_nested_ceilings() -> None:
    f = np.arange(0, 2000)
    nested = np.ceil(np.ceil(f / 2) / 2).astype(np.int64)
    np.testing.assert_array_equal(encoded_lengths(f), nested)


def test_short_waves_get_length_zero(v3_ctc: FeatureExtractor) -> None:
    features, lengths = v3_ctc([np.zeros(100, np.float32)])
    assert features.shape == (1, 64, 0) and lengths.tolist() == [0]

    rng = np.random.default_rng(0)
    tiny = rng.uniform(-0.5, 0.5, 100).astype(np.float32)
    long = rng.uniform(-0.5, 0.5, 16000).astype(np.float32)
    features, lengths = v3_ctc([tiny, long])
    assert lengths.tolist() == [0, 99]
    assert features.shape == (2, 64, 99)
    # Its one frame touching real samples is computed like the reference's padded batch would.
    padded, _ = v3_ctc([np.concatenate([tiny, np.zeros(220, np.float32)])])
    np.testing.assert_allclose(features[0, :, :1], padded[0], atol=1e-6)
    assert (features[0, :, 1:] == np.float32(LOG_FLOOR)).all()


def test_empty_batch(v3_ctc: FeatureExtractor) -> None:
    features, lengths = v3_ctc([])
    assert features.shape == (0, 64, 0) and lengths.shape == (0,)


def test_blocking_and_input_dtype_do_not_change_features(golden_dir: Path) -> None:
    ckpt = read_checkpoint(golden_dir / "v3_ctc" / "v3_ctc.ckpt")
    wave = np.load(golden_dir / "v3_ctc" / "waveform.npy")
    default = FeatureExtractor.from_state_dict(ckpt.state_dict)
    tiny_blocks = FeatureExtractor(
        ckpt.state_dict[WINDOW_KEY], ckpt.state_dict[MEL_FB_KEY], block_frames=7
    )
    reference, _ = default([wave])
    np.testing.assert_allclose(tiny_blocks([wave])[0], reference, atol=1e-5, rtol=0)
    as_float64, _ = default([wave.astype(np.float64)])
    np.testing.assert_array_equal(as_float64, reference)


def test_silence_is_the_log_floor(v3_ctc: FeatureExtractor) -> None:
    features, lengths = v3_ctc([np.zeros(16000, np.float32)])
    assert lengths.tolist() == [99]
    assert (features == np.float32(LOG_FLOOR)).all()
    assert pytest.approx(-20.7232658) == LOG_FLOOR


@pytest.mark.parametrize(
    ("wave", "message"),
    [
        (np.zeros((2, 1000), np.float32), "1-D"),
        (np.zeros(1000, np.int16), "float"),
        (np.array([0.0, np.nan] * 500, np.float32), "NaN"),
        (np.array([0.0, np.inf] * 500, np.float32), "infinite"),
        ("not audio", "1-D"),
    ],
)
def test_bad_waves_raise_typed_errors(v3_ctc: FeatureExtractor, wave: object, message: str) -> None:
    good = np.zeros(1000, np.float32)
    with pytest.raises(FeatureError, match=message):
        v3_ctc([good, wave])  # type: ignore[list-item]


def test_bad_buffers_raise_typed_errors() -> None:
    window = np.hanning(320).astype(np.float32)
    fb = np.ones((161, 64), np.float32)
    with pytest.raises(FeatureError, match="window"):
        FeatureExtractor(window[:300], fb)
    with pytest.raises(FeatureError, match="filterbank"):
        FeatureExtractor(window, fb[:100])
    with pytest.raises(FeatureError, match="finite"):
        FeatureExtractor(np.full(320, np.nan, np.float32), fb)
    with pytest.raises(FeatureError, match="positive"):
        FeatureExtractor(window, fb, hop_length=0)
    with pytest.raises(FeatureError, match="lacks"):
        FeatureExtractor.from_state_dict({WINDOW_KEY: window})
    assert FeatureExtractor(window, fb).n_mels == 64
