"""Weights download against a real HTTP server on the loopback interface.

The server (``FileServer`` of ``tests/file_server.py``) is ``http.server`` in a thread with our
own Range handling and knobs for the failures a real CDN shows: a connection dropped mid-file,
no Range support, 5xx. It serves the golden fixture checkpoints; their MD5s differ from the
official ones, so the tests pass their own ``checksums=`` table.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gigaam_api.catalogue import CATALOGUE
from gigaam_api.config import Settings
from gigaam_api.weights import (
    OFFICIAL_CHECKSUMS,
    WeightsError,
    cached_md5,
    ensure_model,
    model_filenames,
    model_paths,
)
from tests.file_server import PREFIX, FileServer

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy configured in the environment must not intercept loopback requests.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def fixture_files(golden_dir: Path) -> dict[str, bytes]:
    """Real-format checkpoints (and an e2e tokenizer) keyed by file name."""
    return {
        "v3_ctc.ckpt": (golden_dir / "v3_ctc" / "v3_ctc.ckpt").read_bytes(),
        "v3_e2e_ctc.ckpt": (golden_dir / "v3_e2e_ctc" / "v3_e2e_ctc.ckpt").read_bytes(),
        "v3_e2e_ctc_tokenizer.model": (
            golden_dir / "v3_e2e_ctc" / "v3_e2e_ctc_tokenizer.model"
        ).read_bytes(),
    }


@pytest.fixture
def checksums(fixture_files: dict[str, bytes]) -> dict[str, str]:
    return {
        name: hashlib.md5(data).hexdigest()
        for name, data in fixture_files.items()
        if name.endswith(".ckpt")
    }


@pytest.fixture
def server(fixture_files: dict[str, bytes]) -> Iterator[FileServer]:
    srv = FileServer({f"{PREFIX}/{name}": data for name, data in fixture_files.items()}).start()
    yield srv
    srv.stop()


def _ensure(
    server: FileServer, models: Path, checksums: dict[str, str], name: str = "v3_ctc", **kw: object
) -> tuple[Path, Path | None]:
    options: dict[str, object] = {"progress": False, "retry_delay": 0.0, **kw}
    return ensure_model(name, models, server.base_url, checksums=checksums, **options)  # type: ignore[arg-type]


def test_md5_table_covers_every_official_model() -> None:
    assert len(CATALOGUE) == 14
    assert set(CATALOGUE) >= {"v3_ctc", "v3_rnnt", "v3_e2e_ctc", "v3_e2e_rnnt", "emo"}
    assert OFFICIAL_CHECKSUMS["multilingual_ctc.ckpt"] == "5379d887c53ccd9cb95981e2a1832720"
    assert OFFICIAL_CHECKSUMS["multilingual_large_ctc.ckpt"] == "79a9adde50dd7f35bbf70927cb6557d0"
    assert all(len(md5) == 32 and int(md5, 16) >= 0 for md5 in OFFICIAL_CHECKSUMS.values())
    assert OFFICIAL_CHECKSUMS["v3_ctc.ckpt"] == "73413e7be9c6a5935827bfab5c0dd678"


def test_tokenizer_rule_matches_upstream() -> None:
    assert CATALOGUE["v3_e2e_rnnt"].tokenizer and CATALOGUE["v1_rnnt"].tokenizer
    assert not CATALOGUE["v3_rnnt"].tokenizer and not CATALOGUE["v3_ctc"].tokenizer
    assert model_filenames("v3_e2e_ctc") == ("v3_e2e_ctc.ckpt", "v3_e2e_ctc_tokenizer.model")
    assert model_filenames("v2_ctc") == ("v2_ctc.ckpt", None)


def test_unknown_name_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"unknown model 'v4_ctc'.*v3_ctc"):
        ensure_model("v4_ctc", tmp_path, "http://127.0.0.1:9")


def test_download_success_then_cached(
    server: FileServer,
    tmp_path: Path,
    checksums: dict[str, str],
    fixture_files: dict[str, bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gigaam_api.weights")
    models = tmp_path / "models"
    ckpt, tokenizer = _ensure(server, models, checksums)
    assert ckpt == models / "v3_ctc.ckpt"
    assert tokenizer is None
    assert ckpt.read_bytes() == fixture_files["v3_ctc.ckpt"]
    assert not (models / "v3_ctc.ckpt.part").exists()
    assert server.gets("v3_ctc.ckpt") == [None]
    progress = [r.getMessage() for r in caplog.records if "%" in r.getMessage()]
    assert any("v3_ctc.ckpt: 100%" in line for line in progress), progress
    assert len(progress) >= 5  # a line every few percent, not only at the end

    # The second start finds the verified file: no request, no re-download.
    assert _ensure(server, models, checksums) == (ckpt, None)
    assert server.gets("v3_ctc.ckpt") == [None]


def test_e2e_model_brings_its_tokenizer(
    server: FileServer,
    tmp_path: Path,
    checksums: dict[str, str],
    fixture_files: dict[str, bytes],
) -> None:
    ckpt, tokenizer = _ensure(server, tmp_path, checksums, "v3_e2e_ctc")
    assert ckpt.read_bytes() == fixture_files["v3_e2e_ctc.ckpt"]
    assert tokenizer == tmp_path / "v3_e2e_ctc_tokenizer.model"
    assert tokenizer.read_bytes() == fixture_files["v3_e2e_ctc_tokenizer.model"]


def test_wrong_checksum_is_rejected_and_nothing_is_kept(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"checksum mismatch for v3_ctc\.ckpt.*WEIGHTS_URL"):
        _ensure(server, tmp_path, {"v3_ctc.ckpt": "0" * 32})
    assert not (tmp_path / "v3_ctc.ckpt").exists()
    assert not (tmp_path / "v3_ctc.ckpt.part").exists()
    # One clean transfer that fails its checksum is not retried: the mirror is wrong.
    assert len(server.gets("v3_ctc.ckpt")) == 1


def test_partial_file_survives_a_failed_run_and_the_next_run_resumes(
    server: FileServer,
    tmp_path: Path,
    checksums: dict[str, str],
    fixture_files: dict[str, bytes],
) -> None:
    server.drop_after[f"{PREFIX}/v3_ctc.ckpt"] = 200_000
    with pytest.raises(WeightsError, match=r"200000|0\.2 MB"):
        _ensure(server, tmp_path, checksums, retries=0)
    part = tmp_path / "v3_ctc.ckpt.part"
    assert part.stat().st_size == 200_000
    assert not (tmp_path / "v3_ctc.ckpt").exists()

    ckpt, _ = _ensure(server, tmp_path, checksums)
    assert ckpt.read_bytes() == fixture_files["v3_ctc.ckpt"]
    assert server.gets("v3_ctc.ckpt") == [None, "bytes=200000-"]
    assert not part.exists()


def _drop_mid_file(server: FileServer, part: Path, size: int) -> None:
    server.drop_after[f"{PREFIX}/v3_ctc.ckpt"] = 300_000


def _drop_without_range_support(server: FileServer, part: Path, size: int) -> None:
    # The server answers the resume with the whole file (200): it must not be appended twice.
    server.range_support = False
    server.drop_after[f"{PREFIX}/v3_ctc.ckpt"] = 500_000


def _stale_part_longer_than_file(server: FileServer, part: Path, size: int) -> None:
    part.write_bytes(b"\0" * (size + 10))  # the resume gets 416: start over


def _part_from_another_file(server: FileServer, part: Path, size: int) -> None:
    # A .part left by another mirror's file: resuming it gives a wrong file, so start over once.
    part.write_bytes(b"x" * 1000)


def _server_error_once(server: FileServer, part: Path, size: int) -> None:
    server.fail_once[f"{PREFIX}/v3_ctc.ckpt"] = 503


@pytest.mark.parametrize(
    ("arrange", "expected_ranges"),
    [
        pytest.param(_drop_mid_file, lambda size: [None, "bytes=300000-"], id="dropped-resumed"),
        pytest.param(
            _drop_without_range_support,
            lambda size: [None, "bytes=500000-"],
            id="no-range-support-restarts",
        ),
        pytest.param(
            _stale_part_longer_than_file,
            lambda size: [f"bytes={size + 10}-", None],
            id="stale-long-part-discarded",
        ),
        pytest.param(
            _part_from_another_file,
            lambda size: ["bytes=1000-", None],
            id="bad-resumed-bytes-refetched",
        ),
        pytest.param(_server_error_once, lambda size: [None, None], id="server-error-retried"),
    ],
)
def test_interrupted_or_failed_transfer_recovers(
    server: FileServer,
    tmp_path: Path,
    checksums: dict[str, str],
    fixture_files: dict[str, bytes],
    arrange: Callable[[FileServer, Path, int], None],
    expected_ranges: Callable[[int], list[str | None]],
) -> None:
    """Each way a transfer can go wrong ends in the right file, with the Range requests shown."""
    size = len(fixture_files["v3_ctc.ckpt"])
    arrange(server, tmp_path / "v3_ctc.ckpt.part", size)
    ckpt, _ = _ensure(server, tmp_path, checksums)
    assert ckpt.read_bytes() == fixture_files["v3_ctc.ckpt"]
    assert server.gets("v3_ctc.ckpt") == expected_ranges(size)
    assert not (tmp_path / "v3_ctc.ckpt.part").exists()


def test_404_names_the_url(server: FileServer, tmp_path: Path, checksums: dict[str, str]) -> None:
    with pytest.raises(WeightsError, match=r"v3_rnnt\.ckpt was not found \(HTTP 404\)"):
        _ensure(server, tmp_path, checksums, "v3_rnnt")
    assert list(tmp_path.glob("v3_rnnt.ckpt*")) == []


def test_corrupt_cached_file_is_fetched_again(
    server: FileServer,
    tmp_path: Path,
    checksums: dict[str, str],
    fixture_files: dict[str, bytes],
) -> None:
    ckpt, _ = _ensure(server, tmp_path, checksums)
    data = bytearray(ckpt.read_bytes())
    data[1000] ^= 0xFF  # one flipped byte, same size
    ckpt.write_bytes(bytes(data))
    os.utime(ckpt, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    assert _ensure(server, tmp_path, checksums)[0].read_bytes() == fixture_files["v3_ctc.ckpt"]
    assert len(server.gets("v3_ctc.ckpt")) == 2


def test_md5_is_cached_by_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "w.ckpt"
    path.write_bytes(b"weights")
    real = hashlib.md5(b"weights").hexdigest()
    assert cached_md5(path) == real
    sidecar = tmp_path / "w.ckpt.md5"
    assert sidecar.is_file()
    # While size and mtime match, the sidecar is trusted (no re-hash of a large file).
    sidecar.write_text(sidecar.read_text().replace(real, "f" * 32))
    assert cached_md5(path) == "f" * 32
    # A changed file (new mtime) is hashed again.
    path.write_bytes(b"WEIGHTS")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    assert cached_md5(path) == hashlib.md5(b"WEIGHTS").hexdigest()


def test_concurrent_threads_download_once(
    server: FileServer,
    tmp_path: Path,
    checksums: dict[str, str],
    fixture_files: dict[str, bytes],
) -> None:
    server.chunk_delay = 0.02  # ~0.5 s transfer, so the second caller arrives mid-download
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(_ensure(server, tmp_path, checksums)[0])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert results == [tmp_path / "v3_ctc.ckpt"] * 2
    assert results[0].read_bytes() == fixture_files["v3_ctc.ckpt"]
    assert server.gets("v3_ctc.ckpt") == [None]


def test_concurrent_processes_download_once(
    server: FileServer,
    tmp_path: Path,
    checksums: dict[str, str],
    fixture_files: dict[str, bytes],
) -> None:
    server.chunk_delay = 0.05  # ~1 s transfer; both processes start before it ends
    code = (
        "import sys; from gigaam_api.weights import ensure_model; "
        "print(ensure_model('v3_ctc', sys.argv[1], sys.argv[2], progress=False, "
        "checksums={'v3_ctc.ckpt': sys.argv[3]})[0])"
    )
    args = [sys.executable, "-c", code, str(tmp_path), server.base_url, checksums["v3_ctc.ckpt"]]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert [out.strip() for out, _ in outputs] == [str(tmp_path / "v3_ctc.ckpt")] * 2
    assert (tmp_path / "v3_ctc.ckpt").read_bytes() == fixture_files["v3_ctc.ckpt"]
    assert server.gets("v3_ctc.ckpt") == [None]


def test_offline_without_cache_says_how_to_get_weights(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WeightsError) as info:
        ensure_model(
            "v3_ctc", tmp_path, f"http://127.0.0.1:{port}/GigaAM", progress=False, retry_delay=0
        )
    message = str(info.value)
    assert "could not download" in message
    assert "gigaam-api download v3_ctc" in message
    assert "CHECKPOINT_PATH" in message
    assert "WEIGHTS_URL" in message


def test_offline_with_verified_cache_needs_no_network(
    server: FileServer, tmp_path: Path, checksums: dict[str, str]
) -> None:
    ckpt, _ = _ensure(server, tmp_path, checksums)
    again = ensure_model(
        "v3_ctc", tmp_path, "http://127.0.0.1:9/unreachable", checksums=checksums, progress=False
    )
    assert again == (ckpt, None)


def test_checkpoint_path_wins_and_finds_its_tokenizer(golden_dir: Path, tmp_path: Path) -> None:
    ckpt = golden_dir / "v3_e2e_ctc" / "v3_e2e_ctc.ckpt"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        checkpoint_path=ckpt,
        models_dir=tmp_path,
        weights_url="http://127.0.0.1:9/unreachable",
    )
    assert model_paths(settings) == (ckpt, ckpt.with_name("v3_e2e_ctc_tokenizer.model"))
    plain = golden_dir / "v3_ctc" / "v3_ctc.ckpt"
    settings = Settings(_env_file=None, checkpoint_path=plain)  # type: ignore[call-arg]
    assert model_paths(settings) == (plain, None)


def test_missing_checkpoint_path_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        checkpoint_path=tmp_path / "nope.ckpt",
    )
    with pytest.raises(WeightsError, match=r"CHECKPOINT_PATH=.*nope\.ckpt does not exist"):
        model_paths(settings)
