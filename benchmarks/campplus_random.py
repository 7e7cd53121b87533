"""Write a CAM++ ONNX file with random weights, to time the default speaker model's network.

The real file (``campplus_voxceleb``) cannot be downloaded on every machine; its *cost* does not
depend on the weights, only on the architecture, so this builds 3D-Speaker's own ``CAMPPlus``
(feat_dim 80, embedding 512 — the VoxCeleb model's configuration) with random weights, exports
it the way 3D-Speaker and sherpa-onnx do (``x [N, T, 80]`` → ``embedding``, opset 13) and adds
sherpa-onnx's metadata. ``benchmarks/diarization.py`` times it through ``FbankOnnxEmbedder``.

It then checks the whole embedder against the publisher's code on those random weights: the
PyTorch ``CAMPPlus`` on kaldi-native-fbank features (sherpa-onnx's runtime front end, mean
subtracted) versus ``FbankOnnxEmbedder`` (our numpy fbank, the exported graph, ONNX Runtime) on
ten 1.5 s windows of corpus speech. Recorded 2026-12-07: max abs difference 7e-8, lowest
cosine 0.9999999.

Dev-only (torch, never a runtime dependency), everything under the git-ignored
``benchmarks/.cache/``::

    git clone <3D-Speaker repository> benchmarks/.cache/3D-Speaker
    python3 -m venv .ref-venv
    .ref-venv/bin/pip install torch==2.13.0 onnx onnxruntime==1.32.0 kaldi-native-fbank
    .ref-venv/bin/python benchmarks/campplus_random.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"
OUTPUT = CACHE / "campplus_random.onnx"


def main() -> None:
    import onnx
    import torch  # type: ignore[import-not-found,unused-ignore]

    sys.path.insert(0, str(CACHE / "3D-Speaker"))
    from speakerlab.models.campplus.DTDNN import (  # type: ignore[import-not-found,unused-ignore]
        CAMPPlus,
    )

    torch.manual_seed(0)
    model = CAMPPlus(feat_dim=80, embedding_size=512).eval()
    parameters = sum(p.numel() for p in model.parameters())
    torch.onnx.export(
        model,
        torch.rand(1, 150, 80),
        str(OUTPUT),
        opset_version=13,
        input_names=["x"],
        output_names=["embedding"],
        dynamic_axes={"x": {0: "N", 1: "T"}, "embedding": {0: "N"}},
        dynamo=False,
    )
    graph = onnx.load(str(OUTPUT))
    meta = {
        "framework": "3d-speaker",
        "language": "English",
        "sample_rate": "16000",
        "output_dim": "512",
        "normalize_samples": "1",
        "feature_normalize_type": "global-mean",
        "comment": "random weights, for timing only",
    }
    for key, value in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(OUTPUT))
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({parameters:,} parameters)")
    check(model)


def check(model: object) -> None:
    """Our embedder on the export versus the PyTorch model on kaldi-native-fbank features."""
    import kaldi_native_fbank as knf  # type: ignore[import-not-found,unused-ignore]
    import numpy as np
    import torch  # type: ignore[import-not-found,unused-ignore]

    sys.path.insert(0, str(ROOT))
    from gigaam_api.speakers.embedder import load_embedder
    from tests.speakers_data import corpus_wav

    def features(wave: np.ndarray) -> np.ndarray:
        opts = knf.FbankOptions()
        opts.frame_opts.dither = 0
        opts.frame_opts.samp_freq = 16000
        opts.frame_opts.snip_edges = False
        opts.mel_opts.num_bins = 80
        opts.mel_opts.low_freq = 20
        opts.mel_opts.high_freq = -400
        fbank = knf.OnlineFbank(opts)
        fbank.accept_waveform(16000, wave.tolist())
        fbank.input_finished()
        frames = np.array([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
        centred: np.ndarray = (frames - frames.mean(axis=0)).astype(np.float32)
        return centred

    speech = corpus_wav("silero_vad/silero_ru.wav")
    windows = [speech[k : k + 24000] for k in range(0, 16000 * 50, 16000 * 5)]
    with torch.no_grad():
        batch = torch.from_numpy(np.stack([features(w) for w in windows]))
        reference = model(batch).numpy()  # type: ignore[operator]
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    ours = load_embedder(OUTPUT).embed(windows)
    print(
        f"{len(windows)} windows: max abs difference {np.abs(ours - reference).max():.1e}, "
        f"lowest cosine {(ours * reference).sum(axis=1).min():.7f}"
    )


if __name__ == "__main__":
    main()
