"""The service shell over real HTTP, independent of the model: health while loading or after a
failed load, models, auth, the error envelope for every kind of error, request ids, metrics.

The model loader is replaced here only to hold the service in its "loading" or "failed"
state; transcription itself is covered by the end-to-end tests with the real model.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gigaam_api import audio
from gigaam_api.api.errors import from_service_error, install_error_handlers
from gigaam_api.api.middleware import RequestContextMiddleware
from gigaam_api.catalogue import RUNNABLE_MODELS
from gigaam_api.config import Settings, load_settings
from gigaam_api.logging import JsonFormatter, TextFormatter, configure_logging
from gigaam_api.server import create_app
from gigaam_api.service import errors as core_errors
from gigaam_api.service.errors import ServiceError
from gigaam_api.service.metrics import Metrics
from gigaam_api.service.model_service import ModelService
from tests.api_server import serve
from tests.helpers import wait_until

KEY = "test-key-123"
ALIAS_WITH_SLASH = "openai/whisper-large-v3"


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "_env_file": None,
        "models_dir": "/nonexistent",
        "model_aliases": f"whisper-1,gpt-4o-transcribe,{ALIAS_WITH_SLASH}",
    }
    return load_settings(**{**base, **overrides})


@pytest.fixture(scope="module")
def loading_url() -> Iterator[str]:
    """A server whose model never finishes loading (until the module ends)."""
    release = threading.Event()

    def loader(_: Settings) -> Any:
        release.wait()
        raise RuntimeError("test over")

    with serve(create_app(settings(api_key=KEY), loader=loader)) as url:
        yield url
        release.set()


@pytest.fixture(scope="module")
def http(loading_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=loading_url, timeout=30) as client:
        yield client


AUTH = {"Authorization": f"Bearer {KEY}"}


def assert_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_health_is_503_while_loading(http: httpx.Client, prefix: str) -> None:
    response = http.get(f"{prefix}/health")
    assert response.status_code == 503
    assert response.json() == {
        "status": "loading",
        "model": "v3_ctc",
        "device": "cpu",  # resolved before the model is there: never "auto"
        "loaded": False,
    }
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_transcription_while_loading_is_503_with_retry_after(
    http: httpx.Client, prefix: str
) -> None:
    response = http.post(
        f"{prefix}/audio/transcriptions",
        headers=AUTH,
        files={"file": ("a.wav", b"RIFF....")},
        data={"model": "whisper-1"},
    )
    error = assert_envelope(response, 503)
    assert error["code"] == "model_not_loaded"
    assert int(response.headers["retry-after"]) > 0


def test_auth_is_checked_before_anything_else(http: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"api-key": "nope"}):
        response = http.post(
            "/v1/audio/transcriptions", headers=headers, files={"file": ("a", b"junk")}
        )
        error = assert_envelope(response, 401)
        assert error["code"] == "invalid_api_key"
        assert KEY not in response.text
    # the Azure-style header is accepted too (then the loading model answers)
    response = http.post(
        "/v1/audio/transcriptions", headers={"api-key": KEY}, files={"file": ("a", b"x")}
    )
    assert response.status_code == 503


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_models_list(http: httpx.Client, prefix: str) -> None:
    assert_envelope(http.get(f"{prefix}/models"), 401)
    response = http.get(f"{prefix}/models", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert ids == [
        *RUNNABLE_MODELS,  # v3 first, then multilingual, v2, v1 (the catalogue's order)
        "whisper-1",
        "gpt-4o-transcribe",
        ALIAS_WITH_SLASH,
    ]
    for item in body["data"]:
        assert item["object"] == "model" and item["owned_by"] == "gigaam"
        assert isinstance(item["created"], int)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/v3_ctc",
        "/models/whisper-1",
        f"/v1/models/{ALIAS_WITH_SLASH}",
        "/v1/models/openai%2Fwhisper-large-v3",
    ],
)
def test_model_retrieve_with_raw_and_encoded_slash(http: httpx.Client, path: str) -> None:
    response = http.get(path, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["id"] in ("v3_ctc", "whisper-1", ALIAS_WITH_SLASH)
    assert response.json()["object"] == "model"


def test_unknown_model_is_404_model_not_found(http: httpx.Client) -> None:
    error = assert_envelope(http.get("/v1/models/nope/x", headers=AUTH), 404)
    assert error["code"] == "model_not_found" and error["param"] == "model"


def test_unknown_route_and_wrong_method_use_the_envelope(http: httpx.Client) -> None:
    error = assert_envelope(http.get("/v1/nothing-here"), 404)
    assert "/v1/nothing-here" in error["message"]
    response = http.get("/v1/audio/transcriptions")
    error = assert_envelope(response, 405)
    assert "POST" in response.headers["allow"]
    assert "detail" not in response.text


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_translations_are_a_clear_400(http: httpx.Client, prefix: str) -> None:
    response = http.post(f"{prefix}/audio/translations", headers=AUTH, files={"file": ("a", b"x")})
    error = assert_envelope(response, 400)
    assert "Russian" in error["message"] and "transcriptions" in error["message"]
    assert_envelope(http.post(f"{prefix}/audio/translations", files={"file": ("a", b"x")}), 401)


def test_request_ids_are_unique_or_taken_from_the_client(http: httpx.Client) -> None:
    ids = {http.get("/health").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert (
        http.get("/health", headers={"x-request-id": "trace-42"}).headers["x-request-id"]
        == "trace-42"
    )
    odd = http.get("/health", headers={"x-request-id": "bad id with spaces"}).headers[
        "x-request-id"
    ]
    assert odd != "bad id with spaces"


def test_metrics_exposes_the_service_families(http: httpx.Client) -> None:
    http.get("/v1/models", headers=AUTH)
    http.get("/v1/scanner-probe-12345")
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for family in (
        "gigaam_http_requests_total",
        "gigaam_http_request_duration_seconds",
        "gigaam_audio_seconds_total",
        "gigaam_inference_batch_seconds",
        "gigaam_realtime_factor",
        "gigaam_queue_depth",
        "gigaam_model_loaded 0.0",
    ):
        assert family in text
    assert 'route="/models",status="200"' in text  # templates, without the /v1 mount
    # raw unknown paths never become label values (bounded series)
    assert 'route="unmatched",status="404"' in text and "scanner-probe" not in text


def test_a_failed_load_is_reported_not_hidden() -> None:
    def broken(_: Settings) -> Any:
        raise RuntimeError("checkpoint is corrupt")

    app = create_app(settings(), loader=broken)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert app.state.ctx.service.wait_loaded(10) is False
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["loaded"] is False and health.json()["status"] == "error"
        assert "checkpoint is corrupt" in health.json()["error"]
        response = client.post("/v1/audio/transcriptions", files={"file": ("a", b"x")})
        error = assert_envelope(response, 503)
        assert "checkpoint is corrupt" in error["message"]


def test_unexpected_crash_is_a_500_envelope_with_request_id() -> None:
    app = FastAPI()  # wired as create_app wires it
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=Metrics())

    @app.get("/anything")
    async def crashing() -> None:
        raise ZeroDivisionError("bug")

    with serve(app) as url:
        response = httpx.get(f"{url}/anything", timeout=30)
    error = assert_envelope(response, 500)
    assert error["type"] == "server_error" and "bug" not in error["message"]


def test_access_log_lines(caplog: pytest.LogCaptureFixture, http: httpx.Client) -> None:
    with caplog.at_level(logging.INFO, logger="gigaam_api.access"):
        rid = http.get("/v1/models", headers=AUTH).headers["x-request-id"]
        # the line is written just after the response is sent
        records = wait_until(
            lambda: [r for r in caplog.records if r.__dict__.get("request_id") == rid],
            "the access log line",
        )
    assert len(records) == 1
    record = records[0]
    assert record.__dict__["status"] == 200 and record.__dict__["path"] == "/v1/models"
    assert record.__dict__["processing_seconds"] >= 0
    assert KEY not in record.getMessage()
    as_json = json.loads(JsonFormatter().format(record))
    assert as_json["request_id"] == rid and as_json["status"] == 200
    assert f"request_id={rid}" in TextFormatter().format(record)


def test_configure_logging_is_idempotent() -> None:
    logger = logging.getLogger("gigaam_api")
    before = list(logger.handlers)
    try:
        configure_logging("DEBUG", True)
        configure_logging("INFO", False)
        ours = [h for h in logger.handlers if h not in before]  # the second call's only
        assert len(ours) == 1 and isinstance(ours[0].formatter, TextFormatter)
        assert logger.level == logging.INFO
    finally:
        for handler in list(logger.handlers):
            if handler not in before:
                logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_admission_after_stop_says_shutting_down() -> None:
    """A request arriving during shutdown is told so, not that the model is still loading
    (the same code as a request the stopping scheduler turns away)."""
    release = threading.Event()

    def loader(_: Settings) -> Any:
        release.wait()
        raise RuntimeError("test over")

    service = ModelService(settings(), Metrics(), loader)
    service.start()
    service.stop()
    try:
        with pytest.raises(ServiceError) as caught:
            service.admit("req_after_stop")
        assert caught.value.code == "shutting_down"
        assert "shutting down" in caught.value.message
        assert from_service_error(caught.value).status == 503  # what the HTTP door answers
    finally:
        release.set()


@pytest.mark.parametrize(
    ("error", "status", "retries"),
    [
        (core_errors.not_ready(), 503, True),
        (core_errors.not_ready("no such device"), 503, True),
        (core_errors.queue_full(4), 503, True),
        (core_errors.shutting_down(), 503, False),
        (core_errors.cancelled(), 499, False),
        (core_errors.failure_of(audio.EmptyAudio("the file is empty"), "req_1"), 400, False),
        (core_errors.failure_of(audio.FfmpegMissing("no decoder"), "req_1"), 500, False),
        (core_errors.failure_of(RuntimeError("a bug"), "req_1"), 500, False),
    ],
)
def test_core_errors_keep_their_code_and_message_over_http(
    error: ServiceError, status: int, retries: bool
) -> None:
    """The core words a failure once (the Wyoming door sends the same code and message); HTTP
    adds only the status, the client's ``param`` for a bad file and ``Retry-After``."""
    api_error = from_service_error(error)
    assert (api_error.status, api_error.code, api_error.message) == (
        status,
        error.code,
        error.message,
    )
    assert ("Retry-After" in api_error.headers) is retries
    assert api_error.param == ("file" if error.kind == "invalid_audio" else None)
    assert error.client_error is (status < 500)
