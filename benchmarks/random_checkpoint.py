"""Dev-only: write a random-weight GigaAM checkpoint in the official format, without torch.

The engine benchmark and the full-size tests need a full-size model; the real weights are
850 MB downloads, and random weights time the same. The state_dict layout comes from
``../shared/golden/manifests/<model>.json``; the file is a PyTorch zip archive
(``archive/data.pkl`` + one stored entry per tensor) that both ``torch.load`` and our safe
reader accept. The config is pickled as plain dicts (not OmegaConf objects), which the reader
treats the same way.

Usage: ``python benchmarks/random_checkpoint.py MANIFEST OUT.ckpt [--layers N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["htk_mel_filterbank", "random_state_dict", "write_checkpoint", "write_random_checkpoint"]


class _Global:
    """A reference to ``module.name`` in the pickle, without importing that module."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class _Storage:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _Tensor:
    def __init__(self, storage: _Storage, shape: tuple[int, ...]) -> None:
        self.storage, self.shape = storage, shape


_REBUILD = _Global("torch._utils", "_rebuild_tensor_v2")
_FLOAT_STORAGE = _Global("torch", "FloatStorage")


class _Pickler(pickle._Pickler):  # the pure-Python pickler lets us emit GLOBAL opcodes
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _Storage):
            return ("storage", _FLOAT_STORAGE, obj.key, "cpu", obj.numel)
        return None

    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())  # type: ignore[attr-defined]
            return
        if isinstance(obj, _Tensor):
            stride = tuple(int(np.prod(obj.shape[i + 1 :])) for i in range(len(obj.shape)))
            hooks: collections.OrderedDict[str, Any] = collections.OrderedDict()
            args = (obj.storage, 0, obj.shape, stride, False, hooks)
            self.save_reduce(_REBUILD, args, obj=obj)
            return
        super().save(obj, save_persistent_id)  # type: ignore[misc]

    def save_reduce(self, func: Any, args: Any, *rest: Any, **kw: Any) -> None:
        # pickle's save_reduce insists on a callable; write the global and the args ourselves.
        if isinstance(func, _Global):
            self.save(func)
            self.save(args)
            self.write(pickle.REDUCE)  # type: ignore[attr-defined]
            if kw.get("obj") is not None:
                self.memoize(kw["obj"])  # type: ignore[attr-defined]
            return
        super().save_reduce(func, args, *rest, **kw)  # type: ignore[misc]


def write_checkpoint(path: Path, cfg: Mapping[str, Any], state: Mapping[str, np.ndarray]) -> None:
    """Write ``{"cfg": cfg, "state_dict": state}`` as a PyTorch zip checkpoint (fp32)."""
    storages = {}
    tensors = collections.OrderedDict()
    for i, (key, arr) in enumerate(state.items()):
        storage = _Storage(str(i), int(arr.size))
        storages[storage.key] = arr
        tensors[key] = _Tensor(storage, tuple(int(s) for s in arr.shape))
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump({"cfg": dict(cfg), "state_dict": tensors})
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", buffer.getvalue())
        zf.writestr("archive/byteorder", "little")
        for key, arr in storages.items():
            with zf.open(f"archive/data/{key}", "w", force_zip64=True) as fh:
                fh.write(np.ascontiguousarray(arr, dtype=np.float32).tobytes())
        zf.writestr("archive/version", "3\n")
    tmp.replace(path)


def htk_mel_filterbank(
    n_freqs: int = 161, n_mels: int = 64, sample_rate: int = 16000
) -> np.ndarray:
    """torchaudio ``melscale_fbanks(n_freqs, 0, sr/2, n_mels, sr, norm=None, mel_scale='htk')``."""
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    m_max = 2595.0 * np.log10(1.0 + (sample_rate / 2) / 700.0)
    f_pts = 700.0 * (10 ** (np.linspace(0, m_max, n_mels + 2) / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).astype(np.float32)


def random_state_dict(
    manifest: Mapping[str, Any], *, seed: int = 0, layers: int | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(cfg, state_dict) for a manifest, random weights scaled so activations stay sane."""
    rng = np.random.default_rng(seed)
    cfg = json.loads(json.dumps(manifest["config"]))
    if layers is not None:
        cfg["encoder"]["n_layers"] = layers
    n_layers = int(cfg["encoder"]["n_layers"])
    state: dict[str, np.ndarray] = {}
    for key, shape, _dtype in manifest["state_dict"]:
        if key.startswith("encoder.layers.") and int(key.split(".")[2]) >= n_layers:
            continue
        shape = tuple(shape)
        if key.endswith("spectrogram.window"):
            arr = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(shape[0]) / shape[0])
        elif key.endswith("mel_scale.fb"):
            arr = htk_mel_filterbank(shape[0], shape[1])
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            arr = rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(fan_in))
        elif key.endswith("running_var"):  # batch-norm variances must be positive
            arr = 0.5 + rng.random(shape, dtype=np.float32)
        elif key.endswith("num_batches_tracked"):
            continue
        elif "norm" in key and key.endswith(".weight"):
            arr = 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
        else:
            arr = 0.02 * rng.standard_normal(shape, dtype=np.float32)
        state[key] = np.asarray(arr, dtype=np.float32)
    if "head.decoder.embed.weight" in state:
        state["head.decoder.embed.weight"][-1] = 0.0  # padding_idx = blank
    return cfg, state


# Full-size configs of the generations beyond v3, as their checkpoints carry them: the
# multilingual models in v3's layout (the large one 24 x 1024, 16 heads), v1/v2 with only the
# keys their code knew (conv2d subsampling, batch-norm conv modules and a centred 400-point
# window are then upstream's defaults) and the vocabulary in top-level ``labels``.
_RU_LABELS = [" ", *"абвгдежзийклмнопрстуфхцчшщъыьэюя"]
_PRE, _ENC, _DEC = (
    "gigaam.preprocess.FeatureExtractor",
    "gigaam.encoder.ConformerEncoder",
    "gigaam.decoding",
)
_MULTILINGUAL = [" ", "'", *"abcdefghijklmnopqrstuvwxyz", *"абвгдежзийклмнопрстуфхцчшщъыьэюя"]
_MULTILINGUAL += list("ёіғқңүұһәө")


def generation_config(name: str) -> dict[str, Any]:
    """The full-size ``cfg`` of ``name`` (multilingual_ctc, multilingual_large_ctc, v2_ctc,
    v2_rnnt, v1_ctc, v1_rnnt); v1_rnnt's SentencePiece tokenizer is not part of it."""
    if name.startswith("multilingual"):
        large = "large" in name
        d = 1024 if large else 768
        return {
            "model_name": name,
            "sample_rate": 16000,
            "preprocessor": {
                "_target_": _PRE,
                "sample_rate": 16000,
                "features": 64,
                "win_length": 320,
                "hop_length": 160,
                "n_fft": 320,
                "center": False,
            },
            "encoder": {
                "_target_": _ENC,
                "feat_in": 64,
                "n_layers": 24 if large else 16,
                "d_model": d,
                "subsampling": "conv1d",
                "subs_kernel_size": 5,
                "subsampling_factor": 4,
                "ff_expansion_factor": 4,
                "self_attention_model": "rotary",
                "pos_emb_max_len": 5000,
                "n_heads": 16,
                "conv_kernel_size": 5,
                "conv_norm_type": "layer_norm",
            },
            "head": {"_target_": "gigaam.decoder.CTCHead", "feat_in": d, "num_classes": 71},
            "decoding": {"_target_": f"{_DEC}.CTCGreedyDecoding", "vocabulary": _MULTILINGUAL},
        }
    generation, kind = name.split("_")
    classes = 257 if name == "v1_rnnt" else len(_RU_LABELS) + 1
    cfg: dict[str, Any] = {
        "model_name": name,
        "sample_rate": 16000,
        "preprocessor": {"_target_": _PRE, "sample_rate": 16000, "features": 64},
        "encoder": {
            "_target_": _ENC,
            "feat_in": 64,
            "n_layers": 16,
            "d_model": 768,
            "subsampling_factor": 4,
            "ff_expansion_factor": 4,
            "self_attention_model": "rel_pos" if generation == "v1" else "rotary",
            "pos_emb_max_len": 5000,
            "n_heads": 16,
            "conv_kernel_size": 31,
        },
        "decoding": {
            "_target_": f"{_DEC}.{'CTC' if kind == 'ctc' else 'RNNT'}GreedyDecoding",
            "vocabulary": None if name == "v1_rnnt" else _RU_LABELS,
        },
    }
    if name != "v1_rnnt":
        cfg["labels"] = _RU_LABELS
    if kind == "ctc":
        cfg["head"] = {"_target_": "gigaam.decoder.CTCHead", "feat_in": 768, "num_classes": classes}
    else:
        cfg["head"] = {
            "_target_": "gigaam.decoder.RNNTHead",
            "decoder": {"pred_hidden": 320, "pred_rnn_layers": 1, "num_classes": classes},
            "joint": {
                "enc_hidden": 768,
                "pred_hidden": 320,
                "joint_hidden": 320,
                "num_classes": classes,
            },
        }
    return cfg


def generation_manifest(name: str) -> dict[str, Any]:
    """A manifest (config + ``[key, shape, dtype]``) for :func:`random_state_dict`: the weight
    names and shapes the engine's spec derives from the config, plus the front-end buffers."""
    from gigaam_api.model.graph import expected_shapes
    from gigaam_api.model.spec import model_spec

    cfg = generation_config(name)
    spec = model_spec(cfg)
    front = spec.front_end
    buffers = [
        ["preprocessor.featurizer.0.spectrogram.window", [front.n_fft], "float32"],
        ["preprocessor.featurizer.0.mel_scale.fb", [front.n_fft // 2 + 1, front.n_mels], "float32"],
    ]
    weights = [[k, list(v), "float32"] for k, v in expected_shapes(spec).items()]
    return {"config": cfg, "state_dict": buffers + weights}


def write_random_checkpoint(
    manifest_path: Path,
    out: Path,
    *,
    seed: int = 0,
    layers: int | None = None,
    blank_bias_shift: float = 0.0,
) -> Path:
    """Write a random-weight checkpoint for ``manifest_path``; returns ``out``."""
    if Path(manifest_path).suffix == ".json":
        manifest = json.loads(Path(manifest_path).read_text())
    else:  # a generation's name
        manifest = generation_manifest(str(manifest_path))
    cfg, state = random_state_dict(manifest, seed=seed, layers=layers)
    for key in ("head.joint.joint_net.1.bias", "head.decoder_layers.0.bias"):
        if key in state:
            state[key][-1] += np.float32(blank_bias_shift)
    write_checkpoint(out, cfg, state)
    return out


def cached_checkpoint(shared: Path, cache: Path, model: str = "v3_ctc") -> Path:
    """The full-size random-weight ``model`` under ``cache`` (seed 0), written on first use.

    The benchmarks that run a whole server share it, so it is built once per machine.
    """
    path = cache / f"{model}.ckpt"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        write_random_checkpoint(shared / "golden" / "manifests" / f"{model}.json", path, seed=0)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blank-bias-shift", type=float, default=0.0)
    args = parser.parse_args()
    write_random_checkpoint(
        args.manifest,
        args.out,
        seed=args.seed,
        layers=args.layers,
        blank_bias_shift=args.blank_bias_shift,
    )


if __name__ == "__main__":
    main()
