"""Test material for speaker diarization: Resemblyzer's real weights and the corpus voices.

The Resemblyzer wheel (Apache-2.0) is fetched once with ``pip download --no-deps`` into
``tests/.cache/resemblyzer`` (git-ignored) and checked against its pinned SHA-256; later runs
reuse it. Without the wheel and without network the tests that need it are skipped with the
reason. The corpus voices are read from ``../shared/corpus`` (16 kHz copies).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

# The same rule as tests/conftest.py, repeated so the reference script runs without pytest.
REPO_ROOT: Final = Path(__file__).resolve().parent.parent
CORPUS_DIR: Final = (
    Path(os.environ.get("GIGAAM_SHARED_DIR", REPO_ROOT.parent / "shared")) / "corpus"
)
RESEMBLYZER_VERSION: Final = "0.1.4"
RESEMBLYZER_WHEEL: Final = f"Resemblyzer-{RESEMBLYZER_VERSION}-py3-none-any.whl"
RESEMBLYZER_SHA256: Final = "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f"
CACHE_DIR: Final = REPO_ROOT / "tests" / ".cache" / "resemblyzer"
FIXTURES: Final = REPO_ROOT / "tests" / "fixtures" / "speakers"


class WrappedEmbedder:
    """A real speaker model seen through a wrapper: the same name, size and windows, and
    ``embed`` passed on; subclasses change what they test (a model that stalls or breaks)."""

    def __init__(self, inner: Any) -> None:
        self.name: str = inner.name
        self.dimension: int = inner.dimension
        self.window_seconds: float = inner.window_seconds
        self.same_speaker_similarity: float = inner.same_speaker_similarity
        self.inner = inner

    def embed(self, windows: Sequence[NDArray[Any]]) -> NDArray[np.float32]:
        embedded: NDArray[np.float32] = self.inner.embed(windows)
        return embedded


class GatedEmbedder(WrappedEmbedder):
    """A real speaker model behind a gate: ``embed`` waits until the test opens it (a model
    that has fallen behind the recogniser)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.gate = threading.Event()

    def embed(self, windows: Sequence[NDArray[Any]]) -> NDArray[np.float32]:
        assert self.gate.wait(120), "the test never opened the gate"
        return super().embed(windows)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resemblyzer_wheel() -> Path:
    """The pinned Resemblyzer wheel, downloaded on first use (RuntimeError if it cannot be)."""
    wheel = CACHE_DIR / RESEMBLYZER_WHEEL
    if wheel.is_file() and _sha256(wheel) == RESEMBLYZER_SHA256:
        return wheel
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--dest",
        str(CACHE_DIR),
        f"resemblyzer=={RESEMBLYZER_VERSION}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not wheel.is_file():
        raise RuntimeError(f"pip download resemblyzer failed: {done.stderr.strip()[-500:]}")
    if _sha256(wheel) != RESEMBLYZER_SHA256:
        wheel.unlink()
        raise RuntimeError("the downloaded Resemblyzer wheel does not match its pinned SHA-256")
    return wheel


def read_wav(path: Path) -> NDArray[np.float32]:
    """A 16 kHz mono PCM16 WAV as float32 in [-1, 1]."""
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path} is not 16 kHz mono PCM16")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return (data.astype(np.float32) / 32768.0).astype(np.float32)


def write_wav(path: Path, audio: NDArray[np.float32]) -> Path:
    """float32 16 kHz mono samples in [-1, 1] as a PCM16 WAV (a conversation to upload)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def corpus_wav(relative: str, corpus: Path = CORPUS_DIR) -> NDArray[np.float32]:
    return read_wav(corpus / relative)


#: Clips the GE2E and fbank parity fixtures were recorded on, with the window starts (s).
PARITY_CLIPS: Final = (
    ("asterisk_ru/wav16k/prompts/demo-congrats.wav", (0.5, 7.25, 20.0)),
    ("silero_vad/silero_ru.wav", (1.0, 30.0, 52.5)),
    ("voicekit/wav16k/stierlitz.wav", (0.0, 4.0)),
    ("synthetic_espeak/wav16k/espeak_02_f3.wav", (0.3,)),
    ("speech_to_phrase/stp_ru_gen_02.wav", (0.2,)),
)


def conv_speaker_model(path: Path) -> None:
    """A small convolutional speaker model of the published models' signature (``x [N, T, 80]``
    fbank → 64-d embedding, sherpa-onnx's metadata) with random weights: two 1-D convolutions
    (ReLU), the mean over time, a projection. What the int8 copy is tested on."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)

    def weight(*shape: int) -> NDArray[np.float32]:
        fan_in = int(np.prod(shape[1:]))
        scaled: NDArray[np.float32] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(
            np.float32
        )
        return scaled

    nodes = [
        helper.make_node("Transpose", ["x"], ["channels"], perm=[0, 2, 1]),
        helper.make_node("Conv", ["channels", "w1", "b1"], ["c1"], kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node(
            "Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3], pads=[2, 2], dilations=[2]
        ),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("ReduceMean", ["r2"], ["pooled"], axes=[2], keepdims=0),
        helper.make_node("MatMul", ["pooled", "w3"], ["embedding"]),
    ]
    initializers = [
        numpy_helper.from_array(weight(64, 80, 3), "w1"),
        numpy_helper.from_array(np.zeros(64, np.float32), "b1"),
        numpy_helper.from_array(weight(64, 64, 3), "w2"),
        numpy_helper.from_array(np.zeros(64, np.float32), "b2"),
        numpy_helper.from_array(weight(64, 64).T.copy(), "w3"),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_speaker_model",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", 80])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 64])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    meta = {"framework": "3d-speaker", "sample_rate": "16000", "output_dim": "64"}
    meta |= {"normalize_samples": "1", "feature_normalize_type": "global-mean"}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
