"""Resemblyzer's GE2E encoder on ONNX Runtime against Resemblyzer itself, on real weights.

The reference embeddings were computed by Resemblyzer's own torch code
(``tests/fixtures/speakers/make_reference.py``, dev-only environment); here only our numpy
front end and ONNX graph run, on the weights read from the real wheel.
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gigaam_api.speakers import ge2e
from gigaam_api.speakers.embedder import Ge2eEmbedder, SpeakerModelError, load_embedder
from gigaam_api.speakers.legacy_torch import LegacyTorchError, read_legacy_torch
from tests.speakers_data import FIXTURES, PARITY_CLIPS, REPO_ROOT, corpus_wav, resemblyzer_wheel


@pytest.fixture(scope="module")
def wheel() -> Path:
    try:
        return resemblyzer_wheel()
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def pretrained(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("ge2e") / "pretrained.pt"
    with zipfile.ZipFile(wheel) as archive:
        target.write_bytes(archive.read("resemblyzer/pretrained.pt"))
    return target


def _windows(corpus_dir: Path) -> list[np.ndarray]:
    windows = []
    for clip, starts in PARITY_CLIPS:
        wave = corpus_wav(clip, corpus_dir)
        for start in starts:
            first = round(start * 16000)
            windows.append(wave[first : first + ge2e.WINDOW_SAMPLES])
    return windows


def test_legacy_reader_reads_the_whole_file(pretrained: Path) -> None:
    checkpoint = read_legacy_torch(pretrained)
    state = checkpoint["model_state"]
    assert sum(v.size for v in state.values()) == 1_423_618  # the parameters Resemblyzer has
    assert len(state) == 16
    assert checkpoint["step"] > 0
    # The optimizer's state is read too (every storage in the file is accounted for).
    assert checkpoint["optimizer_state"]["state"]


def test_mel_front_end_equals_librosa(corpus_dir: Path) -> None:
    reference = np.load(FIXTURES / "ge2e_reference.npz")["mel0"]
    ours = ge2e.mel_frames(ge2e.normalize_volume(_windows(corpus_dir)[0]))
    assert ours.shape == reference.shape == (160, 40)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6 * reference.max())


@pytest.mark.parametrize("source", ["wheel", "pretrained"])
def test_embeddings_equal_resemblyzer(
    source: str, wheel: Path, pretrained: Path, corpus_dir: Path
) -> None:
    embedder = load_embedder(wheel if source == "wheel" else pretrained)
    assert isinstance(embedder, Ge2eEmbedder)
    reference = np.load(FIXTURES / "ge2e_reference.npz")["embeddings"]
    ours = embedder.embed(_windows(corpus_dir))
    assert ours.shape == reference.shape == (len(reference), 256)
    np.testing.assert_allclose(ours, reference, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_windows_of_one_voice_are_closer_than_other_voices(wheel: Path, corpus_dir: Path) -> None:
    embeddings = load_embedder(wheel).embed(_windows(corpus_dir))
    similarity = embeddings @ embeddings.T
    # The first three windows are the IVR voice, the next three the Silero recording.
    same = [similarity[0, 1], similarity[0, 2], similarity[3, 4], similarity[3, 5]]
    other = similarity[:3, 3:6].ravel()
    assert min(same) > max(other)


def test_silence_and_short_windows_give_finite_rows(wheel: Path) -> None:
    embedder = load_embedder(wheel)
    rows = embedder.embed([np.zeros(25600, np.float32), np.full(100, 0.1, np.float32)])
    assert np.isfinite(rows).all()


def _legacy_file(payload: object) -> bytes:
    buffer = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, buffer, protocol=2)
    pickle.dump(payload, buffer, protocol=2)
    pickle.dump([], buffer, protocol=2)
    return buffer.getvalue()


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned",))


def test_reader_refuses_code_in_the_pickle(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    path.write_bytes(_legacy_file({"model_state": _Boom()}))
    with pytest.raises(LegacyTorchError, match=r"refusing to load (posix|os)\.system"):
        read_legacy_torch(path)


def test_reader_refuses_other_files(tmp_path: Path, pretrained: Path) -> None:
    zipped = tmp_path / "zip.pt"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", b"x")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(pretrained.read_bytes()[:-1000])
    for path in (zipped, truncated):
        with pytest.raises(LegacyTorchError):
            read_legacy_torch(path)
    plain = tmp_path / "plain.pt"
    plain.write_bytes(_legacy_file({"model_state": {"linear.weight": [1.0]}}))
    with pytest.raises(SpeakerModelError, match=r"lstm\.weight_ih_l0"):
        load_embedder(plain)


def test_load_embedder_explains_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(SpeakerModelError, match="does not exist"):
        load_embedder(tmp_path / "missing.onnx")
    other = tmp_path / "model.bin"
    other.write_bytes(b"\0" * 10)
    with pytest.raises(SpeakerModelError, match=r"expected an \.onnx file"):
        load_embedder(other)
    not_wheel = tmp_path / "fake.whl"
    not_wheel.write_bytes(b"not a zip")
    with pytest.raises(SpeakerModelError, match="not a Resemblyzer wheel"):
        load_embedder(not_wheel)


NO_TORCH = """
import importlib.abc, json, sys

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        root = name.split(".")[0]
        if root in {"torch", "scipy", "sklearn", "librosa"}:
            raise ImportError(f"{name} is blocked: the speaker runtime must not need it")
        return None

sys.meta_path.insert(0, Blocked())
import numpy as np
from gigaam_api.speakers import load_embedder

rows = load_embedder(sys.argv[1]).embed([np.zeros(25600, np.float32) + 0.01])
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "scipy", "sklearn", "librosa"})
print(json.dumps({"shape": list(rows.shape), "loaded": loaded}))
"""


def test_speaker_runtime_needs_no_torch_scipy_or_librosa(wheel: Path) -> None:
    """The embedders run on numpy and ONNX Runtime alone, even with the references installed."""
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(wheel)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"shape": [1, 256], "loaded": []}
