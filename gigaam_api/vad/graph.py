"""The Silero network rebuilt as an ONNX *sequence* graph from the package model's weights.

Silero scores each 512-sample window independently up to its LSTM, so the STFT and the
convolutional encoder can run on N windows at once: ``frames [N, 4, 256]`` → STFT magnitude and
encoder as batched MatMuls (each fixed-size convolution becomes one product over its taps) →
one ONNX ``LSTM`` over the N windows from the carried state → decoder → N probabilities and
the final state. :mod:`gigaam_api.vad.model` runs it; ``tests/test_vad.py`` checks it against
the package's window-by-window model.

The graph is small (a few dozen nodes over fixed shapes) and written directly with the ``onnx``
helpers; it shares no building blocks with the recogniser's conformer graphs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CONTEXT",
    "FRAME",
    "FRAMES",
    "HIDDEN",
    "HOP",
    "WINDOW",
    "VadModelError",
    "build_sequence_graph",
    "load_weights",
]

#: Samples scored per step (32 ms), as Silero v5/v6 requires at 16 kHz.
WINDOW: Final = 512
#: Samples of the previous window prepended to each window.
CONTEXT: Final = 64
HIDDEN: Final = 128  # LSTM state size
FRAME: Final = 256  # STFT window of the model
HOP: Final = 128  # STFT hop of the model
FRAMES: Final = 4  # STFT frames per window: (64 + 512 + 64 reflect pad - 256) / 128 + 1
_BINS = FRAME // 2 + 1  # 129

Float32Array = NDArray[np.float32]

#: Weight names in the package model and the shapes our graph relies on.
_EXPECTED_SHAPES: Final[Mapping[str, tuple[int, ...]]] = {
    "model.stft.forward_basis_buffer": (2 * _BINS, 1, FRAME),
    "model.encoder.0.reparam_conv.weight": (128, _BINS, 3),
    "model.encoder.0.reparam_conv.bias": (128,),
    "model.encoder.1.reparam_conv.weight": (64, 128, 3),
    "model.encoder.1.reparam_conv.bias": (64,),
    "model.encoder.2.reparam_conv.weight": (64, 64, 3),
    "model.encoder.2.reparam_conv.bias": (64,),
    "model.encoder.3.reparam_conv.weight": (128, 64, 3),
    "model.encoder.3.reparam_conv.bias": (128,),
    "model.decoder.rnn.weight_ih": (4 * HIDDEN, 128),
    "model.decoder.rnn.weight_hh": (4 * HIDDEN, HIDDEN),
    "model.decoder.rnn.bias_ih": (4 * HIDDEN,),
    "model.decoder.rnn.bias_hh": (4 * HIDDEN,),
    "model.decoder.decoder.2.weight": (1, HIDDEN, 1),
    "model.decoder.decoder.2.bias": (1,),
}


class VadModelError(RuntimeError):
    """The Silero model file is missing or not the one this code was written for."""


def load_weights(path: Path) -> dict[str, Float32Array]:
    """The weights our graph needs from the package's ONNX file, shape-checked."""
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
        "dec_w": w["model.decoder.decoder.2.weight"].reshape(HIDDEN, 1),
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
            hidden_size=HIDDEN,
        ),
        # decoder: ReLU → 1x1 conv → sigmoid, per window
        node("Relu", ["hidden"], "hidden_act"),
        node("Reshape", ["hidden_act", "shape_n_128"], "dec_in"),
        node("MatMul", ["dec_in", "dec_w"], "logit0"),
        node("Add", ["logit0", "dec_b"], "logit"),
        node("Sigmoid", ["logit"], "prob"),
        node("Reshape", ["prob", "minus1"], "probs"),
    ]
    state = [1, 1, HIDDEN]
    graph = helper.make_graph(
        nodes,
        "silero_vad_sequence",
        [
            helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["n", FRAMES, FRAME]),
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
