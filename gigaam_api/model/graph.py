"""GigaAM encoders and heads (v1, v2, v3, multilingual) as ONNX graphs, from numpy weights.

No torch and no exporter: every node is written here with the ``onnx`` helpers, so the graph
has exactly the shape we want ONNX Runtime to see (the measurements are in ``docs/design.md``):

* the residual stream is kept 2-D ``[B·T, D]`` so every linear layer is one ``Gemm`` (bias
  fused) or, with int8, one ``DynamicQuantizeMatMul`` — the 1×1 convolutions too; linears that
  read the same input are one product (q with k, the two GLU halves), so with int8 each
  activation is quantized once;
* rotary position encoding is ORT's fused ``RotaryEmbedding`` (NeoX half split) applied to the
  layer-normed input before ``linear_q``/``linear_k``, as GigaAM does; the cos/sin tables are
  computed in-graph for the actual length, so there is no 5000-frame limit;
* attention is ORT's fused ``MultiHeadAttention`` with a ``[B, T]`` key-padding mask, which an
  ``If`` skips when no item is padded — no ``[B, H, T, T]`` masks and no ``Where``;
* constant factors are folded into weights where that is exact (the macaron ½);
* the generations' variants (``spec.EncoderSpec``) are one builder each — conv1d or conv2d
  subsampling, rotary or relative-position attention (the Transformer-XL position term as
  the fused kernel's attention bias), LayerNorm or BatchNorm in the conv module — and each
  block names the weights it reads (``_subsampling_shapes``, ``_attention_shapes``,
  ``_conv_module_shapes``), so a checkpoint that lacks one is refused naming it.

Masking follows the reference exactly on valid frames: features and both subsampling outputs
are zeroed past each item's length, the conv module zeroes padded frames before the depthwise
convolution, and padded keys get no attention weight. Padded frames carry finite garbage that
never reaches a valid frame.

A graph is returned as a :class:`GraphBundle` (a weight-less ``ModelProto`` plus its numpy
initializers) and written with :func:`save_bundle`, large weights in one page-aligned external
data file that ONNX Runtime can memory-map.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from gigaam_api.model.spec import (
    GRAPH_VERSION,
    EncoderSpec,
    ModelSpec,
    UnsupportedModelError,
    model_spec,
)

__all__ = [
    "GRAPH_VERSION",
    "EncoderSpec",
    "GraphBundle",
    "ModelSpec",
    "UnsupportedModelError",
    "build_encoder",
    "build_step",
    "check_weights",
    "expected_shapes",
    "model_spec",
    "save_bundle",
]

OPSET = 17  # LayerNormalization
MS_DOMAIN = "com.microsoft"
LN_EPS = 1e-5
BN_EPS = 1e-5  # torch.nn.BatchNorm1d's default, which upstream keeps
_BN_PARAMS = ("weight", "bias", "running_mean", "running_var")
#: Weights at least this large go to the external data file, each at a page-aligned offset.
EXTERNAL_MIN_BYTES = 4096
ALIGNMENT = 4096


@dataclass(frozen=True)
class LazyTensor:
    """An initializer computed only when written: keeps a build's memory at one tensor.

    A full-size fp32 encoder is 850 MB of transposed/scaled weights; producing each one
    just before it is written (from the checkpoint's memory map) means the build never holds
    them all at once.
    """

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    make: Callable[[], np.ndarray]


Tensor = np.ndarray | LazyTensor


def materialize(tensor: Tensor) -> np.ndarray:
    """The array of an eager or lazy initializer (C-contiguous)."""
    array = tensor.make() if isinstance(tensor, LazyTensor) else tensor
    return array if array.flags.c_contiguous else array.copy()


@dataclass
class GraphBundle:
    """An ONNX model whose initializers live in ``weights`` (the proto holds no tensor data)."""

    model: onnx.ModelProto
    weights: dict[str, Tensor] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# a tiny graph builder


class _Builder:
    """Collects nodes and numpy initializers; names values uniquely."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.weights: dict[str, Tensor] = {}
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def weight(self, name: str, array: Tensor) -> str:
        if name in self.weights:
            raise ValueError(f"duplicate initializer {name}")
        # (np.ascontiguousarray would turn a scalar into shape [1])
        if isinstance(array, np.ndarray) and not array.flags.c_contiguous:
            array = array.copy()
        self.weights[name] = array
        return name

    def const(self, values: Sequence[int] | int | float, dtype: Any = np.int64) -> str:
        array = np.asarray(values, dtype=dtype)
        return self.weight(self._name("const"), array)

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        *,
        outputs: int | Sequence[str] = 1,
        domain: str = "",
        name: str | None = None,
        **attrs: Any,
    ) -> Any:
        if isinstance(outputs, int):
            out_names = [self._name(op_type.lower()) for _ in range(outputs)]
        else:
            out_names = list(outputs)
        node = helper.make_node(
            op_type,
            list(inputs),
            out_names,
            name=name or self._name(op_type),
            domain=domain or None,
            **attrs,
        )
        self.nodes.append(node)
        return out_names[0] if len(out_names) == 1 else out_names


def _f32(array: np.ndarray) -> np.ndarray:
    return np.array(array, dtype=np.float32, order="C", copy=None)


def _concat_rows(*parts: np.ndarray) -> LazyTensor:
    """Weights or biases of linears that share an input, stacked along the output axis —
    produced when written, like every other weight (see :class:`LazyTensor`)."""
    shape = (sum(int(p.shape[0]) for p in parts), *parts[0].shape[1:])
    return LazyTensor(shape, np.dtype(np.float32), lambda: np.concatenate([_f32(p) for p in parts]))


def _quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output channel: ``w`` [in, out] → (int8 [in, out], scales [out]).

    Zero points are 0. One scale per output column instead of one per tensor: each column
    uses its whole int8 range (less error: 1.3 % vs 1.6 % mean relative error of one
    feed-forward product), at the same speed (``DynamicQuantizeMatMul`` applies the scales
    after the integer product). It also makes merging linears that read the same input
    (q/k, the GLU halves) exactly neutral: a column's scale does not depend on its neighbours.
    """
    amax = np.max(np.abs(w), axis=0)
    scale = np.where(amax > 0, amax / np.float32(127.0), np.float32(1.0)).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale


class _Linear:
    """Emits ``y = x @ W.T + b`` for 2-D ``x`` as Gemm (fp32) or DynamicQuantizeMatMul (int8)."""

    def __init__(self, builder: _Builder, quantize: bool) -> None:
        self.b = builder
        self.quantize = quantize

    def __call__(
        self,
        x: str,
        name: str,
        weight: Tensor,
        bias: np.ndarray | None,
        *,
        scale: float = 1.0,
        quantize: bool | None = None,
    ) -> str:
        def transposed() -> np.ndarray:  # [out, in...] → [in, out], scaled
            w = materialize(weight)
            w = w.reshape(w.shape[0], -1).T
            return _f32(w * np.float32(scale) if scale != 1.0 else w)

        bias_arr = None if bias is None else _f32(bias * np.float32(scale))
        shape = (int(np.prod(weight.shape[1:])), int(weight.shape[0]))
        if self.quantize if quantize is None else quantize:
            # Lazy as well: the int8 tensor and its scale come from one pass over the weight,
            # made when the int8 tensor is written (just before its scale).
            done: dict[str, Any] = {}

            def quantized() -> np.ndarray:
                done["q"], done["scale"] = _quantize_weight(transposed())
                return np.asarray(done.pop("q"))

            def scale_of() -> np.ndarray:
                if "scale" not in done:
                    quantized()
                return np.asarray(done.pop("scale"), dtype=np.float32)

            inputs = [
                x,
                self.b.weight(f"{name}.weight_q", LazyTensor(shape, np.dtype(np.int8), quantized)),
                self.b.weight(
                    f"{name}.weight_scale", LazyTensor(shape[1:], np.dtype(np.float32), scale_of)
                ),
                self.b.weight(f"{name}.weight_zp", np.zeros(shape[1:], dtype=np.int8)),
            ]
            if bias_arr is not None:
                inputs.append(self.b.weight(f"{name}.bias", bias_arr))
            return str(self.b.op("DynamicQuantizeMatMul", inputs, domain=MS_DOMAIN))
        lazy = LazyTensor(shape, np.dtype(np.float32), transposed)
        inputs = [x, self.b.weight(f"{name}.weight", lazy)]
        if bias_arr is not None:
            inputs.append(self.b.weight(f"{name}.bias", bias_arr))
        return str(self.b.op("Gemm", inputs))


# --------------------------------------------------------------------------------------------
# weight shapes


def _subsampling_shapes(enc: EncoderSpec) -> dict[str, tuple[int, ...]]:
    """``encoder.pre_encode``: strided convs (``conv.0``, ``conv.2``…; ReLUs between) and,
    for conv2d, the ``out`` linear over channels × remaining frequency bins."""
    d, k = enc.d_model, enc.subs_kernel
    shapes: dict[str, tuple[int, ...]] = {}
    in_ch = 1 if enc.subsampling == "conv2d" else enc.feat_in
    for stage in range(enc.subs_stages):
        key = f"encoder.pre_encode.conv.{2 * stage}"
        kernel = (k, k) if enc.subsampling == "conv2d" else (k,)
        shapes[f"{key}.weight"], shapes[f"{key}.bias"] = (d, in_ch, *kernel), (d,)
        in_ch = d
    if enc.subsampling == "conv2d":
        shapes["encoder.pre_encode.out.weight"] = (d, d * enc.subs_freq_out)
        shapes["encoder.pre_encode.out.bias"] = (d,)
    return shapes


def _attention_shapes(enc: EncoderSpec, a: str) -> dict[str, tuple[int, ...]]:
    """``self_attn``: q, k, v, out; relative positions add ``linear_pos`` and two biases."""
    d = enc.d_model
    shapes: dict[str, tuple[int, ...]] = {}
    for proj in ("q", "k", "v", "out"):
        shapes[f"{a}.linear_{proj}.weight"], shapes[f"{a}.linear_{proj}.bias"] = (d, d), (d,)
    if enc.attention == "rel_pos":
        shapes[f"{a}.linear_pos.weight"] = (d, d)
        shapes[f"{a}.pos_bias_u"] = shapes[f"{a}.pos_bias_v"] = (enc.n_heads, enc.head_dim)
    return shapes


def _conv_module_shapes(enc: EncoderSpec, c: str) -> dict[str, tuple[int, ...]]:
    """``conv``: GLU pointwise, depthwise, the norm (LayerNorm or BatchNorm with running
    statistics, both named ``batch_norm`` upstream), pointwise."""
    d = enc.d_model
    shapes: dict[str, tuple[int, ...]] = {
        f"{c}.pointwise_conv1.weight": (2 * d, d, 1),
        f"{c}.pointwise_conv1.bias": (2 * d,),
        f"{c}.depthwise_conv.weight": (d, 1, enc.conv_kernel),
        f"{c}.depthwise_conv.bias": (d,),
        f"{c}.batch_norm.weight": (d,),
        f"{c}.batch_norm.bias": (d,),
        f"{c}.pointwise_conv2.weight": (d, d, 1),
        f"{c}.pointwise_conv2.bias": (d,),
    }
    if enc.conv_norm == "batch_norm":
        shapes[f"{c}.batch_norm.running_mean"] = shapes[f"{c}.batch_norm.running_var"] = (d,)
    return shapes


def expected_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Every weight the graphs read, with the shape the config implies (block by block)."""
    enc = spec.encoder
    d, ff = enc.d_model, enc.ff_dim
    shapes = _subsampling_shapes(enc)
    for i in range(enc.n_layers):
        p = f"encoder.layers.{i}"
        for norm in ("feed_forward1", "self_att", "conv", "feed_forward2", "out"):
            shapes[f"{p}.norm_{norm}.weight"] = shapes[f"{p}.norm_{norm}.bias"] = (d,)
        for which in ("feed_forward1", "feed_forward2"):
            shapes[f"{p}.{which}.linear1.weight"], shapes[f"{p}.{which}.linear1.bias"] = (
                (ff, d),
                (ff,),
            )
            shapes[f"{p}.{which}.linear2.weight"], shapes[f"{p}.{which}.linear2.bias"] = (
                (d, ff),
                (d,),
            )
        shapes |= _attention_shapes(enc, f"{p}.self_attn")
        shapes |= _conv_module_shapes(enc, f"{p}.conv")
    n = spec.num_classes
    if spec.kind == "ctc":
        shapes["head.decoder_layers.0.weight"], shapes["head.decoder_layers.0.bias"] = (
            (n, d, 1),
            (n,),
        )
    else:
        hid, joint = spec.pred_hidden, spec.joint_hidden
        shapes["head.decoder.embed.weight"] = (n, hid)
        shapes["head.decoder.lstm.weight_ih_l0"] = shapes["head.decoder.lstm.weight_hh_l0"] = (
            4 * hid,
            hid,
        )
        shapes["head.decoder.lstm.bias_ih_l0"] = shapes["head.decoder.lstm.bias_hh_l0"] = (4 * hid,)
        shapes["head.joint.pred.weight"], shapes["head.joint.pred.bias"] = (joint, hid), (joint,)
        shapes["head.joint.enc.weight"], shapes["head.joint.enc.bias"] = (joint, d), (joint,)
        shapes["head.joint.joint_net.1.weight"], shapes["head.joint.joint_net.1.bias"] = (
            (n, joint),
            (n,),
        )
    return shapes


def check_weights(spec: ModelSpec, state_dict: Mapping[str, np.ndarray]) -> None:
    """Raise :class:`UnsupportedModelError` naming the first missing or misshapen weight.

    Checked up front because the graphs produce weights lazily: a bad shape would otherwise
    surface as an opaque ONNX Runtime error when the session opens.
    """
    for key, shape in expected_shapes(spec).items():
        if key not in state_dict:
            raise UnsupportedModelError(f"state_dict lacks {key!r}, which its config implies")
        actual = tuple(int(x) for x in np.shape(state_dict[key]))
        if actual != shape:
            raise UnsupportedModelError(
                f"weight {key!r} has shape {list(actual)}; the config implies {list(shape)}"
            )
        if not np.issubdtype(np.asarray(state_dict[key]).dtype, np.floating):
            raise UnsupportedModelError(f"weight {key!r} is not floating point")


# --------------------------------------------------------------------------------------------
# the encoder


def _layer_norm(b: _Builder, x: str, sd: Mapping[str, np.ndarray], prefix: str) -> str:
    return str(
        b.op(
            "LayerNormalization",
            [
                x,
                b.weight(f"{prefix}.weight", _f32(sd[f"{prefix}.weight"])),
                b.weight(f"{prefix}.bias", _f32(sd[f"{prefix}.bias"])),
            ],
            axis=-1,
            epsilon=LN_EPS,
        )
    )


def _silu(b: _Builder, x: str) -> str:
    # QuickGelu(alpha=1) is x·sigmoid(x): one fused kernel instead of Sigmoid + Mul.
    return str(b.op("QuickGelu", [x], domain=MS_DOMAIN, alpha=1.0))


def _time_mask(b: _Builder, x: str, axis: int, lengths: str) -> tuple[str, str]:
    """(float mask [B, T] with 1 for frames < length, T as an int64 scalar) for ``x``'s axis."""
    t = b.op("Gather", [b.op("Shape", [x]), b.const(axis)], axis=0)
    frames = b.op("Range", [b.const(0), t, b.const(1)])
    valid = b.op(
        "Less",
        [b.op("Unsqueeze", [frames, b.const([0])]), b.op("Unsqueeze", [lengths, b.const([1])])],
    )
    return str(b.op("Cast", [valid], to=TensorProto.FLOAT)), str(t)


def _strided_conv(
    b: _Builder,
    lin: _Linear,
    x: str,
    batch: str,
    name: str,
    weight: np.ndarray,
    bias: np.ndarray,
    *,
    quantize: bool,
) -> str:
    """Conv1d (kernel k, stride 2, padding (k-1)/2) on time-major ``x`` [B, T, C] as one GEMM.

    The k strided time slices are concatenated into [B, T_out, k·C] columns and multiplied by
    the kernel laid out as [k·C, O]: the same products as ``Conv``, but in the layout the rest
    of the encoder uses (no transposes) and quantizable as a plain matrix product.
    """
    out_ch, in_ch, k = weight.shape
    pad = (k - 1) // 2
    t = b.op("Gather", [b.op("Shape", [x]), b.const(1)], axis=0)
    t_out = b.op("Div", [b.op("Add", [t, b.const(1)]), b.const(2)])  # = floor((T-1)/2) + 1
    padded = b.op("Pad", [x, b.const([0, pad, 0, 0, pad, 0])])
    span = b.op("Mul", [t_out, b.const(2)])
    columns = []
    for tap in range(k):
        end = b.op("Unsqueeze", [b.op("Add", [span, b.const(tap - 1)]), b.const([0])])
        columns.append(b.op("Slice", [padded, b.const([tap]), end, b.const([1]), b.const([2])]))
    cols = b.op("Concat", columns, axis=2)
    cols = b.op("Reshape", [cols, b.const([-1, k * in_ch])])
    # torch [O, C, k] → [O, k·C] with tap-major columns, matching the concatenation order
    kernel = np.ascontiguousarray(np.transpose(weight, (0, 2, 1)).reshape(out_ch, k * in_ch))
    y = lin(cols, name, kernel, bias, quantize=quantize)
    shape = b.op("Concat", [batch, b.const([-1, out_ch])], axis=0)
    return str(b.op("Reshape", [y, shape]))


def _subsampling(
    b: _Builder,
    lin: _Linear,
    spec: EncoderSpec,
    sd: Mapping[str, np.ndarray],
    features: str,
    lengths: str,
    batch: str,
) -> tuple[str, str, str]:
    """Strided subsampling; returns (x [B, T', D], mask [B, T'], lengths [B] int64).

    Frames past each item's length are zeroed before the first conv and after each conv, as
    the reference does (upstream #75). conv1d (v3): the first conv sees raw log-mel values and
    stays fp32; the second (D·k → D) is quantized with the rest of the encoder. conv2d (v1/v2):
    both 2-D convs are ONNX ``Conv`` in fp32, the ``out`` linear is quantized with the rest.
    """
    mask, _ = _time_mask(b, features, 2, lengths)
    x = b.op("Transpose", [features], perm=[0, 2, 1])  # [B, T, F]
    x = b.op("Mul", [x, b.op("Unsqueeze", [mask, b.const([2])])])
    if spec.subsampling == "conv2d":
        return _subsampling_2d(b, lin, spec, sd, x, lengths, batch)
    for stage in range(spec.subs_stages):
        key = f"encoder.pre_encode.conv.{2 * stage}"
        x = _strided_conv(
            b,
            lin,
            x,
            batch,
            key,
            np.asarray(sd[f"{key}.weight"], dtype=np.float32),
            np.asarray(sd[f"{key}.bias"], dtype=np.float32),
            quantize=lin.quantize and stage > 0,
        )
        # floor((L + 2p - k) / 2 + 1) with odd k = 2p + 1 is (L + 1) // 2 for L >= 0
        lengths = b.op("Div", [b.op("Add", [lengths, b.const(1)]), b.const(2)])
        mask, _ = _time_mask(b, x, 1, lengths)
        x = b.op("Relu", [b.op("Mul", [x, b.op("Unsqueeze", [mask, b.const([2])])])])
    return str(x), mask, str(lengths)


def _subsampling_2d(
    b: _Builder,
    lin: _Linear,
    spec: EncoderSpec,
    sd: Mapping[str, np.ndarray],
    x: str,
    lengths: str,
    batch: str,
) -> tuple[str, str, str]:
    """conv2d subsampling on masked [B, T, F]: ``Conv2d(k, stride 2, padding (k-1)/2)`` + ReLU
    per stage over [B, C, T, F] (one input channel first), the time mask after each conv, then
    [B, T', C, F'] flattened channel-major into the ``out`` linear, as upstream reshapes it."""
    k, pad = spec.subs_kernel, (spec.subs_kernel - 1) // 2
    x = b.op("Unsqueeze", [x, b.const([1])])  # [B, 1, T, F]
    mask = ""
    for stage in range(spec.subs_stages):
        key = f"encoder.pre_encode.conv.{2 * stage}"
        x = b.op(
            "Conv",
            [
                x,
                b.weight(f"{key}.weight", _f32(sd[f"{key}.weight"])),
                b.weight(f"{key}.bias", _f32(sd[f"{key}.bias"])),
            ],
            kernel_shape=[k, k],
            strides=[2, 2],
            pads=[pad, pad, pad, pad],
            name=key,
        )
        lengths = b.op("Div", [b.op("Add", [lengths, b.const(1)]), b.const(2)])
        mask, _ = _time_mask(b, x, 2, lengths)
        x = b.op("Relu", [b.op("Mul", [x, b.op("Unsqueeze", [mask, b.const([1, 3])])])])
    x = b.op("Transpose", [x], perm=[0, 2, 1, 3])  # [B, T', C, F']
    flat = spec.d_model * spec.subs_freq_out
    y = lin(
        b.op("Reshape", [x, b.const([-1, flat])]),
        "encoder.pre_encode.out",
        sd["encoder.pre_encode.out.weight"],
        sd["encoder.pre_encode.out.bias"],
    )
    y = b.op("Reshape", [y, b.op("Concat", [batch, b.const([-1, spec.d_model])], axis=0)])
    return str(y), mask, str(lengths)


def _rotary_tables(b: _Builder, spec: EncoderSpec, t: str) -> tuple[str, str]:
    """cos/sin caches [T', head_dim/2] for positions 0..T'-1, computed for this run's length.

    Same arithmetic as the reference's table (float32 ``t * inv_freq`` then cos/sin), so the
    values agree to the last ulp or two, at any length.
    """
    dim = spec.head_dim
    inv_freq = (
        np.float32(1.0)
        / (np.float32(spec.pos_base) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
    ).astype(np.float32)
    positions = b.op("Cast", [b.op("Range", [b.const(0), t, b.const(1)])], to=TensorProto.FLOAT)
    freqs = b.op(
        "Mul",
        [
            b.op("Unsqueeze", [positions, b.const([1])]),
            b.weight("rotary.inv_freq", inv_freq.reshape(1, -1)),
        ],
    )
    return str(b.op("Cos", [freqs])), str(b.op("Sin", [freqs]))


def _add_layer_norm(
    b: _Builder, x: str, skip: str, sd: Mapping[str, np.ndarray], prefix: str
) -> tuple[str, str]:
    """Residual add then LayerNorm: returns (LN(x + skip), x + skip).

    Plain Add + LayerNormalization: ORT's fused SkipLayerNormalization measured 2.5× slower
    than the pair on CPU (3.8 vs 1.5 ms at [1500, 768]).
    """
    total = str(b.op("Add", [x, skip]))
    return _layer_norm(b, total, sd, prefix), total


@dataclass(frozen=True)
class _Context:
    """Values every layer reads, computed once per graph (names of graph values)."""

    #: [B, T', D] and [-1, D] shapes for the 3-D and 2-D views of the residual stream
    btd: str
    nd: str
    #: 1.0 for valid frames as [B·T', 1]; int32 [B, T'] key mask; "no item is padded" (bool)
    mask_n1: str
    key_mask: str
    no_padding: str
    #: rotary: cos/sin tables [T', head_dim/2] and position offset 0
    cos: str = ""
    sin: str = ""
    pos0: str = ""
    #: rel_pos: sinusoidal table [2T'-1, D] for relative positions T'-1 … -(T'-1); T' (int64);
    #: the [B, T', H] prefix of the per-head shape
    rel_table: str = ""
    frames: str = ""
    btd_heads: str = ""


def _attention(
    b: _Builder,
    spec: EncoderSpec,
    q: str,
    k: str,
    v: str,
    ctx: _Context,
    bias: str | None = None,
) -> str:
    """Fused multi-head attention; the key-padding mask is only applied when a batch has padding.

    An ``If`` on "every item is full length" picks the unmasked kernel (the common batch-of-one
    case, and ORT's faster path) or the masked one; both give the same valid frames.
    ``bias`` [B, H, T, T] is added to the scaled scores (relative positions).
    """
    attrs: dict[str, Any] = {"num_heads": spec.n_heads, "scale": 1.0 / math.sqrt(spec.head_dim)}
    out = b._name("attention")
    branches = {}
    # MultiHeadAttention inputs: query, key, value, bias, key_padding_mask, attention_bias
    tail = [] if bias is None else [bias]
    full = [] if bias is None else ["", "", bias]
    for branch, extra in (("full", full), ("padded", ["", ctx.key_mask, *tail])):
        node = helper.make_node(
            "MultiHeadAttention",
            [q, k, v, *extra],
            [f"{out}_{branch}"],
            name=f"{out}_{branch}_mha",
            domain=MS_DOMAIN,
            **attrs,
        )
        branches[branch] = helper.make_graph(
            [node],
            f"{out}_{branch}",
            [],
            [helper.make_tensor_value_info(f"{out}_{branch}", TensorProto.FLOAT, None)],
        )
    b.op(
        "If",
        [ctx.no_padding],
        outputs=[out],
        then_branch=branches["full"],
        else_branch=branches["padded"],
    )
    return out


def _rotary_self_attention(
    b: _Builder,
    lin: _Linear,
    spec: EncoderSpec,
    sd: Mapping[str, np.ndarray],
    a: str,
    h: str,
    ctx: _Context,
) -> str:
    """Rotary attention (v2, v3): rotate the normed input, project q/k from it, v from ``h``.

    Returns the heads' output [B·T, D] before ``linear_out``.
    """
    d = spec.d_model
    rot = b.op(
        "RotaryEmbedding",
        [b.op("Reshape", [h, ctx.btd]), ctx.pos0, ctx.cos, ctx.sin],
        domain=MS_DOMAIN,
        num_heads=spec.n_heads,
        rotary_embedding_dim=spec.head_dim,
        interleaved=0,
    )
    rot = b.op("Reshape", [rot, ctx.nd])
    # q and k read the same rotated input: one product (one activation quantization with
    # int8) of twice the width, split after. v reads the unrotated input, so it stays apart.
    wqk = _concat_rows(sd[f"{a}.linear_q.weight"], sd[f"{a}.linear_k.weight"])
    bqk = np.concatenate([sd[f"{a}.linear_q.bias"], sd[f"{a}.linear_k.bias"]])
    qk = lin(rot, f"{a}.linear_qk", wqk, bqk)
    q, k = b.op("Split", [qk, b.const([d, d])], axis=1, outputs=2)
    v = lin(h, f"{a}.linear_v", sd[f"{a}.linear_v.weight"], sd[f"{a}.linear_v.bias"])
    q, k, v = (b.op("Reshape", [t, ctx.btd]) for t in (q, k, v))
    return str(b.op("Reshape", [_attention(b, spec, q, k, v, ctx), ctx.nd]))


def _rel_pos_self_attention(
    b: _Builder,
    lin: _Linear,
    spec: EncoderSpec,
    sd: Mapping[str, np.ndarray],
    a: str,
    h: str,
    ctx: _Context,
) -> str:
    """Relative-position attention (v1), upstream's Transformer-XL scores.

    ``scores = ((q + u)·kᵀ + rel_shift((q + v)·pᵀ)) / √d_k`` with ``p = linear_pos(table)``
    over relative positions T-1 … -(T-1); ``rel_shift`` is upstream's own pad / reshape /
    slice. The position term is computed here and handed to ORT's fused
    ``MultiHeadAttention`` as its attention bias (÷ √d_k), which does the content term, the
    key-padding mask (-10000, like upstream's ``masked_fill``), the softmax and the product
    with v. q, k and v read the same input, so they are one product. Returns [B·T, D] before
    ``linear_out``.
    """
    d, heads, dk = spec.d_model, spec.n_heads, spec.head_dim
    wqkv = _concat_rows(*(sd[f"{a}.linear_{n}.weight"] for n in "qkv"))
    bqkv = np.concatenate([sd[f"{a}.linear_{n}.bias"] for n in "qkv"])
    q, k, v = b.op(
        "Split", [lin(h, f"{a}.linear_qkv", wqkv, bqkv), b.const([d, d, d])], axis=1, outputs=3
    )
    q = b.op("Reshape", [q, b.op("Concat", [ctx.btd_heads, b.const([dk])], axis=0)])

    def biased(name: str) -> str:  # q + pos_bias_{u,v}: [B, T, H, dk]
        return str(b.op("Add", [q, b.weight(f"{a}.{name}", _f32(sd[f"{a}.{name}"]))]))

    # position term: (q + v)·pᵀ over the 2T-1 relative positions → [B, H, T, 2T-1]
    pos = lin(ctx.rel_table, f"{a}.linear_pos", sd[f"{a}.linear_pos.weight"], None)
    pos_t = b.op(
        "Transpose", [b.op("Reshape", [pos, b.const([1, -1, heads, dk])])], perm=[0, 2, 3, 1]
    )
    bd = b.op("MatMul", [b.op("Transpose", [biased("pos_bias_v")], perm=[0, 2, 1, 3]), pos_t])
    # rel_shift: pad one zero column on the left, view as [.., 2T, T], drop the first row,
    # view back as [.., T, 2T-1], keep the first T columns
    t = b.op("Unsqueeze", [ctx.frames, b.const([0])])
    bd = b.op("Pad", [bd, b.const([0, 0, 0, 1, 0, 0, 0, 0])])
    bd = b.op("Reshape", [bd, b.op("Concat", [b.const([0, 0, -1]), t], axis=0)])
    bd = b.op("Slice", [bd, b.const([1]), b.const([2**62]), b.const([2])])
    bd = b.op("Reshape", [bd, b.op("Concat", [b.const([0, 0]), t, b.const([-1])], axis=0)])
    bd = b.op("Slice", [bd, b.const([0]), t, b.const([3])])
    bias = b.op("Div", [bd, b.const(math.sqrt(dk), np.float32)])
    q_u = b.op("Reshape", [biased("pos_bias_u"), ctx.btd])
    k, v = (b.op("Reshape", [x, ctx.btd]) for x in (k, v))
    return str(b.op("Reshape", [_attention(b, spec, q_u, k, v, ctx, bias), ctx.nd]))


def _rel_pos_table(b: _Builder, spec: EncoderSpec, t: str) -> str:
    """Upstream's ``RelPositionalEmbedding`` rows for positions T-1 … -(T-1): [2T-1, D] with
    sin at even and cos at odd columns, ``div_term = exp(arange(0, D, 2)·(-ln(10000)/D))``.

    Computed in the graph for this run's length: row r depends only on its position, so the
    rows equal the slice upstream takes from its 5000-frame table, at any length.
    """
    d = spec.d_model
    div_term = np.exp(
        np.arange(0, d, 2, dtype=np.float32) * np.float32(-(math.log(10000.0) / d))
    ).astype(np.float32)
    start = b.op("Sub", [t, b.const(1)])
    positions = b.op("Range", [start, b.op("Neg", [t]), b.const(-1)])
    angles = b.op(
        "Mul",
        [
            b.op("Unsqueeze", [b.op("Cast", [positions], to=TensorProto.FLOAT), b.const([1])]),
            b.weight("rel_pos.div_term", div_term.reshape(1, -1)),
        ],
    )
    # interleave: [2T-1, D/2, 2] (sin, cos) → [2T-1, D]
    pair = b.op(
        "Concat",
        [b.op("Unsqueeze", [b.op(op, [angles]), b.const([2])]) for op in ("Sin", "Cos")],
        axis=2,
    )
    return str(b.op("Reshape", [pair, b.const([-1, d])]))


def _conformer_layer(
    b: _Builder,
    lin: _Linear,
    spec: EncoderSpec,
    sd: Mapping[str, np.ndarray],
    i: int,
    x: str,
    ctx: _Context,
) -> str:
    """One Conformer layer on the 2-D residual stream ``x`` [B·T, D]; returns its norm_out."""
    p = f"encoder.layers.{i}"
    d = spec.d_model

    def feed_forward(h: str, which: str) -> str:
        w = f"{p}.{which}"
        h = lin(h, f"{w}.linear1", sd[f"{w}.linear1.weight"], sd[f"{w}.linear1.bias"])
        h = _silu(b, h)
        # the macaron ½ folded into linear2: exact, a power of two
        return lin(h, f"{w}.linear2", sd[f"{w}.linear2.weight"], sd[f"{w}.linear2.bias"], scale=0.5)

    # --- ½ feed-forward 1
    h = _layer_norm(b, x, sd, f"{p}.norm_feed_forward1")
    h, x = _add_layer_norm(b, x, feed_forward(h, "feed_forward1"), sd, f"{p}.norm_self_att")

    # --- self-attention (rotary or relative positions, as the config says)
    a = f"{p}.self_attn"
    if spec.attention == "rotary":
        att = _rotary_self_attention(b, lin, spec, sd, a, h, ctx)
    else:
        att = _rel_pos_self_attention(b, lin, spec, sd, a, h, ctx)
    att = lin(att, f"{a}.linear_out", sd[f"{a}.linear_out.weight"], sd[f"{a}.linear_out.bias"])
    h, x = _add_layer_norm(b, x, att, sd, f"{p}.norm_conv")

    # --- convolution module
    c = f"{p}.conv"
    w1, b1 = sd[f"{c}.pointwise_conv1.weight"], sd[f"{c}.pointwise_conv1.bias"]
    # both GLU halves in one product, as in the checkpoint (value rows first, then gate)
    value, gate = b.op(
        "Split", [lin(h, f"{c}.pointwise_conv1", w1, b1), b.const([d, d])], axis=1, outputs=2
    )
    glu = b.op("Mul", [value, b.op("Sigmoid", [gate])])
    glu = b.op("Mul", [glu, ctx.mask_n1])  # zero padded frames before the depthwise conv
    dw = b.op("Transpose", [b.op("Reshape", [glu, ctx.btd])], perm=[0, 2, 1])
    kk = spec.conv_kernel
    dw = b.op(
        "Conv",
        [
            dw,
            b.weight(f"{c}.depthwise_conv.weight", _f32(sd[f"{c}.depthwise_conv.weight"])),
            b.weight(f"{c}.depthwise_conv.bias", _f32(sd[f"{c}.depthwise_conv.bias"])),
        ],
        kernel_shape=[kk],
        pads=[(kk - 1) // 2, (kk - 1) // 2],
        group=d,
        name=f"{c}.depthwise_conv",
    )
    if spec.conv_norm == "batch_norm":
        # BatchNorm1d in eval mode: running statistics over channels of [B, D, T]
        bn = f"{c}.batch_norm"
        dw = b.op(
            "BatchNormalization",
            [dw, *(b.weight(f"{bn}.{n}", _f32(sd[f"{bn}.{n}"])) for n in _BN_PARAMS)],
            epsilon=BN_EPS,
        )
        h = _silu(b, b.op("Reshape", [b.op("Transpose", [dw], perm=[0, 2, 1]), ctx.nd]))
    else:
        dw = b.op("Reshape", [b.op("Transpose", [dw], perm=[0, 2, 1]), ctx.nd])
        h = _silu(b, _layer_norm(b, dw, sd, f"{c}.batch_norm"))
    h = lin(
        h,
        f"{c}.pointwise_conv2",
        sd[f"{c}.pointwise_conv2.weight"],
        sd[f"{c}.pointwise_conv2.bias"],
    )
    h, x = _add_layer_norm(b, x, h, sd, f"{p}.norm_feed_forward2")

    # --- ½ feed-forward 2, then the layer's output norm
    out, _ = _add_layer_norm(b, x, feed_forward(h, "feed_forward2"), sd, f"{p}.norm_out")
    return out


def build_encoder(
    spec: ModelSpec,
    state_dict: Mapping[str, np.ndarray],
    *,
    quantize_int8: bool = False,
    debug_outputs: bool = False,
) -> GraphBundle:
    """The encoder + head graph.

    Inputs ``features`` f32 [B, F, T] and ``feature_lengths`` i64 [B]. Outputs ``encoded``
    f32 [B, T', D] (time-major: transpose for the reference's channels-first view),
    ``encoded_lengths`` i32 [B], then ``log_probs`` f32 [B, T', C] and its ``argmax`` i64
    [B, T'] (CTC) or ``enc_proj``
    f32 [B, T', J] (RNN-T: the joint's encoder projection per frame, with the prediction
    linear's bias added, ready for :func:`build_step`). With
    ``debug_outputs`` also ``pre_encode`` and ``layer_<i>`` [B, T', D].

    ``quantize_int8`` turns every large linear layer of the encoder (and the second
    subsampling convolution) into a dynamic int8 ``DynamicQuantizeMatMul`` (int8 weights,
    symmetric, one scale per output channel); the first convolution and the heads stay fp32.
    """
    check_weights(spec, state_dict)
    enc = spec.encoder
    b = _Builder()
    lin = _Linear(b, quantize_int8)
    features, lengths = "features", "feature_lengths"
    batch = b.op("Shape", [features], start=0, end=1)
    x3, mask, enc_len = _subsampling(b, lin, enc, state_dict, features, lengths, batch)
    t = b.op("Gather", [b.op("Shape", [x3]), b.const(1)], axis=0)
    btd = b.op(
        "Concat", [batch, b.op("Unsqueeze", [t, b.const([0])]), b.const([enc.d_model])], axis=0
    )
    common: dict[str, str] = {
        "btd": btd,
        "nd": b.const([-1, enc.d_model]),
        "mask_n1": b.op("Reshape", [mask, b.const([-1, 1])]),
        "key_mask": b.op("Cast", [mask], to=TensorProto.INT32),
        "no_padding": b.op("Equal", [b.op("ReduceMin", [enc_len], keepdims=0), t]),
    }
    if enc.attention == "rotary":
        cos, sin = _rotary_tables(b, enc, t)
        ctx = _Context(**common, cos=cos, sin=sin, pos0=b.const([0]))
    else:
        ctx = _Context(
            **common,
            rel_table=_rel_pos_table(b, enc, t),
            frames=t,
            btd_heads=b.op(
                "Concat",
                [batch, b.op("Unsqueeze", [t, b.const([0])]), b.const([enc.n_heads])],
                axis=0,
            ),
        )

    outputs: list[onnx.ValueInfoProto] = []
    dyn: list[str | int | None] = ["batch", "frames", enc.d_model]
    if debug_outputs:
        b.op("Identity", [x3], outputs=["pre_encode"])
        outputs.append(helper.make_tensor_value_info("pre_encode", TensorProto.FLOAT, dyn))
    h = str(b.op("Reshape", [x3, ctx.nd]))
    for i in range(enc.n_layers):
        h = _conformer_layer(b, lin, enc, state_dict, i, h, ctx)
        if debug_outputs:
            b.op("Reshape", [h, ctx.btd], outputs=[f"layer_{i}"])
            outputs.append(helper.make_tensor_value_info(f"layer_{i}", TensorProto.FLOAT, dyn))

    b.op("Reshape", [h, ctx.btd], outputs=["encoded"])
    b.op("Cast", [enc_len], to=TensorProto.INT32, outputs=["encoded_lengths"])
    outputs[:0] = [
        helper.make_tensor_value_info("encoded", TensorProto.FLOAT, dyn),
        helper.make_tensor_value_info("encoded_lengths", TensorProto.INT32, ["batch"]),
    ]
    if spec.kind == "ctc":
        w = state_dict["head.decoder_layers.0.weight"]
        logits = lin(h, "head.ctc", w, state_dict["head.decoder_layers.0.bias"], quantize=False)
        shape = b.op("Concat", [batch, b.const([-1, spec.num_classes])], axis=0)
        b.op("LogSoftmax", [b.op("Reshape", [logits, shape])], axis=-1, outputs=["log_probs"])
        # greedy CTC needs only this: [B, T'] ids instead of [B, T', C] floats out of ORT
        b.op("ArgMax", ["log_probs"], axis=-1, keepdims=0, outputs=["argmax"])
        outputs[2:2] = [
            helper.make_tensor_value_info(
                "log_probs", TensorProto.FLOAT, ["batch", "frames", spec.num_classes]
            ),
            helper.make_tensor_value_info("argmax", TensorProto.INT64, ["batch", "frames"]),
        ]
    else:
        # the prediction linear's bias rides along: the step graph then adds nothing
        bias = np.asarray(state_dict["head.joint.enc.bias"], dtype=np.float64) + np.asarray(
            state_dict["head.joint.pred.bias"], dtype=np.float64
        )
        proj = lin(h, "head.joint.enc", state_dict["head.joint.enc.weight"], bias, quantize=False)
        shape = b.op("Concat", [batch, b.const([-1, spec.joint_hidden])], axis=0)
        b.op("Reshape", [proj, shape], outputs=["enc_proj"])
        outputs.insert(
            2,
            helper.make_tensor_value_info(
                "enc_proj", TensorProto.FLOAT, ["batch", "frames", spec.joint_hidden]
            ),
        )

    inputs = [
        helper.make_tensor_value_info(features, TensorProto.FLOAT, ["batch", enc.feat_in, "time"]),
        helper.make_tensor_value_info(lengths, TensorProto.INT64, ["batch"]),
    ]
    return _bundle(b, "gigaam_encoder", inputs, outputs)


def build_step(spec: ModelSpec, state_dict: Mapping[str, np.ndarray]) -> GraphBundle:
    """One RNN-T greedy step for a whole batch: prediction network + joint.

    ``step(labels i64 [B], h f32 [1, B, H], c f32 [1, B, H], enc f32 [B, J])
    -> (log_probs f32 [B, C], h, c)``, where ``enc`` is the encoder graph's ``enc_proj``.

    The step is memory-bound (hundreds of calls per minute of audio, each reading the
    weights once), so the graph reads as little as it can:

    * the LSTM's input projection of every token is precomputed into a [C, 4H] table
      (``embed @ W_ih.T + b_ih + b_hh``), leaving one [H, 4H] product per call; the blank
      row of the embedding is zero (``padding_idx``), so ``labels = blank`` with zero state is
      the reference's "nothing emitted yet" start;
    * the gates are reordered (i, f, o | g) so one Sigmoid and one Tanh cover them;
    * the prediction linear's bias is already inside ``enc_proj`` (see ``build_encoder``).
    """
    if spec.kind != "rnnt":
        raise ValueError("build_step is only for RNN-T models")
    check_weights(spec, state_dict)
    sd = state_dict
    hid = spec.pred_hidden
    b = _Builder()
    f64 = np.float64
    embed = np.array(sd["head.decoder.embed.weight"], dtype=f64)
    embed[spec.blank_id] = 0.0

    def ifog(w: np.ndarray) -> np.ndarray:  # torch gate order (i, f, g, o) → (i, f, o, g)
        i, f, g, o = np.split(np.asarray(w, dtype=f64), 4, axis=0)
        return np.concatenate([i, f, o, g], axis=0)

    bias = ifog(sd["head.decoder.lstm.bias_ih_l0"]) + ifog(sd["head.decoder.lstm.bias_hh_l0"])
    table = embed @ ifog(sd["head.decoder.lstm.weight_ih_l0"]).T + bias  # [C, 4H]
    recurrent = ifog(sd["head.decoder.lstm.weight_hh_l0"]).T  # [H, 4H]
    x_gates = b.op("Gather", [b.weight("lstm.input_table", _f32(table)), "labels"], axis=0)
    flat = b.const([-1, hid])
    h = b.op("Reshape", ["h", flat])
    c = b.op("Reshape", ["c", flat])
    gates = b.op("Gemm", [h, b.weight("lstm.recurrent", _f32(recurrent)), x_gates])
    sig, cand = b.op("Split", [gates, b.const([3 * hid, hid])], axis=1, outputs=2)
    i, f, o = b.op("Split", [b.op("Sigmoid", [sig]), b.const([hid, hid, hid])], axis=1, outputs=3)
    c_new = b.op("Add", [b.op("Mul", [f, c]), b.op("Mul", [i, b.op("Tanh", [cand])])])
    h_new = b.op("Mul", [o, b.op("Tanh", [c_new])])
    b.op("Unsqueeze", [h_new, b.const([0])], outputs=["h_out"])
    b.op("Unsqueeze", [c_new, b.const([0])], outputs=["c_out"])
    pred_w = np.asarray(sd["head.joint.pred.weight"], dtype=np.float32).T
    z = b.op(
        "Relu", [b.op("Gemm", [h_new, b.weight("head.joint.pred.weight", _f32(pred_w)), "enc"])]
    )
    out_w = np.asarray(sd["head.joint.joint_net.1.weight"], dtype=np.float32).T
    logits = b.op(
        "Gemm",
        [
            z,
            b.weight("head.joint.out.weight", _f32(out_w)),
            b.weight("head.joint.out.bias", _f32(sd["head.joint.joint_net.1.bias"])),
        ],
    )
    b.op("LogSoftmax", [logits], axis=-1, outputs=["log_probs"])
    f32 = TensorProto.FLOAT
    inputs = [
        helper.make_tensor_value_info("labels", TensorProto.INT64, ["batch"]),
        helper.make_tensor_value_info("h", f32, [1, "batch", hid]),
        helper.make_tensor_value_info("c", f32, [1, "batch", hid]),
        helper.make_tensor_value_info("enc", f32, ["batch", spec.joint_hidden]),
    ]
    outputs = [
        helper.make_tensor_value_info("log_probs", f32, ["batch", spec.num_classes]),
        helper.make_tensor_value_info("h_out", f32, [1, "batch", hid]),
        helper.make_tensor_value_info("c_out", f32, [1, "batch", hid]),
    ]
    return _bundle(b, "gigaam_rnnt_step", inputs, outputs)


def _bundle(
    b: _Builder,
    name: str,
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
) -> GraphBundle:
    # Initializers are declared with their type and shape only; the data is attached when
    # the bundle is saved (or handed to ORT directly).
    inits = []
    for key, arr in b.weights.items():
        t = TensorProto()
        t.name = key
        t.data_type = helper.np_dtype_to_tensor_dtype(arr.dtype)
        t.dims.extend(arr.shape)
        inits.append(t)
    graph = helper.make_graph(b.nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="gigaam-api",
    )
    model.ir_version = 8
    return GraphBundle(model=model, weights=dict(b.weights))


def save_bundle(bundle: GraphBundle, path: Path) -> None:
    """Write ``path`` (the graph) and ``path + '.weights'`` (page-aligned external data).

    Weights are streamed one at a time, so writing costs no second copy of the model in
    memory; aligned offsets let ONNX Runtime memory-map them instead of reading into the heap.
    Small tensors stay inline in the proto.
    """
    path = Path(path)
    data_name = path.name + ".weights"
    model = onnx.ModelProto()
    model.CopyFrom(bundle.model)
    with open(path.parent / data_name, "wb") as data:
        for tensor in model.graph.initializer:
            arr = materialize(bundle.weights[tensor.name])
            if arr.nbytes < EXTERNAL_MIN_BYTES:
                tensor.raw_data = arr.tobytes()
                continue
            offset = -data.tell() % ALIGNMENT
            if offset:
                data.write(b"\0" * offset)
            start = data.tell()
            data.write(arr.data.cast("B"))
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (
                ("location", data_name),
                ("offset", str(start)),
                ("length", str(arr.nbytes)),
            ):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
        data.flush()
        os.fsync(data.fileno())
    with open(path, "wb") as fh:
        fh.write(model.SerializeToString())
        fh.flush()
        os.fsync(fh.fileno())


def bundle_to_bytes(bundle: GraphBundle) -> bytes:
    """The whole model with weights inline (for tiny graphs and tests)."""
    model = onnx.ModelProto()
    model.CopyFrom(bundle.model)
    for tensor in model.graph.initializer:
        tensor.raw_data = materialize(bundle.weights[tensor.name]).tobytes()
    return bytes(model.SerializeToString())
