"""The engine on full-size configs (random weights) and on inputs the fixtures do not cover.

The golden fixtures are scaled down (d_model 64); here the real v3 configs from
``../shared/golden/manifests`` are used with fewer layers, written in the official checkpoint
format. With no reference output for them, an independent numpy implementation of the
reference encoder (written from the published Conformer description, float64 where it matters)
is the yardstick; it also checks inputs longer than the reference's 5000-frame rotary table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from gigaam_api.model import AsrModel, load_model
from gigaam_api.model.checkpoint import read_checkpoint
from tests.helpers import checkpoint_writer, edit_distance

LAYERS = 1  # the real models have 16; one exercises every kind of node at full width


@pytest.fixture(scope="module")
def fullsize(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Full-size-config checkpoints (2 layers, random weights) for each golden manifest."""
    writer = checkpoint_writer()
    out = tmp_path_factory.mktemp("fullsize")
    paths = {}
    for name in ("v3_ctc", "v3_rnnt", "v3_e2e_ctc", "v3_e2e_rnnt"):
        path = out / f"{name}.ckpt"
        writer.write_random_checkpoint(
            golden_dir / "manifests" / f"{name}.json", path, seed=7, layers=LAYERS
        )
        tokenizer = golden_dir / name / f"{name}_tokenizer.model"
        if tokenizer.is_file():  # the fixtures' tokenizers have the real vocabulary sizes
            (out / tokenizer.name).write_bytes(tokenizer.read_bytes())
        paths[name] = path
    return paths


def _speech(golden_dir: Path, seconds: float) -> np.ndarray:
    """The fixture's synthetic Russian speech, tiled to ``seconds``."""
    wave = np.load(golden_dir / "v3_ctc" / "waveform.npy")
    reps = math.ceil(seconds * 16000 / wave.size)
    return np.ascontiguousarray(np.tile(wave, reps)[: int(seconds * 16000)])


# ------------------------------------------------------------------------------------------
# an independent numpy reference of the GigaAM v3 encoder


def _ln(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: np.ndarray = (x - mean) / np.sqrt(var + 1e-5) * w + b
    return out


def _silu(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = x / (1.0 + np.exp(-x))
    return out


def _conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """[B, C, T] → [B, O, T'], padding (k-1)/2, as torch.nn.Conv1d."""
    k = w.shape[-1]
    pad = (k - 1) // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    windows = sliding_window_view(xp, k, axis=2)[:, :, ::stride]  # [B, C, T', k]
    out: np.ndarray = np.einsum("bctk,ock->bot", windows, w) + b[None, :, None]
    return out


def reference_encoder(
    cfg: Mapping[str, Any], sd: Mapping[str, np.ndarray], feats: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Encoder output [B, T', D] and lengths, following gigaam/encoder.py step by step."""
    enc = cfg["encoder"]
    d, heads = int(enc["d_model"]), int(enc["n_heads"])
    dh = d // heads
    f = {k: np.asarray(v, dtype=np.float64) for k, v in sd.items()}
    x = feats.astype(np.float64)
    lens = lengths.astype(np.int64)

    def mask_time(x: np.ndarray, lens: np.ndarray) -> np.ndarray:
        return x * (np.arange(x.shape[2])[None, None, :] < lens[:, None, None])

    x = mask_time(x, lens)
    for stage in (0, 2):
        key = f"encoder.pre_encode.conv.{stage}"
        x = _conv1d(x, f[f"{key}.weight"], f[f"{key}.bias"], 2)
        lens = np.floor((lens - 1) / 2 + 1).astype(np.int64)
        x = np.maximum(mask_time(x, lens), 0.0)
    x = x.transpose(0, 2, 1)  # [B, T, D]
    batch, t = x.shape[:2]
    valid = np.arange(t)[None, :] < lens[:, None]  # [B, T]
    inv_freq = 1.0 / (float(enc["pos_emb_max_len"]) ** (np.arange(0, dh, 2) / dh))
    angles = np.arange(t)[:, None] * inv_freq[None, :]
    emb = np.concatenate([angles, angles], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]  # [T, 1, dh]

    def linear(x: np.ndarray, key: str) -> np.ndarray:
        w = f[f"{key}.weight"]
        return x @ w.reshape(w.shape[0], -1).T + f[f"{key}.bias"]

    for i in range(int(enc["n_layers"])):
        p = f"encoder.layers.{i}"

        def ff(x: np.ndarray, which: str, p: str = p) -> np.ndarray:
            h = _ln(x, f[f"{p}.norm_{which}.weight"], f[f"{p}.norm_{which}.bias"])
            return linear(_silu(linear(h, f"{p}.{which}.linear1")), f"{p}.{which}.linear2")

        x = x + 0.5 * ff(x, "feed_forward1")
        h = _ln(x, f[f"{p}.norm_self_att.weight"], f[f"{p}.norm_self_att.bias"])
        h4 = h.reshape(batch, t, heads, dh)
        rot = np.concatenate([-h4[..., dh // 2 :], h4[..., : dh // 2]], axis=-1)
        hr = (h4 * cos + rot * sin).reshape(batch, t, d)
        q = linear(hr, f"{p}.self_attn.linear_q").reshape(batch, t, heads, dh)
        k = linear(hr, f"{p}.self_attn.linear_k").reshape(batch, t, heads, dh)
        v = linear(h, f"{p}.self_attn.linear_v").reshape(batch, t, heads, dh)
        att = np.empty((batch, t, heads, dh))
        for bi in range(batch):
            n = int(lens[bi])  # padded keys get no weight; padded queries are never compared
            for hi in range(heads):  # one head at a time keeps long inputs affordable
                # float32 scores: ~1e-7 relative, and 4x cheaper for 5000-frame inputs
                qh = q[bi, :n, hi].astype(np.float32) / np.float32(math.sqrt(dh))
                s = qh @ k[bi, :n, hi].astype(np.float32).T
                s -= s.max(-1, keepdims=True)
                np.exp(s, out=s)
                s /= s.sum(-1, keepdims=True)
                att[bi, :n, hi] = s @ v[bi, :n, hi].astype(np.float32)
            att[bi, n:] = 0.0
        x = x + linear(att.reshape(batch, t, d), f"{p}.self_attn.linear_out")
        c = f"{p}.conv"
        h = _ln(x, f[f"{p}.norm_conv.weight"], f[f"{p}.norm_conv.bias"]).transpose(0, 2, 1)
        h = _conv1d(h, f[f"{c}.pointwise_conv1.weight"], f[f"{c}.pointwise_conv1.bias"], 1)
        h = h[:, :d] / (1.0 + np.exp(-h[:, d:]))  # GLU
        h = h * valid[:, None, :]
        kk = f[f"{c}.depthwise_conv.weight"].shape[-1]
        hp = np.pad(h, ((0, 0), (0, 0), ((kk - 1) // 2, (kk - 1) // 2)))
        h = np.einsum(
            "bdtk,dk->bdt",
            sliding_window_view(hp, kk, axis=2),
            f[f"{c}.depthwise_conv.weight"][:, 0],
        )
        h = h + f[f"{c}.depthwise_conv.bias"][None, :, None]
        h = _silu(_ln(h.transpose(0, 2, 1), f[f"{c}.batch_norm.weight"], f[f"{c}.batch_norm.bias"]))
        h = _conv1d(
            h.transpose(0, 2, 1),
            f[f"{c}.pointwise_conv2.weight"],
            f[f"{c}.pointwise_conv2.bias"],
            1,
        )
        x = x + h.transpose(0, 2, 1)
        x = x + 0.5 * ff(x, "feed_forward2")
        x = _ln(x, f[f"{p}.norm_out.weight"], f[f"{p}.norm_out.bias"])
    return x, lens


def _max_valid_diff(a: np.ndarray, b: np.ndarray, lens: np.ndarray) -> float:
    return max(float(np.abs(a[i, :n] - b[i, :n]).max()) for i, n in enumerate(lens))


# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["v3_ctc", "v3_rnnt", "v3_e2e_ctc", "v3_e2e_rnnt"])
def test_fullsize_config_loads_and_transcribes(
    fullsize: dict[str, Path], golden_dir: Path, tmp_path: Path, name: str
) -> None:
    manifest = json.loads((golden_dir / "manifests" / f"{name}.json").read_text())
    model = load_model(fullsize[name], num_threads=2, cache_dir=tmp_path)
    assert isinstance(model, AsrModel)
    assert model.name == name and model.kind == manifest["config"]["model_class"]
    assert model.blank_id == manifest["config"]["head"].get("num_classes", 0) - 1 or (
        model.blank_id == manifest["config"]["head"]["joint"]["num_classes"] - 1
    )
    waves = [_speech(golden_dir, 3.0), _speech(golden_dir, 1.7)]
    results = model.transcribe(waves)
    assert len(results) == 2
    for wave, result in zip(waves, results, strict=True):
        assert len(result.token_ids) == len(result.token_frames)
        assert all(0 <= t < model.blank_id for t in result.token_ids)
        assert result.frame_shift == pytest.approx(
            wave.size / 16000 / math.ceil(((wave.size - 320) // 160 + 1) / 4), rel=1e-12
        )
        assert all(0.0 <= w.start < w.end <= wave.size / 16000 + 0.05 for w in result.words)
    # the batch decodes each item as it would alone
    alone = model.transcribe(waves[1:])[0]
    assert alone.token_ids == results[1].token_ids


@pytest.mark.parametrize("name", ["v3_ctc", "v3_rnnt"])
def test_fullsize_encoder_matches_numpy_reference(
    fullsize: dict[str, Path], golden_dir: Path, name: str
) -> None:
    model = load_model(fullsize[name], num_threads=2)
    ckpt = read_checkpoint(fullsize[name])
    waves = [_speech(golden_dir, 2.5), _speech(golden_dir, 1.3)]
    feats, lens = model.features(waves)
    encoded, enc_lens = model.encode(feats, lens)
    expected, expected_lens = reference_encoder(ckpt.cfg, ckpt.state_dict, feats, lens)
    assert enc_lens.dtype == np.int32 and enc_lens.tolist() == expected_lens.tolist()
    # float32 vs float64 through full-width layers (outputs are LayerNormed, O(1)): ~3e-6
    assert _max_valid_diff(encoded.transpose(0, 2, 1), expected, expected_lens) < 2e-5


def test_longer_than_reference_rotary_table(golden_dir: Path, tmp_path: Path) -> None:
    """201 s in one piece: 5025 encoder frames, past upstream's 5000-position table.

    The v3_ctc fixture cut to its first layer keeps the numpy reference affordable.
    """
    source = read_checkpoint(golden_dir / "v3_ctc" / "v3_ctc.ckpt")
    cfg = dict(source.cfg, encoder=dict(source.cfg["encoder"], n_layers=1))
    state = {k: v for k, v in source.state_dict.items() if not k.startswith("encoder.layers.")}
    state |= {k: v for k, v in source.state_dict.items() if k.startswith("encoder.layers.0.")}
    path = tmp_path / "one_layer.ckpt"
    checkpoint_writer().write_checkpoint(path, cfg, state)
    model = load_model(path, num_threads=2)
    wave = _speech(golden_dir, 201.0)
    feats, lens = model.features([wave])
    encoded, enc_lens = model.encode(feats, lens)
    assert int(enc_lens[0]) == 5025
    expected, _ = reference_encoder(cfg, state, feats, lens)
    ours = encoded.transpose(0, 2, 1)[0]
    tail = slice(4990, 5025)  # positions the reference's table does not have
    assert np.abs(ours[tail] - expected[0, tail]).max() < 1e-4
    assert np.abs(ours - expected[0]).max() < 1e-4


def test_int8_fullsize_ctc_close_to_fp32(fullsize: dict[str, Path], golden_dir: Path) -> None:
    fp32 = load_model(fullsize["v3_ctc"], num_threads=2)
    int8 = load_model(fullsize["v3_ctc"], num_threads=2, quantize_int8=True)
    assert int8.quantized and not fp32.quantized
    feats, lens = fp32.features([_speech(golden_dir, 4.0)])
    lp32, n32 = fp32.ctc_log_probs(feats, lens)
    lp8, n8 = int8.ctc_log_probs(feats, lens)
    assert n32.tolist() == n8.tolist()
    # random weights: a loose closeness check, not an accuracy claim
    # (measured: probabilities within 0.006, 99 % of frame argmaxes equal)
    assert np.abs(np.exp(lp8) - np.exp(lp32)).max() < 0.05
    agree = (lp8.argmax(-1) == lp32.argmax(-1)).mean()
    assert agree > 0.95


def test_int8_fullsize_rnnt_decodes_like_fp32(fullsize: dict[str, Path], golden_dir: Path) -> None:
    fp32 = load_model(fullsize["v3_rnnt"], num_threads=2)
    int8 = load_model(fullsize["v3_rnnt"], num_threads=2, quantize_int8=True)
    wave = _speech(golden_dir, 3.0)
    (a,) = fp32.transcribe([wave])
    (b,) = int8.transcribe([wave])
    assert len(a.token_ids) > 100
    # measured: 1 % of tokens differ (random weights; closeness, not an accuracy claim)
    assert edit_distance(a.token_ids, b.token_ids) <= 0.05 * len(a.token_ids)
