"""A first start that heals itself: the weights download is retried until it works.

A real HTTP server on loopback (``FileServer`` of ``tests/file_server.py``) first has no
weights (404) or fails (503), then serves them; the real server app on loopback keeps
retrying with backoff, says why on ``/health`` (503 with the reason) and becomes ready without
a restart. The golden fixture checkpoint stands in for the real weights.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gigaam_api.config import Settings, load_settings
from gigaam_api.model import AsrModel, load_model
from gigaam_api.server import create_app
from gigaam_api.weights import ensure_model
from tests.api_server import serve
from tests.file_server import PREFIX, FileServer
from tests.helpers import wait_until

NAME = "v3_ctc"
FILE = "v3_ctc.ckpt"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def weights(golden_dir: Path) -> bytes:
    return (golden_dir / NAME / FILE).read_bytes()


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer({}).start()  # nothing to serve yet
    yield server
    server.stop()


def _settings(models: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"_env_file": None, "models_dir": models, "num_threads": 1}
    return load_settings(**(values | overrides))


def _loader(base_url: str, md5: str) -> object:
    def load(settings: Settings) -> AsrModel:
        checkpoint, tokenizer = ensure_model(
            NAME, settings.models_dir, base_url, checksums={FILE: md5}, retries=0, timeout=5
        )
        return load_model(checkpoint, tokenizer, num_threads=1, device=settings.device)

    return load


def test_a_failed_download_is_retried_until_the_weights_come(
    files: FileServer, weights: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import hashlib

    md5 = hashlib.md5(weights, usedforsecurity=False).hexdigest()
    app = create_app(_settings(tmp_path / "models"), loader=_loader(files.base_url, md5))  # type: ignore[arg-type]
    app.state.ctx.service.retry_first_s = 0.05
    app.state.ctx.service.retry_max_s = 0.2
    caplog.set_level(logging.INFO)
    with serve(app) as url:
        health = wait_until(
            lambda: (r := httpx.get(f"{url}/health")).json().get("reason") and r,
            what="a reason on /health",
        )
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "loading" and body["loaded"] is False
        assert "404" in body["reason"] and "next try in" in body["reason"]
        assert body["device"] == "cpu"  # resolved, never "auto"
        wait_until(lambda: app.state.ctx.service.attempts >= 3, what="three failed tries")
        files.fail_once[f"{PREFIX}/{FILE}"] = 503  # the mirror comes back, flaky at first
        files.files[f"{PREFIX}/{FILE}"] = weights
        ready = wait_until(
            lambda: (r := httpx.get(f"{url}/health")).status_code == 200 and r,
            what="the service to become ready",
        )
        assert ready.json() == {"status": "ok", "model": "v3_ctc", "device": "cpu", "loaded": True}
    failures = [r for r in caplog.records if "could not be loaded (attempt" in r.getMessage()]
    attempts = [int(r.getMessage().split("(attempt ")[1].split(")")[0]) for r in failures]
    assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) >= 4
    assert all(r.exc_info is None for r in caplog.records), "expected errors have no traceback"


def test_a_device_the_runtime_lacks_is_an_error_without_retries(
    golden_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(
        tmp_path, checkpoint_path=golden_dir / NAME / FILE, device="cuda"
    )  # onnxruntime here is the CPU build
    app = create_app(settings)
    with serve(app) as url:
        health = wait_until(
            lambda: (r := httpx.get(f"{url}/health")).json()["status"] == "error" and r,
            what="the load to fail",
        )
    assert health.status_code == 503
    assert "cuda" in health.json()["reason"] and app.state.ctx.service.attempts == 0
    assert all(r.exc_info is None for r in caplog.records)


def test_a_models_dir_that_cannot_be_created_is_retried_and_explained(
    files: FileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An OS error (here MODELS_DIR is a file, as a wrong volume mount makes it) is expected:
    logged without a traceback, shown on /health, retried."""
    blocker = tmp_path / "models"
    blocker.write_text("not a folder")
    app = create_app(_settings(blocker / "inner", weights_url=files.base_url))
    app.state.ctx.service.retry_first_s = 0.05
    with serve(app) as url:
        wait_until(lambda: app.state.ctx.service.attempts >= 2, what="two failed tries")
        health = httpx.get(f"{url}/health")
    assert health.status_code == 503 and health.json()["status"] == "loading"
    assert "Not a directory" in health.json()["reason"]
    assert all(r.exc_info is None for r in caplog.records)
