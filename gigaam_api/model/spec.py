"""What a checkpoint's config says about its graphs: :class:`ModelSpec`, and what we refuse.

Kept apart from ``graph`` (which needs the ``onnx`` package) so that loading a model whose
graphs are already cached imports nothing but ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "GRAPH_VERSION",
    "EncoderSpec",
    "ModelError",
    "ModelSpec",
    "UnsupportedModelError",
    "model_spec",
]

#: Bump whenever ``graph`` builds a different graph for the same checkpoint: it is part of the
#: graph cache key, so stale cached graphs are never reused.
GRAPH_VERSION = 4


class ModelError(ValueError):
    """A checkpoint/tokenizer pair that cannot be served (missing file, mismatched vocabulary)."""


class UnsupportedModelError(ModelError):
    """The checkpoint is not a GigaAM v3 speech-recognition model this engine can build."""


@dataclass(frozen=True)
class EncoderSpec:
    """The encoder hyper-parameters a graph depends on (from ``cfg.encoder``)."""

    feat_in: int
    d_model: int
    n_heads: int
    n_layers: int
    ff_dim: int
    conv_kernel: int
    subs_kernel: int
    subs_stages: int
    pos_base: float

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build the graphs of one checkpoint."""

    kind: Literal["ctc", "rnnt"]
    encoder: EncoderSpec
    num_classes: int
    pred_hidden: int = 0
    joint_hidden: int = 0

    @property
    def blank_id(self) -> int:
        return self.num_classes - 1


# --------------------------------------------------------------------------------------------
# config


def _get(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = cfg.get(key, default) if isinstance(cfg, Mapping) else default
    return default if value is None else value


def model_spec(cfg: Mapping[str, Any]) -> ModelSpec:
    """Read the graph-relevant part of a checkpoint config, rejecting what we cannot run.

    Raises :class:`UnsupportedModelError` for SSL/emotion checkpoints (no ASR head) and for
    encoder variants other than GigaAM v3's (conv1d subsampling, rotary attention, LayerNorm
    in the conv module).
    """
    head = cfg.get("head")
    target = str(_get(head or {}, "_target_", ""))
    name = cfg.get("model_name") or "this checkpoint"
    if not isinstance(head, Mapping) or not target:
        raise UnsupportedModelError(
            f"{name} has no speech-recognition head (SSL/emotion checkpoints cannot transcribe)"
        )
    enc = cfg.get("encoder")
    if not isinstance(enc, Mapping):
        raise UnsupportedModelError(f"{name} has no encoder config")
    subsampling = _get(enc, "subsampling", "conv2d")
    attention = _get(enc, "self_attention_model", "rotary")
    conv_norm = _get(enc, "conv_norm_type", "batch_norm")
    if subsampling != "conv1d" or attention != "rotary" or conv_norm != "layer_norm":
        raise UnsupportedModelError(
            f"{name}: only GigaAM v3 encoders are supported (conv1d subsampling, rotary "
            f"attention, layer_norm conv module); got subsampling={subsampling}, "
            f"self_attention_model={attention}, conv_norm_type={conv_norm}"
        )
    try:
        d_model = int(_get(enc, "d_model", 768))
        n_heads = int(_get(enc, "n_heads", 16))
        factor = int(_get(enc, "subsampling_factor", 4))
        spec = EncoderSpec(
            feat_in=int(_get(enc, "feat_in", 64)),
            d_model=d_model,
            n_heads=n_heads,
            n_layers=int(_get(enc, "n_layers", 16)),
            ff_dim=d_model * int(_get(enc, "ff_expansion_factor", 4)),
            conv_kernel=int(_get(enc, "conv_kernel_size", 31)),
            subs_kernel=int(_get(enc, "subs_kernel_size", 3)),
            subs_stages=max(factor, 1).bit_length() - 1,
            pos_base=float(_get(enc, "pos_emb_max_len", 5000)),
        )
    except (TypeError, ValueError) as exc:
        raise UnsupportedModelError(f"{name}: malformed encoder config: {exc}") from exc
    if (
        d_model % n_heads
        or (d_model // n_heads) % 2
        or 2**spec.subs_stages != factor
        or spec.subs_kernel % 2 == 0
        or spec.conv_kernel % 2 == 0
    ):
        raise UnsupportedModelError(f"{name}: unsupported encoder geometry {dict(enc)}")
    if target.endswith("CTCHead"):
        return ModelSpec("ctc", spec, int(head["num_classes"]))
    if target.endswith("RNNTHead"):
        dec, joint = head.get("decoder", {}), head.get("joint", {})
        if int(_get(dec, "pred_rnn_layers", 1)) != 1:
            raise UnsupportedModelError(
                f"{name}: only a 1-layer RNN-T prediction network is supported"
            )
        return ModelSpec(
            "rnnt",
            spec,
            int(joint["num_classes"]),
            pred_hidden=int(dec["pred_hidden"]),
            joint_hidden=int(joint["joint_hidden"]),
        )
    raise UnsupportedModelError(f"{name}: unknown head {target}; cannot transcribe with it")
