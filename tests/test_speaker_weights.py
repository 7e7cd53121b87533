"""Fetching a speaker model by name: the GigaAM downloader, then the catalogue's SHA-256.

Runs against the same loopback HTTP server as ``tests/test_weights.py`` (real sockets, a
dropped connection), serving a small stand-in file under a test catalogue.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gigaam_api.speaker_weights import speaker_model_path
from gigaam_api.speakers.catalogue import DEFAULT_SPEAKER_MODEL, SPEAKER_MODELS, SpeakerModelInfo
from gigaam_api.weights import WeightsError
from tests.file_server import PREFIX, FileServer

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer({f"{PREFIX}/model.onnx": PAYLOAD}).start()
    yield srv
    srv.stop()


def _catalogue(server: FileServer, digest: str | None = None) -> dict[str, SpeakerModelInfo]:
    info = dataclasses.replace(
        SPEAKER_MODELS[DEFAULT_SPEAKER_MODEL],
        file="model.onnx",
        url=f"{server.base_url}/model.onnx",
        sha256=digest or hashlib.sha256(PAYLOAD).hexdigest(),
        size=len(PAYLOAD),
    )
    return {info.name: info}


def test_catalogue_entries_are_complete() -> None:
    assert DEFAULT_SPEAKER_MODEL in SPEAKER_MODELS
    for info in SPEAKER_MODELS.values():
        assert info.url.endswith("/" + info.file)
        assert info.url.startswith("https://github.com/k2-fsa/sherpa-onnx/releases/download/")
        assert len(info.sha256) == 64 and int(info.sha256, 16) >= 0
        assert info.licence in {"Apache-2.0", "CC-BY-4.0"}


def test_download_verify_then_cached(server: FileServer, tmp_path: Path) -> None:
    catalogue = _catalogue(server)
    path = speaker_model_path(DEFAULT_SPEAKER_MODEL, tmp_path, catalogue=catalogue)
    assert path.read_bytes() == PAYLOAD
    sidecar = json.loads(path.with_name("model.onnx.sha256").read_text())
    assert sidecar["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    again = speaker_model_path(DEFAULT_SPEAKER_MODEL, tmp_path, catalogue=catalogue)
    assert again == path
    assert len(server.gets("model.onnx")) == 1  # the second call found it verified on disk


def test_interrupted_download_resumes(server: FileServer, tmp_path: Path) -> None:
    server.drop_after[f"{PREFIX}/model.onnx"] = 300_000
    path = speaker_model_path(
        DEFAULT_SPEAKER_MODEL,
        tmp_path,
        catalogue=_catalogue(server),
        retry_delay=0.01,
    )
    assert path.read_bytes() == PAYLOAD
    assert server.gets("model.onnx") == [None, "bytes=300000-"]


def test_wrong_file_is_removed_and_refused(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="SHA-256"):
        speaker_model_path(
            DEFAULT_SPEAKER_MODEL,
            tmp_path,
            catalogue=_catalogue(server, "0" * 64),
        )
    assert not (tmp_path / "model.onnx").exists()
    assert len(server.gets("model.onnx")) == 2  # fetched once more before giving up


def test_local_paths_and_unknown_names(tmp_path: Path) -> None:
    local = tmp_path / "mine.onnx"
    local.write_bytes(b"x")
    assert speaker_model_path(str(local), tmp_path) == local
    with pytest.raises(WeightsError, match="neither a speaker model name"):
        speaker_model_path("no_such_model", tmp_path)


def test_unreachable_server_says_what_to_do(tmp_path: Path) -> None:
    info = dataclasses.replace(
        SPEAKER_MODELS[DEFAULT_SPEAKER_MODEL], url="http://127.0.0.1:9/model.onnx"
    )
    with pytest.raises(WeightsError, match="DIARIZATION_MODEL"):
        speaker_model_path(
            info.name, tmp_path, catalogue={info.name: info}, retries=0, retry_delay=0
        )
