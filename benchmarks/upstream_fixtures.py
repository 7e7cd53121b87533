"""Dev-only: small random-weight checkpoints of every GigaAM generation, decoded by upstream.

Writes ``tests/fixtures/generations/<name>/``: ``<name>.ckpt`` (a real upstream checkpoint:
``torch.save({"cfg": DictConfig, "state_dict": ...})``), a SentencePiece tokenizer where the
generation has one, and ``expected.json`` (upstream's token ids, frames and text for two waves
alone and batched, the encoder output of the first wave, its features for one model per front
end, and the decision margins). ``tests/test_engine_generations.py`` checks the engine against
them without torch.

Run with an interpreter that has torch==2.13.0, omegaconf and hydra (never the runtime's):

    benchmarks/.cache/torch-venv/bin/python benchmarks/upstream_fixtures.py \\
        --upstream benchmarks/.cache/upstream-head [--check benchmarks/.cache/upstream-v2]

``--upstream`` is a checkout of upstream GigaAM's ``gigaam`` package (``git archive <commit>
gigaam``); ``--check`` re-decodes the v1/v2 fixtures single-wave with another checkout (the
commit that introduced the gigaam-format v1/v2 checkpoints) and reports whether the tokens
agree. torchaudio is replaced by ``engine.py``'s ``torch.stft`` stand-in (same arithmetic,
the checkpoint's own window and filterbank).

The configs are the published ones scaled down (d_model 32–48, 2–3 layers). v1/v2 configs
carry only the keys their generation's code knew (the newer code's defaults then give conv2d
subsampling, batch-norm conv modules, a 400-point centred window), and their vocabulary sits
in top-level ``labels`` with ``decoding.vocabulary: ${labels}``, as sherpa-onnx's v2 export
reads it. Output biases are shifted so greedy decoding emits a realistic mix of blanks and
tokens; a seed is kept only when every CTC decision margin is comfortably above the engine's
float error.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "generations"
AUDIO = ROOT.parent / "shared" / "corpus" / "silero_vad" / "silero_ru.wav"
#: Spread of the head's time-varying input after calibration (see ``_calibrate``).
HEAD_SPREAD = {"ctc": 6.0, "rnnt": 2.0}
#: Two waves from the corpus: 2.6 s and 1.5 s of Russian speech.
WAVES = ((16000, 41600), (80000, 24000))

MULTILINGUAL_VOCAB = [" ", "'", *"abcdefghijklmnopqrstuvwxyz", *"абвгдежзийклмнопрстуфхцчшщъыьэюя"]
MULTILINGUAL_VOCAB += list("ёіғқңүұһәө")
RU_LABELS = [" ", *"абвгдежзийклмнопрстуфхцчшщъыьэюя"]
SP_TEXT = (
    "привет как дела сегодня хорошая погода мы идём в парк и читаем книги "
    "распознавание речи работает на процессоре без видеокарты быстро и точно "
    "съешь же ещё этих мягких французских булок да выпей чаю "
)


def _v3_like(name: str, d: int, heads: int, layers: int, vocab: list[str]) -> dict[str, Any]:
    """A multilingual / v3-layout CTC config (conv1d, rotary, layer-norm conv module)."""
    return {
        "model_name": name,
        "model_class": "ctc",
        "sample_rate": 16000,
        "preprocessor": {
            "_target_": "gigaam.preprocess.FeatureExtractor",
            "sample_rate": 16000,
            "features": 64,
            "win_length": 320,
            "hop_length": 160,
            "n_fft": 320,
            "center": False,
            "mel_scale": "htk",
            "mel_norm": None,
        },
        "encoder": {
            "_target_": "gigaam.encoder.ConformerEncoder",
            "feat_in": 64,
            "n_layers": layers,
            "d_model": d,
            "subsampling": "conv1d",
            "subs_kernel_size": 5,
            "subsampling_factor": 4,
            "ff_expansion_factor": 4,
            "self_attention_model": "rotary",
            "pos_emb_max_len": 5000,
            "n_heads": heads,
            "conv_kernel_size": 5,
            "flash_attn": False,
            "conv_norm_type": "layer_norm",
        },
        "head": {
            "_target_": "gigaam.decoder.CTCHead",
            "feat_in": d,
            "num_classes": len(vocab) + 1,
        },
        "decoding": {"_target_": "gigaam.decoding.CTCGreedyDecoding", "vocabulary": vocab},
    }


def _legacy(name: str, kind: str, attention: str, classes: int, *, labels: bool) -> dict[str, Any]:
    """A v1/v2 config: only the keys their code took; conv2d/batch-norm/centre by default."""
    d = 32
    cfg: dict[str, Any] = {
        "model_name": name,
        "sample_rate": 16000,
        "preprocessor": {
            "_target_": "gigaam.preprocess.FeatureExtractor",
            "sample_rate": 16000,
            "features": 64,
        },
        "encoder": {
            "_target_": "gigaam.encoder.ConformerEncoder",
            "feat_in": 64,
            "n_layers": 2,
            "d_model": d,
            "subsampling_factor": 4,
            "ff_expansion_factor": 4,
            "self_attention_model": attention,
            "pos_emb_max_len": 5000,
            "n_heads": 4,
            "conv_kernel_size": 31,
            "flash_attn": False,
        },
    }
    if labels:
        cfg["labels"] = RU_LABELS
    vocabulary: Any = "${labels}" if labels else None
    if kind == "ctc":
        cfg["head"] = {"_target_": "gigaam.decoder.CTCHead", "feat_in": d, "num_classes": classes}
        cfg["decoding"] = {
            "_target_": "gigaam.decoding.CTCGreedyDecoding",
            "vocabulary": vocabulary,
        }
    else:
        cfg["head"] = {
            "_target_": "gigaam.decoder.RNNTHead",
            "decoder": {"pred_hidden": 16, "pred_rnn_layers": 1, "num_classes": classes},
            "joint": {
                "enc_hidden": d,
                "pred_hidden": 16,
                "joint_hidden": 16,
                "num_classes": classes,
            },
        }
        cfg["decoding"] = {
            "_target_": "gigaam.decoding.RNNTGreedyDecoding",
            "vocabulary": vocabulary,
        }
        if not labels:
            cfg["decoding"]["model_path"] = f"{name}_tokenizer.model"
    return cfg


#: name → (config, checkpoint dtype, sentencepiece vocabulary size or 0)
def configs(sp_size: int) -> dict[str, tuple[dict[str, Any], str]]:
    ru = len(RU_LABELS) + 1
    return {
        "multilingual_ctc": (_v3_like("multilingual_ctc", 32, 4, 2, MULTILINGUAL_VOCAB), "fp32"),
        # the large model is deeper and wider with the same 16 heads-per-width shape
        "multilingual_large_ctc": (
            _v3_like("multilingual_large_ctc", 48, 6, 3, MULTILINGUAL_VOCAB),
            "fp32",
        ),
        "v2_ctc": (_legacy("v2_ctc", "ctc", "rotary", ru, labels=True), "fp32"),
        "v2_rnnt": (_legacy("v2_rnnt", "rnnt", "rotary", ru, labels=True), "fp32"),
        "v1_ctc": (_legacy("v1_ctc", "ctc", "rel_pos", ru, labels=True), "fp16"),
        "v1_rnnt": (_legacy("v1_rnnt", "rnnt", "rel_pos", sp_size + 1, labels=False), "fp32"),
    }


def read_waves() -> list[np.ndarray]:
    with wave.open(str(AUDIO)) as fh:
        pcm = np.frombuffer(fh.readframes(fh.getnframes()), dtype=np.int16)
    return [pcm[start : start + n].copy() for start, n in WAVES]


def _import_upstream(path: Path) -> Any:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import engine  # the torchaudio stand-in

    if "torchaudio" not in sys.modules and importlib.util.find_spec("torchaudio") is None:
        sys.modules["torchaudio"] = engine._torchaudio_stub()
    sys.path.insert(0, str(path))
    for mod in [m for m in sys.modules if m == "gigaam" or m.startswith("gigaam.")]:
        del sys.modules[mod]
    return importlib.import_module("gigaam.model")


def _randomize(torch: Any, model: Any, gen: Any) -> None:
    """Upstream's init plus what it leaves trivial: norms, BN statistics, position biases."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("pos_bias_u") or name.endswith("pos_bias_v"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif "norm" in name and name.endswith(".weight") and p.dim() == 1:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif "norm" in name and name.endswith(".bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=gen))
            elif name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=gen))
        if hasattr(model.head, "decoder") and hasattr(model.head.decoder, "embed"):
            model.head.decoder.embed.weight[-1].zero_()  # padding_idx = blank


def _forward(torch: Any, model: Any, waves: list[np.ndarray]) -> tuple[Any, Any, Any]:
    lengths = torch.tensor([w.size for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : w.size] = torch.from_numpy(w.astype(np.float32) / 32768.0)
    with torch.inference_mode():
        encoded, encoded_len = model.forward(batch, lengths)
        decoded = model.decoding.decode(model.head, encoded, encoded_len)
    return encoded, encoded_len, decoded


def _calibrate(torch: Any, model: Any, waves: list[np.ndarray], kind: str) -> float:
    """Centre and scale the head on the encoder's time-varying part, then shift the blank's
    output bias until greedy decoding emits ~0.4 tokens per frame.

    A random encoder's output is mostly a per-channel constant (frame-to-frame spread ~0.1 of
    its overall spread), so a random head would emit one label everywhere; removing the
    first wave's mean through the head's input layer and scaling that layer to a set spread
    leaves logits that follow the audio, like a trained head's.
    """
    encoded, _, _ = _forward(torch, model, waves[:1])
    mean = encoded[0].mean(dim=1)  # [D]
    with torch.no_grad():
        layer = model.head.decoder_layers[0] if kind == "ctc" else model.head.joint.enc
        weight = layer.weight[:, :, 0] if kind == "ctc" else layer.weight
        spread = float((weight @ (encoded[0] - mean[:, None])).std())
        weight *= HEAD_SPREAD[kind] / spread
        layer.bias -= weight @ mean
    bias = (
        model.head.decoder_layers[0].bias if kind == "ctc" else model.head.joint.joint_net[1].bias
    )
    lo, hi = -200.0, 200.0
    base = float(bias[-1])
    for _ in range(24):
        mid = (lo + hi) / 2
        with torch.no_grad():
            bias[-1] = base + mid
        _, enc_len, decoded = _forward(torch, model, waves[:1])
        rate = len(decoded[0][1]) / int(enc_len[0])
        lo, hi = (mid, hi) if rate > 0.4 else (lo, mid)
    return float(bias[-1])


def _ctc_margin(torch: Any, model: Any, encoded: Any, enc_len: Any) -> float:
    with torch.inference_mode():
        log_probs = model.head(encoder_output=encoded)
    top = torch.topk(log_probs, 2, dim=-1).values
    margins = [
        float((top[i, : int(n), 0] - top[i, : int(n), 1]).min()) for i, n in enumerate(enc_len)
    ]
    return min(margins)


def _train_tokenizer(path: Path, size: int) -> None:
    """A small BPE SentencePiece model at ``path``, trained from ``SP_TEXT``.

    Run from the target folder with bare file names: the model file records its training
    input and prefix, and a committed fixture must not carry this machine's paths.
    """
    spm: Any = importlib.import_module("sentencepiece")
    text = path.with_suffix(".txt")
    text.write_text((SP_TEXT + "\n") * 20)
    here = Path.cwd()
    os.chdir(path.parent)
    try:
        spm.SentencePieceTrainer.train(
            input=text.name,
            model_prefix=path.stem,
            vocab_size=size,
            model_type="bpe",
            character_coverage=1.0,
            normalization_rule_name="identity",
            minloglevel=2,
        )
    finally:
        os.chdir(here)
    text.unlink()
    path.with_suffix(".vocab").unlink()


def build(upstream: Path, only: list[str] | None, sp_size: int) -> None:
    torch: Any = importlib.import_module("torch")
    omegaconf: Any = importlib.import_module("omegaconf")
    torch.set_num_threads(1)
    module = _import_upstream(upstream)
    waves = read_waves()
    commit = _commit_of(upstream)
    for name, (raw_cfg, dtype) in configs(sp_size).items():
        if only and name not in only:
            continue
        folder = OUT / name
        folder.mkdir(parents=True, exist_ok=True)
        cfg_dict = copy.deepcopy(raw_cfg)
        tokenizer = None
        if cfg_dict["decoding"].get("model_path"):
            tokenizer = folder / f"{name}_tokenizer.model"
            _train_tokenizer(tokenizer, sp_size)
            cfg_dict["decoding"]["model_path"] = str(tokenizer)
        kind = "ctc" if cfg_dict["head"]["_target_"].endswith("CTCHead") else "rnnt"
        for seed in range(40):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(1000 + seed)
            cfg = omegaconf.OmegaConf.create(cfg_dict)
            model = module.GigaAMASR(cfg).eval()
            _randomize(torch, model, gen)
            blank_bias = _calibrate(torch, model, waves, kind)
            if dtype == "fp16":  # the reference decodes the fp16-rounded weights in fp32
                state = {
                    k: v.half() if v.is_floating_point() else v
                    for k, v in model.state_dict().items()
                }
                model.load_state_dict(state)
            encoded, enc_len, _ = _forward(torch, model, waves[:1])
            margin = _ctc_margin(torch, model, encoded, enc_len) if kind == "ctc" else None
            if margin is None or margin > 2e-3:
                break
        else:
            raise SystemExit(f"{name}: no seed gave CTC margins above 2e-3")
        state = model.state_dict()
        if dtype == "fp16":
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        saved_cfg = omegaconf.OmegaConf.create(raw_cfg)  # the checkpoint keeps a bare file name
        torch.save({"cfg": saved_cfg, "state_dict": state}, folder / f"{name}.ckpt")
        singles = []
        for w in waves:
            _, w_len, w_dec = _forward(torch, model, [w])
            singles.append(
                {
                    "text": w_dec[0][0],
                    "token_ids": w_dec[0][1],
                    "token_frames": w_dec[0][2],
                    "encoded_length": int(w_len[0]),
                }
            )
        _, b_len, b_dec = _forward(torch, model, waves)
        expected: dict[str, Any] = {
            "model": name,
            "kind": kind,
            "checkpoint_dtype": dtype,
            "seed": seed,
            "blank_bias": blank_bias,
            "upstream_commit": commit,
            "torch": torch.__version__,
            "min_ctc_margin": margin,
            "waves": [list(w) for w in WAVES],
            "single": singles,
            "batch": [
                {"text": t, "token_ids": ids, "token_frames": fr, "encoded_length": int(n)}
                for (t, ids, fr), n in zip(b_dec, b_len, strict=True)
            ],
        }
        np.save(folder / "encoded.npy", encoded[0].numpy().astype(np.float32))
        if name in ("multilingual_ctc", "v2_ctc"):
            with torch.inference_mode():
                feats, _ = model.preprocessor(
                    torch.from_numpy(waves[0].astype(np.float32)[None] / 32768.0),
                    torch.tensor([waves[0].size]),
                )
            np.save(folder / "features.npy", feats[0].numpy().astype(np.float32))
        (folder / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1))
        print(f"{name}: seed {seed}, {len(singles[0]['token_ids'])} tokens, margin {margin}")
    np.save(OUT / "waves.npy", np.concatenate(waves))


def check(other: Path) -> None:
    """Single-wave tokens of the v1/v2 fixtures with another upstream checkout."""
    torch: Any = importlib.import_module("torch")
    torch.set_num_threads(1)
    module = _import_upstream(other)
    waves = read_waves()
    for name in ("v2_ctc", "v2_rnnt", "v1_ctc", "v1_rnnt"):
        folder = OUT / name
        ckpt = torch.load(folder / f"{name}.ckpt", map_location="cpu", weights_only=False)
        cfg = ckpt["cfg"]
        if cfg.decoding.get("model_path"):
            cfg.decoding.model_path = str(folder / f"{name}_tokenizer.model")
        model = module.GigaAMASR(cfg)
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
        )
        model.eval()
        expected = json.loads((folder / "expected.json").read_text())
        for w, exp in zip(waves, expected["single"], strict=True):
            _, _, decoded = _forward(torch, model, [w])
            ids = decoded[0][1] if isinstance(decoded[0], tuple) else None
            text = decoded[0][0] if isinstance(decoded[0], tuple) else decoded[0]
            same = text == exp["text"] and (ids is None or ids == exp["token_ids"])
            print(f"{name} at {_commit_of(other)}: {'same' if same else 'DIFFERENT'} text")


def _commit_of(path: Path) -> str:
    marker = path / "COMMIT"
    if marker.is_file():
        return marker.read_text().strip()
    try:
        return subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, required=True)
    parser.add_argument("--check", type=Path, help="another upstream checkout to re-decode v1/v2")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--sp-size", type=int, default=64)
    args = parser.parse_args()
    build(args.upstream, args.only, args.sp_size)
    if args.check:
        check(args.check)


if __name__ == "__main__":
    main()
