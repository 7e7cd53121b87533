"""Admission, fairness and cancellation on the real server with the real model and pipeline.

Nothing here asserts on wall-clock time. Requests are held at well-defined points instead
(an upload paused half-way keeps its admission slot; a request is dropped only after the
worker has served one of its batches) and fairness is read from the order of batches the
scheduler recorded, with request ids chosen by the test (``x-request-id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gigaam_api.server import create_app
from tests.api_server import (
    MULTIPART_HEADERS,
    busy_decoders,
    multipart_body,
    raw_request,
    real_model_settings,
    scheduler,
    serve,
    tiled_wav,
)
from tests.conftest import CORPUS_DIR
from tests.helpers import records_of, wait_until

TIMEOUT = 120.0
SHORT = CORPUS_DIR / "pisets" / "test_sound_ru.wav"
LONG_SECONDS = 600.0  # ten minutes of tiled speech: dozens of batches


@pytest.fixture(scope="module")
def long_wav(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = corpus_dir / "longform" / "longform_espeak_ru.wav"
    return tiled_wav(source, tmp_path_factory.mktemp("long") / "long.wav", LONG_SECONDS)


@pytest.fixture(scope="module")
def app(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = real_model_settings(
        golden_dir, tmp_path_factory.mktemp("models"), max_queue=2, batch_size=1
    )
    return create_app(settings, keepalive_seconds=0.5, tmp_dir=tmp_path_factory.mktemp("uploads"))


@pytest.fixture(scope="module")
def url(app: FastAPI) -> Iterator[str]:
    with serve(app) as base:
        assert app.state.ctx.service.wait_loaded(TIMEOUT), app.state.ctx.service.error
        scheduler(app).record_served()  # fairness is read from its records
        yield base


def served_for(app: FastAPI, request_id: str) -> int:
    return sum(1 for b in records_of(scheduler(app)) if b.request_id == request_id)


@pytest.fixture(autouse=True)
def idle_afterwards(app: FastAPI, url: str) -> Iterator[None]:
    """Each test ends with a free worker, no decoder busy and no upload left on disk."""
    yield
    uploads: Path = app.state.ctx.tmp_dir
    wait_until(lambda: scheduler(app).active == 0, what="all tickets released")
    wait_until(lambda: not busy_decoders(), timeout=10, what="decoders to finish")
    wait_until(lambda: not list(uploads.iterdir()), timeout=10, what="uploads to be removed")


def test_queue_full_is_503_and_admitted_requests_complete(app: FastAPI, url: str) -> None:
    short_text = httpx.post(
        f"{url}/v1/audio/transcriptions", files={"file": SHORT.open("rb")}, timeout=TIMEOUT
    ).json()
    body = multipart_body(SHORT)
    release = threading.Event()
    results: list[httpx.Response] = []

    def paused_upload() -> None:
        def chunks() -> Iterator[bytes]:
            yield body[:1000]
            release.wait(TIMEOUT)  # the request holds its slot while its upload is paused
            yield body[1000:]

        results.append(
            httpx.post(
                f"{url}/v1/audio/transcriptions",
                content=chunks(),
                headers=MULTIPART_HEADERS,
                timeout=TIMEOUT,
            )
        )

    threads = [threading.Thread(target=paused_upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    wait_until(lambda: scheduler(app).active == 2, what="two admitted requests")
    third = httpx.post(
        f"{url}/v1/audio/transcriptions", files={"file": SHORT.open("rb")}, timeout=TIMEOUT
    )
    assert third.status_code == 503
    assert int(third.headers["retry-after"]) >= 1
    assert third.json()["error"]["code"] == "server_busy"
    depth = [
        line
        for line in httpx.get(f"{url}/metrics").text.splitlines()
        if line.startswith("gigaam_queue_depth ")
    ]
    assert depth == ["gigaam_queue_depth 2.0"]
    release.set()
    for thread in threads:
        thread.join(TIMEOUT)
    assert [r.status_code for r in results] == [200, 200]
    assert all(r.json() == short_text for r in results)


def test_short_request_waits_at_most_one_batch_of_a_long_one(
    app: FastAPI, url: str, long_wav: Path
) -> None:
    reference = httpx.post(
        f"{url}/v1/audio/transcriptions", files={"file": SHORT.open("rb")}, timeout=TIMEOUT
    ).json()
    long_result: list[httpx.Response] = []

    def long_request() -> None:
        with long_wav.open("rb") as fh:
            long_result.append(
                httpx.post(
                    f"{url}/v1/audio/transcriptions",
                    files={"file": fh},
                    headers={"x-request-id": "long-fair"},
                    timeout=TIMEOUT,
                )
            )

    runner = threading.Thread(target=long_request)
    runner.start()
    wait_until(lambda: served_for(app, "long-fair") >= 2, what="the long request to be under way")
    short = httpx.post(
        f"{url}/v1/audio/transcriptions",
        files={"file": SHORT.open("rb")},
        headers={"x-request-id": "short-fair"},
        timeout=TIMEOUT,
    )
    assert short.status_code == 200 and short.json() == reference
    runner.join(TIMEOUT)
    assert long_result and long_result[0].status_code == 200 and long_result[0].json()["text"]

    order = [b for b in records_of(scheduler(app)) if b.request_id in ("long-fair", "short-fair")]
    short_at = next(i for i, b in enumerate(order) if b.request_id == "short-fair")
    assert [b.request_id for b in order].count("short-fair") == 1  # short audio: one pass
    assert order[short_at].waited <= 1  # behind at most the batch already running
    # the long request was running before and kept running after: it was interleaved
    assert any(b.request_id == "long-fair" for b in order[:short_at])
    assert any(b.request_id == "long-fair" for b in order[short_at + 1 :])


def cancelled_count(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith('gigaam_transcriptions_total{outcome="cancelled"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("stream", [False, True])
def test_client_disconnect_cancels_and_frees_the_worker(
    app: FastAPI, url: str, long_wav: Path, stream: bool
) -> None:
    request_id = f"drop-{'sse' if stream else 'plain'}"
    before = cancelled_count(url)
    port = int(url.rsplit(":", 1)[1])
    body = multipart_body(long_wav, stream="true" if stream else "false")
    sock = raw_request(port, body, request_id, MULTIPART_HEADERS)
    try:
        if stream:  # read until the first delta has arrived, as a client reading the stream
            received = b""
            while b"transcript.text.delta" not in received:
                chunk = sock.recv(65536)
                assert chunk, "stream closed early"
                received += chunk
            assert b"200 OK" in received.split(b"\r\n", 1)[0]
        wait_until(lambda: served_for(app, request_id) >= 1, what="the first batch")
        decoding = busy_decoders()
        assert decoding, "a decoder worker should be decoding the long file"
    finally:
        sock.close()  # the client goes away mid-transcription
    wait_until(lambda: scheduler(app).active == 0, timeout=30, what="the slot to be freed")
    wait_until(
        lambda: not set(decoding) & set(busy_decoders()), timeout=10, what="decoder to be killed"
    )
    assert cancelled_count(url) == before + 1  # stopped, not finished
    done = served_for(app, request_id)
    # the worker is free: the next request starts and completes
    after = httpx.post(
        f"{url}/v1/audio/transcriptions", files={"file": SHORT.open("rb")}, timeout=TIMEOUT
    )
    assert after.status_code == 200 and after.json()["text"]
    # and nothing more ran for the cancelled one: round-robin would have interleaved any batch
    # still queued for it with the next request's, so by now it would have been served
    assert served_for(app, request_id) == done


def test_disconnect_as_the_stream_starts_still_cancels(
    app: FastAPI, url: str, long_wav: Path
) -> None:
    """The client leaves just as the SSE response begins: Starlette then cancels the response
    before its body iterator ever ran, so cleanup living only in that iterator never happens
    and the transcription would run to the end of the file, holding its slot.

    Driven at the ASGI level (spec 2.3, like uvicorn's HTTP servers) so the disconnect lands
    exactly between the handler returning and the first body byte.
    """
    before = cancelled_count(url)
    body = multipart_body(long_wav, stream="true")
    disconnect = asyncio.Event()
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not messages:
            messages.append({})
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnect.wait()  # the handler's polls see nothing until the response starts
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.start":
            disconnect.set()
            # The start is still going out when the disconnect is noticed: this send only ends
            # when the response cancels it (the timeout merely guards against a hang).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.Event().wait(), TIMEOUT)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/audio/transcriptions",
        "raw_path": b"/v1/audio/transcriptions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"test"),
            (b"x-request-id", b"drop-at-start"),
            *[(k.lower().encode(), v.encode()) for k, v in MULTIPART_HEADERS.items()],
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def drive() -> None:
        await app(scope, receive, send)  # type: ignore[arg-type]
        # keep this loop alive meanwhile, as a server's would be (a closed loop stops the run)
        deadline = time.monotonic() + TIMEOUT
        while scheduler(app).active and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    asyncio.run(drive())
    assert not any(m.get("body") for m in messages[1:])  # no body byte reached the client
    assert scheduler(app).active == 0
    assert cancelled_count(url) == before + 1  # stopped, not run to the end of the file
    assert served_for(app, "drop-at-start") < 10  # far from the dozens the whole file needs


@pytest.mark.parametrize(
    ("sig", "status"), [(signal.SIGKILL, 500), (signal.SIGSEGV, 400)], ids=["kill", "segv"]
)
def test_a_decoder_dying_mid_request_fails_only_that_request(
    app: FastAPI, url: str, long_wav: Path, sig: signal.Signals, status: int
) -> None:
    """The decoder worker is killed (the OOM killer's SIGKILL) or crashes (a real SIGSEGV)
    while it decodes an upload: that request fails with a clear error, the server lives on and
    the next compressed upload is decoded by a fresh worker."""
    answer: list[httpx.Response] = []
    request_id = f"decoder-{sig.name}"
    # the worker started with the app is idle by now: only this upload's worker is busy
    wait_until(lambda: not busy_decoders(), what="no decoder busy")

    def post() -> None:
        with long_wav.open("rb") as fh:
            answer.append(
                httpx.post(
                    f"{url}/v1/audio/transcriptions",
                    files={"file": fh},
                    headers={"x-request-id": request_id},
                    timeout=TIMEOUT,
                )
            )

    client = threading.Thread(target=post)
    client.start()
    wait_until(lambda: served_for(app, request_id) >= 1, what="the first batch")
    decoding = busy_decoders()
    assert len(decoding) == 1, decoding
    os.kill(decoding[0], sig)
    client.join(TIMEOUT)
    assert answer and answer[0].status_code == status
    error = answer[0].json()["error"]
    assert error["code"] == "decoder_crashed" and signal.Signals(sig).name in error["message"]
    after = httpx.post(
        f"{url}/v1/audio/transcriptions",
        files={"file": (CORPUS_DIR / "edge_cases" / "pisets.mp3").open("rb")},
        timeout=TIMEOUT,
    )
    assert after.status_code == 200 and after.json()["text"]
