"""The runtime never imports torch: load and transcribe with ``import torch`` made impossible.

Runs in a fresh interpreter whose import system refuses ``torch`` (a meta-path finder that
raises ImportError), so the check holds whether or not torch is installed on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"{name} is blocked: the runtime must not need torch")
            return None

    sys.meta_path.insert(0, NoTorch())
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the torch blocker does not work")

    import numpy as np
    import gigaam_api
    import gigaam_api.model
    from gigaam_api.model import load_model

    out = {}
    golden, cache = sys.argv[1], sys.argv[2]
    for name in ("v3_ctc", "v3_e2e_rnnt"):
        model = load_model(f"{golden}/{name}/{name}.ckpt", cache_dir=cache)
        wave = np.load(f"{golden}/{name}/waveform.npy")
        out[name] = model.transcribe([wave])[0].text
    int8 = load_model(f"{golden}/v3_ctc/v3_ctc.ckpt", quantize_int8=True, cache_dir=cache)
    out["int8"] = int8.transcribe([wave])[0].text
    out["torch_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] == "torch")
    print(json.dumps(out))
    """
)


def test_load_and_transcribe_without_torch(golden_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(golden_dir), str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        pytest.fail(f"transcription without torch failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.pop("torch_loaded") == []
    for name in ("v3_ctc", "v3_e2e_rnnt"):
        expected = json.loads((golden_dir / name / "result.json").read_text())["text"]
        assert out[name] == expected
    assert out["int8"]


def test_torch_is_not_a_runtime_dependency() -> None:
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    runtime = [dep.split("=")[0].split("[")[0].strip().lower() for dep in project["dependencies"]]
    assert not [d for d in runtime if d in {"torch", "torchaudio", "pytorch"}]
