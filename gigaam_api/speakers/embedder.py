"""The model face of diarization: audio windows in, one L2-normalised embedding per window out.

Two kinds of model stand behind :class:`SpeakerEmbedder`:

* :class:`FbankOnnxEmbedder` — a WeSpeaker / 3D-Speaker ONNX file as sherpa-onnx publishes it
  (``x [N, T, 80]`` fbank in, ``[N, D]`` embedding out, metadata saying how to scale the samples
  and whether to subtract the feature mean). The production models of
  :mod:`gigaam_api.speakers.catalogue` are of this kind.
* :class:`Ge2eEmbedder` — Resemblyzer's GE2E LSTM, its graph built here from the weights
  (:mod:`gigaam_api.speakers.ge2e`). Real, small, on PyPI: the tests' model.

:func:`load_embedder` picks one by file: ``.onnx`` → fbank model; ``.pt`` or a Resemblyzer
``.whl`` → GE2E. Choosing by catalogue *name* (and downloading) is one step up, in
``gigaam_api/speaker_weights.py``, because this package may not import the downloader.
"""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from gigaam_api.constants import SAMPLE_RATE
from gigaam_api.onnx_session import ORT_ERRORS, create_session
from gigaam_api.speakers import fbank as kaldi
from gigaam_api.speakers import ge2e

__all__ = [
    "FbankOnnxEmbedder",
    "Ge2eEmbedder",
    "SpeakerEmbedder",
    "SpeakerModelError",
    "load_embedder",
]

Float32Array = NDArray[np.float32]

#: Windows per ONNX Runtime call: bounds the batch tensor (64 x 1.6 s of fbank ~ 4 MB).
BATCH: Final = 64
#: Windows per call of a convolutional fbank model (CAM++, ResNet34). Their activations are
#: large (CAM++'s 2-D head: 32 channels x 80 bins x 150 frames, ~1.5 MB per window in fp32),
#: so 64 windows at once held ~100 MB and crowded the recogniser out of the caches beside it;
#: per window a call of 4 costs what one of 64 does (benchmarks/README.md).
RUN_BATCH: Final = 4


class SpeakerModelError(ValueError):
    """The speaker model file is missing, unreadable or not a model this code can run."""


@runtime_checkable
class SpeakerEmbedder(Protocol):
    """What diarization needs from a speaker model."""

    #: A short name for logs and benchmarks.
    name: str
    #: Size of one embedding.
    dimension: int
    #: The window length (seconds) the model is meant to see; windows are planned with it.
    window_seconds: float
    #: Cosine similarity above which two windows' clusters are taken for one speaker when the
    #: number of speakers is not given (the model's scale: GE2E's ReLU embeddings are all
    #: positive and sit much closer together than CAM++'s).
    same_speaker_similarity: float

    def embed(self, windows: Sequence[NDArray[Any]]) -> Float32Array:
        """``[len(windows), dimension]`` float32, each row of unit length.

        ``windows`` are 16 kHz mono float samples in [-1, 1] (any length; a silent or too short
        window gives a zero row rather than NaN).
        """
        ...


def _normalise(rows: NDArray[Any]) -> Float32Array:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit: Float32Array = (rows / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


class FbankOnnxEmbedder:
    """A sherpa-onnx style WeSpeaker / 3D-Speaker ONNX speaker model on Kaldi fbank."""

    window_seconds = 1.5
    same_speaker_similarity = 0.5

    def __init__(self, path: Path, *, threads: int = 1, snip_edges: bool = False) -> None:
        try:
            self._session = create_session(path, threads)
        except ORT_ERRORS as exc:
            raise SpeakerModelError(f"cannot open speaker model {path}: {exc}") from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 3 or inputs[0].shape[2] != kaldi.FBANK_BINS:
            raise SpeakerModelError(f"{path} does not take [N, T, 80] fbank features")
        if int(meta.get("sample_rate", SAMPLE_RATE)) != SAMPLE_RATE:
            raise SpeakerModelError(f"{path} is not a {SAMPLE_RATE} Hz model")
        normalize_type = meta.get("feature_normalize_type", "")
        if normalize_type not in ("", "global-mean"):
            raise SpeakerModelError(f"{path}: unsupported feature_normalize_type {normalize_type}")
        self._input = inputs[0].name
        #: sherpa-onnx: WeSpeaker models see int16-scaled samples, 3D-Speaker ones [-1, 1].
        self._scale = 1.0 if int(meta.get("normalize_samples", 1)) else 32768.0
        self._subtract_mean = normalize_type == "global-mean"
        self._snip_edges = snip_edges
        output = self._session.get_outputs()[0].shape
        self.dimension = int(
            meta.get("output_dim", output[-1] if isinstance(output[-1], int) else 0)
        )
        self.name = path.stem
        #: Windows per ONNX Runtime call.
        self.run_batch = RUN_BATCH
        self._lock = threading.Lock()

    def features(self, window: NDArray[Any]) -> Float32Array:
        """The fbank the model sees for one window (scaled, mean-subtracted as the file asks)."""
        feats = kaldi.fbank(
            np.asarray(window, dtype=np.float64) * self._scale, snip_edges=self._snip_edges
        )
        return kaldi.subtract_mean(feats) if self._subtract_mean else feats

    def embed(self, windows: Sequence[NDArray[Any]]) -> Float32Array:
        out = np.zeros((len(windows), self.dimension), dtype=np.float32)
        feats = [self.features(w) for w in windows]
        # One call per group of equal frame counts (the planned windows are nearly all equal).
        by_length: dict[int, list[int]] = {}
        for index, f in enumerate(feats):
            if len(f):
                by_length.setdefault(len(f), []).append(index)
        for indices in by_length.values():
            for start in range(0, len(indices), self.run_batch):
                part = indices[start : start + self.run_batch]
                batch = np.stack([feats[i] for i in part])
                with self._lock:
                    (result,) = self._session.run(None, {self._input: batch})[:1]
                out[part] = _normalise(np.asarray(result).reshape(len(part), -1))
        return out


class Ge2eEmbedder:
    """Resemblyzer's GE2E encoder, one 1.6 s partial utterance per window."""

    name = "resemblyzer_ge2e"
    dimension = ge2e.EMBEDDING_SIZE
    window_seconds = ge2e.WINDOW_SAMPLES / SAMPLE_RATE
    #: Measured on the corpus voices (docs/speakers.md): windows score ~0.8–0.9 against their
    #: own voice's centroid, clusters of one voice split by a block ~0.73–0.74 against each
    #: other, different voices' centroids 0.44–0.69.
    same_speaker_similarity = 0.72

    def __init__(self, weights: dict[str, Float32Array], *, threads: int = 1) -> None:
        self._session = create_session(ge2e.build_graph(weights), threads)
        self._lock = threading.Lock()

    def embed(self, windows: Sequence[NDArray[Any]]) -> Float32Array:
        out = np.zeros((len(windows), self.dimension), dtype=np.float32)
        for start in range(0, len(windows), BATCH):
            part = windows[start : start + BATCH]
            mels = np.stack(
                [
                    ge2e.mel_frames(ge2e.normalize_volume(np.asarray(w, dtype=np.float32)))
                    for w in part
                ]
            )
            with self._lock:
                (result,) = self._session.run(None, {"mels": mels})
            out[start : start + len(part)] = result
        return out


def _ge2e_weights(path: Path) -> dict[str, Float32Array]:
    if path.suffix == ".whl":
        member = f"resemblyzer/{ge2e.GE2E_FILE}"
        try:
            with zipfile.ZipFile(path) as wheel, wheel.open(member) as stream:
                return ge2e.load_ge2e_weights_stream(stream, f"{path.name}:{member}")
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise SpeakerModelError(f"{path} is not a Resemblyzer wheel: {exc}") from exc
    return ge2e.load_ge2e_weights(path)


def load_embedder(path: str | Path, *, threads: int = 1) -> SpeakerEmbedder:
    """The embedder for a local model file: ``.onnx`` (WeSpeaker / 3D-Speaker, sherpa-onnx
    layout), ``.pt`` (Resemblyzer's ``pretrained.pt``) or a Resemblyzer ``.whl``.

    Raises :class:`SpeakerModelError` with the reason when the file cannot be used.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise SpeakerModelError(f"speaker model {file} does not exist or is not a file")
    if file.suffix == ".onnx":
        return FbankOnnxEmbedder(file, threads=threads)
    if file.suffix in (".pt", ".whl"):
        try:
            return Ge2eEmbedder(_ge2e_weights(file), threads=threads)
        except ge2e.Ge2eWeightsError as exc:
            raise SpeakerModelError(str(exc)) from exc
    raise SpeakerModelError(
        f"speaker model {file.name}: expected an .onnx file (WeSpeaker/3D-Speaker) or "
        "Resemblyzer's pretrained.pt / wheel"
    )
