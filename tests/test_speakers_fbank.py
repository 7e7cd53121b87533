"""The Kaldi fbank front end against kaldi-native-fbank, and the ONNX model face on a graph
with random weights and the published models' signature and metadata.

The production models cannot be downloaded here, so what is proven is everything around
their weights: the features (against the library sherpa-onnx computes them with, recorded by
``tests/fixtures/speakers/make_reference.py``), the sample scaling and mean normalisation the
file's metadata asks for, batching, and the L2-normalised output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from gigaam_api.speakers import fbank
from gigaam_api.speakers.embedder import FbankOnnxEmbedder, SpeakerModelError, load_embedder
from tests.speakers_data import FIXTURES, PARITY_CLIPS, corpus_wav


def _reference_windows(corpus_dir: Path) -> list[NDArray[np.float32]]:
    windows = []
    for clip, starts in PARITY_CLIPS[:2]:
        first = round(starts[0] * 16000)
        windows.append(corpus_wav(clip, corpus_dir)[first : first + 16000])
    return windows


@pytest.mark.parametrize(
    ("key", "scale", "snip_edges"),
    [("centred", 1.0, False), ("snipped", 1.0, True), ("int16_scale", 32768.0, False)],
)
def test_fbank_equals_kaldi_native_fbank(
    key: str, scale: float, snip_edges: bool, corpus_dir: Path
) -> None:
    reference = np.load(FIXTURES / "fbank_reference.npz")[key]
    for window, expected in zip(_reference_windows(corpus_dir), reference, strict=True):
        ours = fbank.fbank(window * scale, snip_edges=snip_edges)
        assert ours.shape == expected.shape
        # kaldi-native-fbank works in float32: logs differ by ~1e-3 (~1e-4 of the value).
        np.testing.assert_allclose(ours, expected, atol=5e-3)


@pytest.mark.parametrize("samples", [0, 1, 150, 399, 400, 401, 16000, 16001])
def test_frame_counts_follow_kaldi(samples: int) -> None:
    for snip in (False, True):
        features = fbank.fbank(np.zeros(samples) + 0.01, snip_edges=snip)
        assert features.shape == (fbank.num_frames(samples, snip_edges=snip), 80)
    assert fbank.num_frames(16000) == 100
    assert fbank.num_frames(16000, snip_edges=True) == 98


def test_mean_subtraction() -> None:
    features = fbank.fbank(np.random.default_rng(0).standard_normal(16000) * 0.1)
    centred = fbank.subtract_mean(features)
    np.testing.assert_allclose(centred.mean(axis=0), 0.0, atol=1e-5)


def _random_model(
    path: Path, *, normalize_samples: int, normalize_type: str
) -> NDArray[np.float32]:
    """A graph of the published models' signature: ``x [N, T, 80]`` → ``embedding [N, 192]``
    (max over time, a random projection, tanh), with sherpa-onnx's metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(7).standard_normal((80, 192)).astype(np.float32) * 0.1
    nodes = [
        helper.make_node("ReduceMax", ["x", "time"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "w"], ["projected"]),
        helper.make_node("Tanh", ["projected"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "random_speaker_model",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", 80])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 192])],
        [
            numpy_helper.from_array(np.array([1], dtype=np.int64), "time"),
            numpy_helper.from_array(weights, "w"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    meta = {
        "framework": "3d-speaker",
        "sample_rate": "16000",
        "output_dim": "192",
        "normalize_samples": str(normalize_samples),
        "feature_normalize_type": normalize_type,
        "language": "English",
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return weights


@pytest.mark.parametrize(
    ("normalize_samples", "normalize_type", "reference_key"),
    [(1, "global-mean", "centred"), (0, "", "int16_scale")],
)
def test_model_face_on_random_weights(
    normalize_samples: int,
    normalize_type: str,
    reference_key: str,
    tmp_path: Path,
    corpus_dir: Path,
) -> None:
    path = tmp_path / "speaker.onnx"
    weights = _random_model(
        path, normalize_samples=normalize_samples, normalize_type=normalize_type
    )
    embedder = load_embedder(path)
    assert isinstance(embedder, FbankOnnxEmbedder)
    assert embedder.dimension == 192
    windows = _reference_windows(corpus_dir)
    # A shorter window too: batches are grouped by frame count.
    windows.append(windows[0][:12000])
    reference = list(np.load(FIXTURES / "fbank_reference.npz")[reference_key])
    expected_rows = []
    for index, window in enumerate(windows):
        features = reference[index] if index < 2 else reference[0][: fbank.num_frames(12000)]
        if index == 2 and normalize_samples == 0:
            features = fbank.fbank(window * 32768.0)
        elif index == 2:
            features = fbank.fbank(window)
        if normalize_type == "global-mean":
            features = features - features.mean(axis=0)
        row = np.tanh(features.max(axis=0) @ weights)
        expected_rows.append(row / np.linalg.norm(row))
    ours = embedder.embed(windows)
    np.testing.assert_allclose(ours, np.stack(expected_rows), atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # Empty and one-sample windows have no frames: a zero row, never NaN.
    empty = embedder.embed([np.zeros(0, np.float32), np.zeros(1, np.float32)])
    assert empty.shape == (2, 192) and not empty.any()


def test_models_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a graph")
    with pytest.raises(SpeakerModelError, match="cannot open"):
        load_embedder(broken)
    path = tmp_path / "speaker.onnx"
    _random_model(path, normalize_samples=1, normalize_type="per-utterance-cmvn")
    with pytest.raises(SpeakerModelError, match="feature_normalize_type"):
        load_embedder(path)


def test_sparse_bank_equals_the_dense_product() -> None:
    """The BLAS-free filterbank gives the dense ``power @ bank.T`` for both front ends' banks,
    and for a bank with empty bands (first, inner, last), which reduceat alone gets wrong."""
    from gigaam_api.speakers import ge2e
    from gigaam_api.speakers.sparse_bank import SparseBank

    rng = np.random.default_rng(3)
    odd = rng.random((6, 9)) * (rng.random((6, 9)) > 0.5)
    odd[[0, 3, 5]] = 0.0
    for dense in (fbank._BANKS, ge2e._FILTERS, odd):
        power = rng.random((2, 7, dense.shape[1])) * 1e3
        np.testing.assert_allclose(SparseBank(dense).apply(power), power @ dense.T, rtol=1e-12)
    assert SparseBank(np.zeros((3, 4))).apply(np.ones((2, 4))).shape == (2, 3)
    with pytest.raises(ValueError, match="bins"):
        SparseBank(odd).apply(np.ones((2, 4)))
