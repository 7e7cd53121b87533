"""The torch-free checkpoint reader: real fixtures, malicious pickles, broken files."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gigaam_api.model.checkpoint import CheckpointError, read_checkpoint
from tests.conftest import MODELS


@pytest.mark.parametrize("name", MODELS)
def test_reads_official_format(golden_dir: Path, name: str) -> None:
    ckpt = read_checkpoint(golden_dir / name / f"{name}.ckpt")
    meta = json.loads((golden_dir / name / "meta.json").read_text())
    assert ckpt.cfg == meta["config"]
    assert ckpt.refused == []
    window = ckpt.state_dict["preprocessor.featurizer.0.spectrogram.window"]
    assert window.shape == (320,) and window.dtype == np.float32
    # periodic Hann window, as torch.hann_window builds it
    expected = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(320) / 320)
    np.testing.assert_allclose(window, expected, atol=1e-6)
    assert ckpt.state_dict["preprocessor.featurizer.0.mel_scale.fb"].shape == (161, 64)
    n_params = sum(v.size for k, v in ckpt.state_dict.items() if "preprocessor" not in k)
    assert n_params == meta["num_parameters"]


def _zip_with_pickle(payload: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/version", b"3\n")
        for name, data in (extra or {}).items():
            zf.writestr(f"archive/data/{name}", data)
    return buffer.getvalue()


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_neutralised(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"cfg": {}, "state_dict": {"w": _Exploit(marker)}}, protocol=2)
    path = tmp_path / "evil.ckpt"
    path.write_bytes(_zip_with_pickle(payload))
    with pytest.raises(CheckpointError, match="not a tensor"):
        read_checkpoint(path)
    assert not marker.exists(), "the pickled os.system call must never run"


def test_malicious_top_level_object_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(_zip_with_pickle(pickle.dumps(_Exploit(marker), protocol=2)))
    with pytest.raises(CheckpointError, match="does not hold a GigaAM checkpoint"):
        read_checkpoint(path)
    assert not marker.exists()


def test_unknown_extra_keys_are_ignored(tmp_path: Path) -> None:
    # a plain state dict built by hand in the torch pickle layout, plus unknown top-level keys
    class _Storage:
        pass

    data = np.arange(6, dtype=np.float32)
    source = (
        b"\x80\x02}q\x00(X\x03\x00\x00\x00cfgq\x01}q\x02X\x05\x00\x00\x00modelq\x03X\x01\x00"
        b"\x00\x00xq\x04sX\n\x00\x00\x00state_dictq\x05ccollections\nOrderedDict\nq\x06)Rq\x07"
        b"X\x01\x00\x00\x00wq\x08ctorch._utils\n_rebuild_tensor_v2\nq\t((X\x07\x00\x00\x00"
        b"storageq\nctorch\nFloatStorage\nq\x0bX\x01\x00\x00\x000q\x0cX\x03\x00\x00\x00cpuq\r"
        b"K\x06tq\x0eQK\x00K\x02K\x03\x86q\x0fK\x03K\x01\x86q\x10\x89)tq\x11Rq\x12sX\x05\x00"
        b"\x00\x00extraq\x13csubprocess\nPopen\nq\x14X\x02\x00\x00\x00lsq\x15\x85q\x16Rq\x17u."
    )
    del _Storage
    path = tmp_path / "tiny.ckpt"
    path.write_bytes(_zip_with_pickle(source, {"0": data.tobytes()}))
    ckpt = read_checkpoint(path)
    assert ckpt.cfg == {"model": "x"}
    np.testing.assert_array_equal(ckpt.state_dict["w"], data.reshape(2, 3))
    assert ckpt.refused == ["subprocess.Popen"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (b"RIFF not a zip at all" * 10, "not a PyTorch checkpoint"),
    ],
)
def test_not_a_checkpoint(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        read_checkpoint(path)


def test_truncated_checkpoint(tmp_path: Path, golden_dir: Path) -> None:
    data = (golden_dir / "v3_ctc" / "v3_ctc.ckpt").read_bytes()
    path = tmp_path / "cut.ckpt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        read_checkpoint(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot open"):
        read_checkpoint(tmp_path / "nope.ckpt")
