"""Streaming multipart uploads over real HTTP: part order, chunked bodies, limits, cleanup.

A small app exposes :func:`read_form` directly (echoing what it parsed), served by uvicorn on
loopback, so these tests exercise the same parser, temp-file and limit code the transcription
route uses, without needing a model.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from gigaam_api.api.errors import install_error_handlers
from gigaam_api.api.speaker_params import MAX_KNOWN_SPEAKERS, parse_known_speakers
from gigaam_api.api.uploads import FIELD_LIMIT_BYTES, FLUSH_BYTES, MAX_PARTS, read_form
from tests.api_server import serve
from tests.helpers import wait_until

LIMIT = 2 * 1024 * 1024


def make_app(tmp_dir: Path) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/upload")
    async def upload(request: Request) -> JSONResponse:
        try:
            form = await read_form(request, max_bytes=LIMIT, tmp_dir=tmp_dir)
        except ClientDisconnect:
            return JSONResponse({}, status_code=400)
        try:
            file_info: dict[str, Any] | None = None
            if form.file is not None:
                data = form.file.path.read_bytes()
                file_info = {
                    "size": form.file.size,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "filename": form.file.filename,
                    "content_type": form.file.content_type,
                    "in_tmp_dir": form.file.path.parent == tmp_dir,
                }
            return JSONResponse({"fields": form.fields, "file": file_info})
        finally:
            form.cleanup()

    @app.post("/upload-impatient")
    async def impatient(request: Request) -> JSONResponse:
        form = await read_form(request, max_bytes=LIMIT, tmp_dir=tmp_dir, idle_timeout=0.5)
        form.cleanup()
        return JSONResponse({"fields": form.fields})

    return app


@pytest.fixture(scope="module")
def tmp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def base_url(tmp_dir: Path) -> Iterator[str]:
    with serve(make_app(tmp_dir)) as url:
        yield url


@pytest.fixture
def client(base_url: str, tmp_dir: Path) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        yield http
    wait_empty(tmp_dir)


def wait_empty(folder: Path) -> None:
    """Every test must leave no temp file behind, whatever the outcome."""
    wait_until(lambda: not list(folder.iterdir()), f"no temp files in {folder}")


Part = tuple[str, bytes, dict[str, str]]


def multipart(parts: list[Part], boundary: str = "XyZ") -> bytes:
    """Hand-built body: (disposition params, payload, extra headers) per part, in order."""
    out = bytearray()
    for disposition, payload, headers in parts:
        out += f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n".encode()
        for name, value in headers.items():
            out += f"{name}: {value}\r\n".encode()
        out += b"\r\n" + payload + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


CT = {"Content-Type": "multipart/form-data; boundary=XyZ"}
AUDIO = os.urandom(300_000)


def test_file_first_or_last_parses_the_same(client: httpx.Client) -> None:
    fields: list[Part] = [
        ('name="model"', b"whisper-1", {}),
        ('name="timestamp_granularities[]"', b"word", {}),
        ('name="timestamp_granularities[]"', b"segment", {}),
    ]
    file_part = ('name="file"; filename="a.wav"', AUDIO, {"Content-Type": "audio/x-wav"})
    first = client.post("/upload", content=multipart([file_part, *fields]), headers=CT)
    last = client.post("/upload", content=multipart([*fields, file_part]), headers=CT)
    assert first.status_code == last.status_code == 200
    assert first.json() == last.json()
    body = first.json()
    assert body["fields"] == {
        "model": ["whisper-1"],
        "timestamp_granularities[]": ["word", "segment"],
    }
    assert body["file"]["sha256"] == hashlib.sha256(AUDIO).hexdigest()
    assert body["file"]["size"] == len(AUDIO)
    assert body["file"]["filename"] == "a.wav"
    assert body["file"]["content_type"] == "audio/x-wav"
    assert body["file"]["in_tmp_dir"] is True


def test_file_part_without_content_type_or_filename(client: httpx.Client) -> None:
    body = multipart([('name="file"', b"RIFF1234", {}), ('name="model"', b"", {})])
    response = client.post("/upload", content=body, headers=CT)
    assert response.status_code == 200
    info = response.json()
    assert info["file"]["filename"] is None and info["file"]["content_type"] is None
    assert info["file"]["size"] == 8
    assert info["fields"] == {"model": [""]}


def test_sdk_style_upload_via_httpx_files(client: httpx.Client) -> None:
    response = client.post(
        "/upload",
        data={"model": "gpt-4o-transcribe", "stream": "true"},
        files={"file": ("upload", AUDIO, "application/octet-stream")},
    )
    assert response.status_code == 200
    assert response.json()["file"]["sha256"] == hashlib.sha256(AUDIO).hexdigest()
    assert response.json()["fields"] == {"model": ["gpt-4o-transcribe"], "stream": ["true"]}


def test_chunked_body_without_content_length(client: httpx.Client) -> None:
    body = multipart([('name="file"; filename="x.ogg"', AUDIO, {}), ('name="model"', b"m", {})])

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 7001):
            yield body[i : i + 7001]

    response = client.post("/upload", content=chunks(), headers=CT)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 200
    assert response.json()["file"]["sha256"] == hashlib.sha256(AUDIO).hexdigest()


def test_large_file_spans_many_writes(client: httpx.Client) -> None:
    data = os.urandom(LIMIT - 4096)
    response = client.post("/upload", files={"file": ("big.bin", data)})
    assert response.status_code == 200
    assert response.json()["file"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_declared_length_over_the_limit_is_413(client: httpx.Client) -> None:
    response = client.post("/upload", files={"file": ("big.bin", os.urandom(LIMIT + 10))})
    assert response.status_code == 413
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "size limit" in error["message"]


def test_chunked_body_over_the_limit_is_cut_off_while_receiving(client: httpx.Client) -> None:
    head = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        yield head
        block = b"\0" * 65536
        while sent < 4 * LIMIT:  # far more than the limit; the server must not wait for it all
            sent += len(block)
            yield block

    response = client.post("/upload", content=endless(), headers=CT)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("headers", "body", "needle"),
    [
        ({"Content-Type": "application/json"}, b"{}", "multipart/form-data"),
        ({"Content-Type": "multipart/form-data"}, b"--x--", "boundary"),
        (CT, b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nabc', "ends before"),
        (CT, b"garbage that is not multipart at all", "Malformed"),
    ],
)
def test_malformed_bodies_are_400(
    client: httpx.Client, headers: dict[str, str], body: bytes, needle: str
) -> None:
    response = client.post("/upload", content=body, headers=headers)
    assert response.status_code == 400
    assert needle in response.json()["error"]["message"]


def test_truncated_upload_removes_the_partial_temp_file(client: httpx.Client) -> None:
    body = multipart([('name="file"; filename="a.wav"', AUDIO, {})])
    response = client.post("/upload", content=body[: len(body) // 2], headers=CT)
    assert response.status_code == 400  # the fixture then checks that no temp file is left


def test_too_many_parts_is_400(client: httpx.Client) -> None:
    parts: list[Part] = [('name="f"', b"x", {}) for _ in range(MAX_PARTS + 1)]
    response = client.post("/upload", content=multipart(parts), headers=CT)
    assert response.status_code == 400
    assert "Too many" in response.json()["error"]["message"]


def test_long_fields_are_cut_not_buffered(client: httpx.Client) -> None:
    body = multipart([('name="prompt"', b"a" * (FIELD_LIMIT_BYTES * 4), {})])
    response = client.post("/upload", content=body, headers=CT)
    assert response.status_code == 200
    assert response.json()["fields"]["prompt"] == ["a" * FIELD_LIMIT_BYTES]
    assert response.json()["file"] is None


def test_speaker_reference_data_urls_are_kept_whole(client: httpx.Client) -> None:
    """A 10 s WAV clip as a data URL is ~430 kB: far past the ordinary field limit."""
    clip = bytes(range(256)) * 800  # 200 kB (six of them stay under the test's 2 MiB)
    url = "data:audio/wav;base64," + base64.b64encode(clip).decode("ascii")
    assert len(url) > FIELD_LIMIT_BYTES * 4
    parts: list[Part] = [('name="known_speaker_names[]"', b"Ann", {})]
    parts += [('name="known_speaker_references[]"', url.encode(), {})] * (MAX_KNOWN_SPEAKERS + 2)
    response = client.post("/upload", content=multipart(parts), headers=CT)
    assert response.status_code == 200
    kept = response.json()["fields"]["known_speaker_references[]"]
    # The first four whole; any beyond (a 400 for their number) only up to the usual limit.
    assert [len(v) for v in kept] == [len(url)] * MAX_KNOWN_SPEAKERS + [FIELD_LIMIT_BYTES] * 2
    assert parse_known_speakers(["Ann"], kept[:1])[0].audio == clip


def test_client_vanishing_mid_upload_leaves_no_temp_file(base_url: str, tmp_dir: Path) -> None:
    port = int(base_url.rsplit(":", 1)[1])
    head = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=XyZ\r\n"
            b"Content-Length: 2000000\r\n\r\n" + head + b"\0" * 1_500_000
        )
        wait_until(lambda: list(tmp_dir.iterdir()), "the server to write the temp file")
    wait_empty(tmp_dir)


def test_stalled_upload_is_408_and_leaves_no_temp_file(base_url: str, tmp_dir: Path) -> None:
    """A client that stops sending mid-body is answered and dropped, not waited for forever."""
    port = int(base_url.rsplit(":", 1)[1])
    head = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /upload-impatient HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=XyZ\r\n"
            b"Content-Length: 2000000\r\n\r\n" + head + b"\0" * (FLUSH_BYTES + 1000)
        )
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    status_line, _, rest = reply.partition(b"\r\n")
    assert b" 408 " in status_line
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == "upload_timeout"
    wait_empty(tmp_dir)


def test_non_ascii_filename_and_field_name_are_accepted(client: httpx.Client) -> None:
    # httpx (so the openai SDK) sends a Cyrillic filename as raw UTF-8 bytes in the part
    # header: the usual case for Russian users' recordings, and it must not be a 5xx.
    response = client.post(
        "/upload",
        data={"модель": "whisper-1"},
        files={"file": ("запись 1.wav", AUDIO, "audio/wav")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["file"]["filename"] == "запись 1.wav"
    assert body["file"]["sha256"] == hashlib.sha256(AUDIO).hexdigest()
    assert body["fields"] == {"модель": ["whisper-1"]}


def test_overlong_boundary_is_400(client: httpx.Client) -> None:
    boundary = "b" * 300  # python-multipart refuses boundaries over 256 bytes
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    body = multipart([('name="model"', b"whisper-1", {})], boundary=boundary)
    response = client.post("/upload", content=body, headers=headers)
    assert response.status_code == 400
    assert "boundary" in response.json()["error"]["message"]
