"""Write a CAM++ ONNX file with random weights, to time the default speaker model's network.

The real file (``campplus_voxceleb``) cannot be downloaded on every machine; its *cost* does not
depend on the weights, only on the architecture, so this builds 3D-Speaker's own ``CAMPPlus``
(feat_dim 80, embedding 512 — the VoxCeleb model's configuration) with random weights, exports
it the way 3D-Speaker and sherpa-onnx do (``x [N, T, 80]`` → ``embedding``, opset 13) and adds
sherpa-onnx's metadata. ``benchmarks/diarization.py`` times it through ``FbankOnnxEmbedder``.

Dev-only (torch, never a runtime dependency), everything under the git-ignored
``benchmarks/.cache/``::

    git clone <3D-Speaker repository> benchmarks/.cache/3D-Speaker
    python3 -m venv .ref-venv && .ref-venv/bin/pip install torch==2.13.0 onnx
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


if __name__ == "__main__":
    main()
