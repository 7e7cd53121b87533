"""Resemblyzer's GE2E speaker encoder on ONNX Runtime: weights, front end and graph.

The Resemblyzer wheel (Apache-2.0) ships ``resemblyzer/pretrained.pt``, a d-vector encoder
trained with the generalized end-to-end loss: a 3-layer LSTM (40 mel bands in, hidden 256)
whose last hidden state goes through ``Linear(256, 256)``, ``ReLU`` and an L2 norm. Here it
is the *second* supported embedding model: small (1.4 M parameters), on PyPI with no account,
so the test suite diarizes real voices with real embeddings.

What Resemblyzer does and what we keep (``resemblyzer/audio.py``, ``voice_encoder.py``):

* ``wav_to_mel_spectrogram``: librosa's ``melspectrogram`` (power 2, *not* log) with a
  400-sample Hann window (periodic), hop 160, ``center=True`` with zero padding (librosa ≥ 0.10),
  40 Slaney mel bands 0–8 kHz. :func:`mel_frames` is that computation in numpy.
* A partial utterance is 160 frames (1.6 s); ``embed_utterance`` on exactly 25,600 samples runs
  one partial on frames 0–159 of the 161 librosa returns. A window here is that partial.
* ``preprocess_wav``'s volume normalisation (to −30 dBFS, increase only) is kept, per window:
  the network sees a power spectrogram, so its input scale is part of what it learnt.
  ``trim_long_silences`` (webrtcvad) is not: our windows come from the Silero VAD's speech
  regions, which already leave silence out.

``tests/test_speakers_ge2e.py`` compares our embeddings with Resemblyzer's own (a committed
fixture recorded by ``tests/fixtures/speakers/make_ge2e_reference.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any, Final

import numpy as np
from numpy.typing import NDArray

from gigaam_api.speakers.legacy_torch import (
    LegacyTorchError,
    read_legacy_torch,
    read_legacy_torch_stream,
)
from gigaam_api.speakers.sparse_bank import SparseBank

__all__ = [
    "EMBEDDING_SIZE",
    "FRAMES",
    "GE2E_FILE",
    "MEL_BANDS",
    "WINDOW_SAMPLES",
    "Ge2eWeightsError",
    "build_graph",
    "load_ge2e_weights",
    "load_ge2e_weights_stream",
    "mel_frames",
    "normalize_volume",
]

Float32Array = NDArray[np.float32]

#: The file name of the weights inside the Resemblyzer wheel.
GE2E_FILE: Final = "pretrained.pt"
MEL_BANDS: Final = 40
HIDDEN: Final = 256
EMBEDDING_SIZE: Final = 256
LAYERS: Final = 3
N_FFT: Final = 400  # 25 ms at 16 kHz
HOP: Final = 160  # 10 ms
#: Frames in one partial utterance (1.6 s), the unit the encoder was trained on.
FRAMES: Final = 160
#: Samples of one window: the 160 frames' hops.
WINDOW_SAMPLES: Final = FRAMES * HOP
#: Resemblyzer's ``audio_norm_target_dBFS``.
TARGET_DBFS: Final = -30.0
_INT16_MAX: Final = 2**15 - 1

_EXPECTED: Final[dict[str, tuple[int, ...]]] = {
    **{
        f"lstm.{kind}_l{layer}": shape
        for layer in range(LAYERS)
        for kind, shape in (
            ("weight_ih", (4 * HIDDEN, MEL_BANDS if layer == 0 else HIDDEN)),
            ("weight_hh", (4 * HIDDEN, HIDDEN)),
            ("bias_ih", (4 * HIDDEN,)),
            ("bias_hh", (4 * HIDDEN,)),
        )
    },
    "linear.weight": (EMBEDDING_SIZE, HIDDEN),
    "linear.bias": (EMBEDDING_SIZE,),
}


class Ge2eWeightsError(ValueError):
    """The file is not Resemblyzer's GE2E encoder (unreadable, or other tensors/shapes)."""


def load_ge2e_weights(path: Path) -> dict[str, Float32Array]:
    """The encoder's 14 tensors from a Resemblyzer ``pretrained.pt``, shape-checked.

    The file also holds the training loss's similarity scale and the Adam state; only the
    network is returned.
    """
    try:
        checkpoint: Any = read_legacy_torch(path)
    except (LegacyTorchError, OSError) as exc:
        raise Ge2eWeightsError(f"cannot read GE2E weights {path}: {exc}") from exc
    return _network(checkpoint, str(path))


def load_ge2e_weights_stream(stream: IO[bytes], name: str) -> dict[str, Float32Array]:
    """:func:`load_ge2e_weights` over an open stream (the file inside Resemblyzer's wheel)."""
    try:
        checkpoint: Any = read_legacy_torch_stream(stream, name)
    except LegacyTorchError as exc:
        raise Ge2eWeightsError(f"cannot read GE2E weights {name}: {exc}") from exc
    return _network(checkpoint, name)


def _network(checkpoint: Any, path: str) -> dict[str, Float32Array]:
    state = checkpoint.get("model_state") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise Ge2eWeightsError(f"{path} has no model_state: not a Resemblyzer encoder")
    weights: dict[str, Float32Array] = {}
    for name, shape in _EXPECTED.items():
        value = state.get(name)
        if not isinstance(value, np.ndarray) or value.shape != shape:
            got = getattr(value, "shape", None)
            raise Ge2eWeightsError(f"{path}: {name} should have shape {shape}, found {got}")
        weights[name] = value.astype(np.float32, copy=False)
    return weights


# --- front end ----------------------------------------------------------------------------------


def _hz_to_mel(hz: NDArray[np.float64]) -> NDArray[np.float64]:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear to 1 kHz, then log."""
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mel = hz / f_sp
    above = hz >= min_log_hz
    mel[above] = min_log_mel + np.log(hz[above] / min_log_hz) / logstep
    return mel


def _mel_to_hz(mel: NDArray[np.float64]) -> NDArray[np.float64]:
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    hz = f_sp * mel
    above = mel >= min_log_mel
    hz[above] = min_log_hz * np.exp(logstep * (mel[above] - min_log_mel))
    return hz


def _mel_filters(sample_rate: int = 16000) -> NDArray[np.float64]:
    """librosa ``filters.mel(sr, n_fft=400, n_mels=40)``: Slaney bands, Slaney area norm."""
    bins = 1 + N_FFT // 2
    fft_freqs = np.linspace(0.0, sample_rate / 2, bins)
    edges = _mel_to_hz(
        np.linspace(
            _hz_to_mel(np.array([0.0]))[0],
            _hz_to_mel(np.array([sample_rate / 2.0]))[0],
            MEL_BANDS + 2,
        )
    )
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    # librosa keeps the bank in float32; rounding it the same way keeps parity exact.
    return weights.astype(np.float32).astype(np.float64)


_FILTERS: Final = _mel_filters()
#: The same bank applied without BLAS (:mod:`~gigaam_api.speakers.sparse_bank` says why).
_SPARSE_FILTERS: Final = SparseBank(_FILTERS)
#: ``scipy.signal.get_window("hann", 400)``: the periodic Hann window librosa uses.
_WINDOW: Final = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)


def normalize_volume(wave: Float32Array) -> Float32Array:
    """Raise a quiet window to −30 dBFS (Resemblyzer's ``normalize_volume``, increase only).

    Silence (zero energy) is returned as it is instead of turning into NaN.
    """
    rms = float(np.sqrt(np.mean(np.square(wave.astype(np.float64) * _INT16_MAX))))
    if rms <= 0.0:
        return wave
    change = TARGET_DBFS - 20.0 * np.log10(rms / _INT16_MAX)
    if change <= 0:
        return wave
    return (wave * np.float32(10.0 ** (change / 20.0))).astype(np.float32)


def mel_frames(wave: Float32Array) -> Float32Array:
    """The first :data:`FRAMES` mel frames of a window (``[FRAMES, 40]``, power, not log).

    Equals ``resemblyzer.audio.wav_to_mel_spectrogram(wave)[:160]``; a window shorter than
    :data:`WINDOW_SAMPLES` is zero-padded first, as ``embed_utterance`` pads its last partial.
    """
    samples = np.zeros(WINDOW_SAMPLES, dtype=np.float64)
    n = min(len(wave), WINDOW_SAMPLES)
    samples[:n] = wave[:n]
    padded = np.pad(samples, N_FFT // 2)
    starts = np.arange(FRAMES) * HOP
    frames = padded[starts[:, None] + np.arange(N_FFT)[None, :]] * _WINDOW
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return _SPARSE_FILTERS.apply(power).astype(np.float32)


# --- graph ----------------------------------------------------------------------------------------


def _onnx_gates(matrix: Float32Array) -> Float32Array:
    """PyTorch stacks LSTM gates as (input, forget, cell, output); ONNX wants (i, o, f, c)."""
    i, f, g, o = np.split(matrix, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def build_graph(weights: dict[str, Float32Array]) -> bytes:
    """The encoder as a serialized ONNX graph: ``mels [N, T, 40]`` → ``embeddings [N, 256]``.

    Three ONNX ``LSTM`` nodes (time-major), the last layer's final hidden state, ``Gemm``,
    ``Relu`` and an L2 normalisation whose denominator is floored at 1e-12 (an all-zero
    ReLU output gives zeros, not NaN).
    """
    from onnx import TensorProto, helper, numpy_helper

    initializers = []
    nodes = [helper.make_node("Transpose", ["mels"], ["x0"], perm=[1, 0, 2])]

    def constant(name: str, value: NDArray[Any]) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    squeeze_dir = constant("axis1", np.array([1], dtype=np.int64))
    squeeze_first = constant("axis0", np.array([0], dtype=np.int64))
    current = "x0"
    for layer in range(LAYERS):
        w = constant(f"W{layer}", _onnx_gates(weights[f"lstm.weight_ih_l{layer}"])[None])
        r = constant(f"R{layer}", _onnx_gates(weights[f"lstm.weight_hh_l{layer}"])[None])
        bias = np.concatenate(
            [
                _onnx_gates(weights[f"lstm.bias_ih_l{layer}"]),
                _onnx_gates(weights[f"lstm.bias_hh_l{layer}"]),
            ]
        )[None]
        b = constant(f"B{layer}", bias)
        outputs = [f"y{layer}", f"h{layer}"]
        nodes.append(helper.make_node("LSTM", [current, w, r, b], outputs, hidden_size=HIDDEN))
        if layer < LAYERS - 1:
            nodes.append(helper.make_node("Squeeze", [f"y{layer}", squeeze_dir], [f"x{layer + 1}"]))
            current = f"x{layer + 1}"
    last = f"h{LAYERS - 1}"
    floor = constant("floor", np.array(1e-12, dtype=np.float32))
    nodes += [
        helper.make_node("Squeeze", [last, squeeze_first], ["hidden"]),
        helper.make_node(
            "Gemm",
            [
                "hidden",
                constant("linear_w", weights["linear.weight"]),
                constant("linear_b", weights["linear.bias"]),
            ],
            ["projected"],
            transB=1,
        ),
        helper.make_node("Relu", ["projected"], ["raw"]),
        helper.make_node(
            "ReduceL2",
            ["raw", constant("last_axis", np.array([1], dtype=np.int64))],
            ["norm"],
            keepdims=1,
        ),
        helper.make_node("Max", ["norm", floor], ["safe_norm"]),
        helper.make_node("Div", ["raw", "safe_norm"], ["embeddings"]),
    ]
    graph = helper.make_graph(
        nodes,
        "ge2e_speaker_encoder",
        [helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["batch", "frames", MEL_BANDS])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", EMBEDDING_SIZE])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return bytes(model.SerializeToString())
