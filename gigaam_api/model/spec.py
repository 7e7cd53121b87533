"""What a checkpoint's config says about its graphs: :class:`ModelSpec`, and what we refuse.

The engine follows the checkpoint's own ``cfg`` (the one upstream's ``GigaAMASR(cfg)``
instantiates), not a fixed shape. Every option upstream's ``ConformerEncoder`` and
``FeatureExtractor`` can build is a typed field here, read with upstream's default when the
config omits it (v1/v2 configs predate several keys), and each one picks a block builder in
``graph`` or a mode of ``features``:

* ``encoder.subsampling``: ``conv1d`` (v3, multilingual) | ``conv2d`` (v1, v2; default);
* ``encoder.self_attention_model``: ``rotary`` (v2, v3; default) | ``rel_pos`` (v1);
* ``encoder.conv_norm_type``: ``layer_norm`` (v3) | ``batch_norm`` (v1, v2; default);
* ``encoder`` widths, depth, heads, kernels, subsampling factor, rotary base;
* ``preprocessor`` window / FFT / hop lengths and ``center`` (defaults sr/40, sr/40, sr/100,
  centred: v1/v2's 400-point centred frames; v3 says 320, not centred);
* the vocabulary: ``decoding.vocabulary`` (v3, multilingual) or top-level ``labels`` (v1, v2),
  none for SentencePiece models;
* ``head._target_``: ``CTCHead`` | ``RNNTHead`` (one LSTM layer).

Anything else raises :class:`UnsupportedModelError` naming the field and its value, so a
checkpoint the engine cannot build fails at load with a sentence, not inside ONNX Runtime.
``docs/models.md`` has the same table with its sources.

Kept apart from ``graph`` (which needs the ``onnx`` package) so that loading a model whose
graphs are already cached imports nothing but ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = [
    "GRAPH_VERSION",
    "ConvNorm",
    "EncoderSpec",
    "FrontEndSpec",
    "ModelError",
    "ModelSpec",
    "PositionEncoding",
    "Subsampling",
    "UnsupportedModelError",
    "model_spec",
]

#: Bump whenever ``graph`` builds a different graph for the same checkpoint: it is part of the
#: graph cache key, so stale cached graphs are never reused. (Adding the v1/v2 variants left
#: v3's graph unchanged, node for node, so cached v3 graphs stay valid.)
GRAPH_VERSION = 4

Subsampling = Literal["conv1d", "conv2d"]
PositionEncoding = Literal["rotary", "rel_pos"]
ConvNorm = Literal["layer_norm", "batch_norm"]


class ModelError(ValueError):
    """A checkpoint/tokenizer pair that cannot be served (missing file, mismatched vocabulary)."""


class UnsupportedModelError(ModelError):
    """The checkpoint is not a GigaAM speech-recognition model this engine can build."""


@dataclass(frozen=True)
class FrontEndSpec:
    """The log-mel front end (``cfg.preprocessor``), read with upstream's defaults.

    v3 and multilingual: 320-point window and FFT, no centring. v1/v2 name only the sample
    rate and band count, so upstream's defaults apply: a 400-point window and FFT with
    centred reflect padding (``n_fft // 2`` each side), frames ``len // hop + 1``.
    """

    sample_rate: int = 16000
    n_mels: int = 64
    n_fft: int = 320
    win_length: int = 320
    hop_length: int = 160
    center: bool = False


@dataclass(frozen=True)
class EncoderSpec:
    """The encoder hyper-parameters a graph depends on (from ``cfg.encoder``).

    The defaults of the variant fields are v3's, so a spec written for v3 reads as before.
    """

    feat_in: int
    d_model: int
    n_heads: int
    n_layers: int
    ff_dim: int
    conv_kernel: int
    subs_kernel: int
    subs_stages: int
    pos_base: float
    subsampling: Subsampling = "conv1d"
    attention: PositionEncoding = "rotary"
    conv_norm: ConvNorm = "layer_norm"

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def subs_freq_out(self) -> int:
        """Frequency bins left after conv2d subsampling (each stage halves, rounding up)."""
        bins = self.feat_in
        for _ in range(self.subs_stages):
            bins = _strided_length(bins, self.subs_kernel)
        return bins


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build the graphs of one checkpoint and to read its output."""

    kind: Literal["ctc", "rnnt"]
    encoder: EncoderSpec
    num_classes: int
    pred_hidden: int = 0
    joint_hidden: int = 0
    front_end: FrontEndSpec = FrontEndSpec()
    #: The character vocabulary (without blank), or ``None`` for a SentencePiece model.
    vocabulary: tuple[str, ...] | None = None
    #: Where the vocabulary was found: ``decoding.vocabulary`` or ``labels`` (for messages).
    vocabulary_field: str | None = None

    @property
    def blank_id(self) -> int:
        return self.num_classes - 1


# --------------------------------------------------------------------------------------------
# config


def _strided_length(length: int, kernel: int) -> int:
    """Upstream's ``floor((L + 2·((k-1)//2) - k) / 2 + 1)`` for one stride-2 stage."""
    return (length + 2 * ((kernel - 1) // 2) - kernel) // 2 + 1


def _get(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = cfg.get(key, default) if isinstance(cfg, Mapping) else default
    return default if value is None else value


class _Reader:
    """Reads one config section, naming ``section.field`` in every complaint."""

    def __init__(self, name: str, section: str, cfg: Mapping[str, Any]) -> None:
        self.name, self.section, self.cfg = name, section, cfg

    def fail(self, key: str, message: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"{self.name}: {self.section}.{key} {message}")

    def integer(self, key: str, default: int, *, minimum: int = 1) -> int:
        value = _get(self.cfg, key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise self.fail(key, f"= {value!r} is not an integer")
        if int(value) < minimum:
            raise self.fail(key, f"= {value!r} must be at least {minimum}")
        return int(value)

    def flag(self, key: str, default: bool) -> bool:
        value = _get(self.cfg, key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"= {value!r} is not true or false")
        return value

    def choice(self, key: str, default: str, allowed: Sequence[str]) -> Any:
        value = _get(self.cfg, key, default)
        if value not in allowed:
            raise self.fail(
                key,
                f"= {value!r} cannot be built by this engine (supported: {', '.join(allowed)})",
            )
        return value


def _front_end(name: str, cfg: Mapping[str, Any]) -> FrontEndSpec:
    pre = cfg.get("preprocessor") or {}
    if not isinstance(pre, Mapping):
        raise UnsupportedModelError(f"{name}: preprocessor is not a section")
    r = _Reader(name, "preprocessor", pre)
    rate = r.integer("sample_rate", int(_get(cfg, "sample_rate", 16000)))
    if rate != 16000:
        raise r.fail("sample_rate", f"= {rate}: only 16 kHz models are served")
    spec = FrontEndSpec(
        sample_rate=rate,
        n_mels=r.integer("features", 64),
        # upstream FeatureExtractor's defaults (kwargs.get) for configs that omit them
        n_fft=r.integer("n_fft", rate // 40),
        win_length=r.integer("win_length", rate // 40),
        hop_length=r.integer("hop_length", rate // 100),
        center=r.flag("center", True),
    )
    if spec.win_length != spec.n_fft:
        raise r.fail(
            "win_length",
            f"= {spec.win_length} differs from n_fft = {spec.n_fft}; only equal lengths are built",
        )
    return spec


def _encoder(name: str, enc: Mapping[str, Any]) -> EncoderSpec:
    r = _Reader(name, "encoder", enc)
    subsampling = r.choice("subsampling", "conv2d", get_args(Subsampling))
    attention = r.choice("self_attention_model", "rotary", get_args(PositionEncoding))
    conv_norm = r.choice("conv_norm_type", "batch_norm", get_args(ConvNorm))
    d_model = r.integer("d_model", 768)
    n_heads = r.integer("n_heads", 16)
    factor = r.integer("subsampling_factor", 4)
    subs_kernel = r.integer("subs_kernel_size", 3)
    conv_kernel = r.integer("conv_kernel_size", 31)
    stages = factor.bit_length() - 1
    if 2**stages != factor:
        raise r.fail("subsampling_factor", f"= {factor} is not a power of two")
    if subs_kernel % 2 == 0:
        raise r.fail("subs_kernel_size", f"= {subs_kernel} is even; only odd kernels are built")
    if conv_kernel % 2 == 0:
        raise r.fail("conv_kernel_size", f"= {conv_kernel} is even (upstream asserts odd)")
    if d_model % n_heads:
        raise r.fail("n_heads", f"= {n_heads} does not divide d_model = {d_model}")
    if attention == "rotary" and (d_model // n_heads) % 2:
        raise r.fail("n_heads", f"= {n_heads} leaves an odd head size; rotary needs it even")
    if attention == "rel_pos" and d_model % 2:
        raise r.fail("d_model", f"= {d_model} is odd; relative positions need it even")
    spec = EncoderSpec(
        feat_in=r.integer("feat_in", 64),
        d_model=d_model,
        n_heads=n_heads,
        n_layers=r.integer("n_layers", 16),
        ff_dim=d_model * r.integer("ff_expansion_factor", 4),
        conv_kernel=conv_kernel,
        subs_kernel=subs_kernel,
        subs_stages=stages,
        pos_base=float(r.integer("pos_emb_max_len", 5000)),
        subsampling=subsampling,
        attention=attention,
        conv_norm=conv_norm,
    )
    if subsampling == "conv2d" and spec.subs_freq_out < 1:
        raise r.fail("feat_in", f"= {spec.feat_in} is too narrow for {stages} conv2d stages")
    return spec


def _vocabulary(name: str, cfg: Mapping[str, Any]) -> tuple[tuple[str, ...] | None, str | None]:
    """The character vocabulary and the field it came from; ``(None, None)`` = SentencePiece.

    ``decoding.vocabulary`` (v3, multilingual) wins; v1/v2 keep it at the top as ``labels``
    (their ``decoding.vocabulary`` is an interpolation of it, resolved by the reader, or
    absent). As in upstream's ``Tokenizer``, a ``decoding.model_path`` means SentencePiece
    whatever lists the config also holds. An unresolved ``${...}`` string is refused by name.
    """
    decoding = cfg.get("decoding") or {}
    if isinstance(decoding, Mapping) and decoding.get("model_path"):
        return None, None  # upstream's rule: a tokenizer file makes it SentencePiece
    for field, value in (
        (
            "decoding.vocabulary",
            decoding.get("vocabulary") if isinstance(decoding, Mapping) else None,
        ),
        ("labels", cfg.get("labels")),
    ):
        if value is None or value == []:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise UnsupportedModelError(
                f"{name}: {field} must be a list of non-empty strings, got {value!r}"
            )
        return tuple(value), field
    return None, None


def model_spec(cfg: Mapping[str, Any]) -> ModelSpec:
    """Read the graph-relevant part of a checkpoint config, rejecting what we cannot run.

    Raises :class:`UnsupportedModelError` for SSL/emotion checkpoints (no ASR head) and for
    any option outside the table in the module docstring, naming the config field.
    """
    head = cfg.get("head")
    target = str(_get(head or {}, "_target_", ""))
    name = str(cfg.get("model_name") or "this checkpoint")
    if not isinstance(head, Mapping) or not target:
        raise UnsupportedModelError(
            f"{name} has no speech-recognition head (SSL/emotion checkpoints cannot transcribe)"
        )
    enc = cfg.get("encoder")
    if not isinstance(enc, Mapping):
        raise UnsupportedModelError(f"{name} has no encoder config")
    encoder = _encoder(name, enc)
    front_end = _front_end(name, cfg)
    if front_end.n_mels != encoder.feat_in:
        raise UnsupportedModelError(
            f"{name}: preprocessor.features = {front_end.n_mels} but encoder.feat_in = "
            f"{encoder.feat_in}"
        )
    vocabulary, field = _vocabulary(name, cfg)
    common: dict[str, Any] = {
        "encoder": encoder,
        "front_end": front_end,
        "vocabulary": vocabulary,
        "vocabulary_field": field,
    }
    if target.endswith("CTCHead"):
        classes = _Reader(name, "head", head).integer("num_classes", 0, minimum=2)
        spec = ModelSpec("ctc", num_classes=classes, **common)
    elif target.endswith("RNNTHead"):
        dec, joint = head.get("decoder") or {}, head.get("joint") or {}
        rd, rj = _Reader(name, "head.decoder", dec), _Reader(name, "head.joint", joint)
        if rd.integer("pred_rnn_layers", 1) != 1:
            raise rd.fail("pred_rnn_layers", "must be 1: only a 1-layer prediction LSTM is built")
        spec = ModelSpec(
            "rnnt",
            num_classes=rj.integer("num_classes", 0, minimum=2),
            pred_hidden=rd.integer("pred_hidden", 0),
            joint_hidden=rj.integer("joint_hidden", 0),
            **common,
        )
    else:
        raise UnsupportedModelError(
            f"{name}: head._target_ = {target!r} is not a CTC or RNN-T head; cannot transcribe"
        )
    if vocabulary is not None and len(vocabulary) + 1 != spec.num_classes:
        raise UnsupportedModelError(
            f"{name}: {field} has {len(vocabulary)} symbols but the head predicts "
            f"{spec.num_classes} classes (vocabulary + blank)"
        )
    return spec
