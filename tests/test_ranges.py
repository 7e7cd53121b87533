"""Range requests (``gigaam_api.api.ranges``): the header rules, then the real response over
HTTP — a tiny app serving one file through :func:`file_response` on a loopback uvicorn, so the
status, headers and body bytes are what a browser's ``<audio>`` element would get."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from gigaam_api.api.errors import install_error_handlers
from gigaam_api.api.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    file_response,
    media_type_for,
    parse_range,
)
from tests.api_server import serve

SIZE = 1000


# -- parse_range: the decision --------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, SIZE - 1)),
        ("bytes=-100", (SIZE - 100, SIZE - 1)),
        ("bytes=-5000", (0, SIZE - 1)),  # suffix longer than the file: the whole file
        ("bytes=900-5000", (900, SIZE - 1)),  # last-pos past the end is clamped
        ("bytes=999-999", (999, 999)),
        ("Bytes = 10 - 20", (10, 20)),
    ],
)
def test_satisfiable_ranges(header: str, expected: tuple[int, int]) -> None:
    chosen = parse_range(header, SIZE)
    assert chosen == ByteRange(expected[0], expected[1], SIZE)
    assert chosen.length == expected[1] - expected[0] + 1
    assert chosen.content_range == f"bytes {expected[0]}-{expected[1]}/{SIZE}"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "items=0-10",  # unknown unit: ignored
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=abc",
        "bytes=5-1",  # last < first: invalid, ignored
        "bytes=0-10,20-30",  # several ranges: whole file
        "bytes=0-10,",
    ],
)
def test_ignored_headers_mean_whole_file(header: str | None) -> None:
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-2000", "bytes=5000-", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(header, SIZE)
    assert caught.value.size == SIZE


def test_empty_file_satisfies_no_range() -> None:
    for header in ("bytes=0-", "bytes=-10"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, 0)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("talk.mp3", "audio/mpeg"),
        ("clip.unknownext", "application/octet-stream"),
        (None, "application/octet-stream"),
        ("film.mp4", "video/mp4"),
        # the uploader picks the name: never a document type, whatever it is called
        ("page.html", "application/octet-stream"),
        ("image.svg", "application/octet-stream"),
        ("script.js", "application/octet-stream"),
        ("data.xml", "application/octet-stream"),
    ],
)
def test_media_type_from_the_uploaded_name(filename: str | None, expected: str) -> None:
    assert media_type_for(filename) == expected


def test_media_type_of_a_wav_is_audio_whatever_the_system_table_says() -> None:
    assert media_type_for("Встреча.WAV") in ("audio/wav", "audio/x-wav", "audio/vnd.wave")


# -- file_response over real HTTP ----------------------------------------------------------


@pytest.fixture(scope="module")
def audio_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ranges") / "clip.wav"
    path.write_bytes(bytes(i % 251 for i in range(SIZE)))
    return path


@pytest.fixture(scope="module")
def url(audio_file: Path) -> Iterator[str]:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/audio")
    async def audio(request: Request) -> Response:
        return file_response(
            audio_file,
            media_type="audio/wav",
            range_header=request.headers.get("range"),
            if_range=request.headers.get("if-range"),
            filename="запись 1.wav",
        )

    with serve(app) as base:
        yield f"{base}/audio"


def test_no_range_sends_everything(url: str, audio_file: Path) -> None:
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == audio_file.read_bytes()
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(SIZE)
    assert response.headers["content-type"] == "audio/wav"
    assert "content-range" not in response.headers
    assert response.headers["content-disposition"] == (
        "inline; filename*=UTF-8''%D0%B7%D0%B0%D0%BF%D0%B8%D1%81%D1%8C%201.wav"
    )


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=10-19", 10, 19), ("bytes=990-", 990, 999), ("bytes=-7", 993, 999)],
)
def test_partial_content(url: str, audio_file: Path, header: str, start: int, end: int) -> None:
    response = httpx.get(url, headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.content == audio_file.read_bytes()[start : end + 1]


def test_range_past_the_end_is_416(url: str) -> None:
    response = httpx.get(url, headers={"Range": f"bytes={SIZE}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    error = response.json()["error"]
    assert error["code"] == "range_not_satisfiable"
    assert error["type"] == "invalid_request_error"


def test_invalid_or_multiple_ranges_send_everything(url: str, audio_file: Path) -> None:
    for header in ("bytes=20-10", "bytes=0-1,5-6", "pages=1-2"):
        response = httpx.get(url, headers={"Range": header})
        assert response.status_code == 200, header
        assert response.content == audio_file.read_bytes()


def test_if_range_with_current_validator_honours_the_range(url: str) -> None:
    etag = httpx.get(url).headers["etag"]
    partial = httpx.get(url, headers={"Range": "bytes=0-0", "If-Range": etag})
    assert partial.status_code == 206
    stale = httpx.get(url, headers={"Range": "bytes=0-0", "If-Range": '"stale"'})
    assert stale.status_code == 200
    assert len(stale.content) == SIZE


def test_if_range_with_the_last_modified_date_honours_the_range(url: str) -> None:
    last_modified = httpx.get(url).headers["last-modified"]
    partial = httpx.get(url, headers={"Range": "bytes=5-9", "If-Range": last_modified})
    assert partial.status_code == 206
    assert partial.headers["content-range"] == f"bytes 5-9/{SIZE}"


def test_stale_if_range_sends_everything_even_for_an_unsatisfiable_range(
    url: str, audio_file: Path
) -> None:
    # the Range is dropped before it is looked at (RFC 9110 §13.1.5): no 416 for a new file
    response = httpx.get(url, headers={"Range": f"bytes={SIZE}-", "If-Range": '"stale"'})
    assert response.status_code == 200
    assert response.content == audio_file.read_bytes()
