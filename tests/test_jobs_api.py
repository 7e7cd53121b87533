"""Durable jobs end to end: the real server on loopback with the fixture checkpoint.

Covers the whole ``/v1/jobs`` surface: submission (202, the job object, 400 for audio the probe
already rejects, 401), results identical to the synchronous endpoint in every format, 404/409,
listing, deletion (files gone), SSE events (order, late join, ``Last-Event-ID``), a truncated
file failing cleanly while the next job runs, retention, and a 3 s synchronous request served
ahead of a long job (asserted on the scheduler's serving order). Capacity limits (503, 507) and
restarts live in ``tests/test_jobs_durability.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gigaam_api import audio
from gigaam_api.jobs.runner import apply_retention, job_error
from gigaam_api.jobs.service import JobService
from gigaam_api.server import create_app
from gigaam_api.service.errors import failure_of
from tests.api_server import real_model_settings, serve, tiled_wav
from tests.conftest import CORPUS_DIR
from tests.helpers import records_of
from tests.jobs_helpers import TIMEOUT, read_events, submit, submit_ok, wait_for, wait_job
from tests.media import decode, encode

KEY = "jobs-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}
SPEECH = CORPUS_DIR / "pisets" / "test_sound_ru.wav"
LONG_SOURCE = CORPUS_DIR / "longform" / "longform_espeak_ru.wav"
FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
#: MAX_AUDIO_SECONDS of this module's server.
MAX_SECONDS = 3600.0


def jobs_of(app: FastAPI) -> JobService:
    service = app.state.jobs.service
    assert service is not None, app.state.jobs.error
    return service  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def app(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = real_model_settings(
        golden_dir,
        tmp_path_factory.mktemp("models"),
        api_key=KEY,
        max_audio_seconds=MAX_SECONDS,
        jobs_dir=tmp_path_factory.mktemp("jobs"),
    )
    return create_app(settings, keepalive_seconds=0.5, tmp_dir=tmp_path_factory.mktemp("uploads"))


@pytest.fixture(scope="module")
def url(app: FastAPI) -> Iterator[str]:
    with serve(app) as base:
        assert app.state.ctx.service.wait_loaded(TIMEOUT), app.state.ctx.service.error
        app.state.ctx.service.scheduler.record_served()  # the serving order tests read
        yield base


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, headers=AUTH, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three minutes of speech through a decoder worker (stereo WAV)."""
    return tiled_wav(LONG_SOURCE, tmp_path_factory.mktemp("long") / "long.wav", 180.0)


def sync(http: httpx.Client, path: Path, **data: Any) -> httpx.Response:
    with path.open("rb") as fh:
        return http.post("/v1/audio/transcriptions", files={"file": (path.name, fh)}, data=data)


# -- submission and the job object ------------------------------------------------------------


def test_submit_answers_202_with_the_job_object(http: httpx.Client) -> None:
    response = submit(http, SPEECH, model="whisper-1", response_format="srt")
    assert response.status_code == 202
    assert response.headers["x-request-id"]
    job = response.json()
    assert job["id"].startswith("job_")
    assert job["object"] == "transcription.job"
    assert job["status"] == "queued"
    assert isinstance(job["created_at"], int) and abs(job["created_at"] - time.time()) < 60
    assert job["filename"] == SPEECH.name
    assert job["duration"] == pytest.approx(3.234, abs=0.01)
    assert job["processed_seconds"] == 0.0 and job["progress"] == 0.0
    assert job["started_at"] is None and job["completed_at"] is None and job["error"] is None
    done = wait_job(http, job["id"])
    assert done["status"] == "completed" and done["progress"] == 1.0
    assert done["started_at"] >= job["created_at"] and done["completed_at"] >= done["started_at"]
    assert done["processed_seconds"] == pytest.approx(done["duration"], abs=1e-3)


def test_routes_also_answer_without_v1(http: httpx.Client) -> None:
    job = submit(http, SPEECH, prefix="").json()
    assert http.get(f"/jobs/{job['id']}").json()["id"] == job["id"]
    wait_job(http, job["id"])
    assert http.get(f"/jobs/{job['id']}/result", params={"response_format": "text"}).text.strip()
    assert http.get("/jobs").json()["object"] == "list"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "empty_audio"),
        (b"this is not audio at all" * 40, None),
    ],
)
def test_bad_audio_is_400_at_submission(
    http: httpx.Client, payload: bytes, code: str | None
) -> None:
    response = http.post("/v1/jobs", files={"file": ("x.wav", payload)})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "file"
    if code is not None:
        assert error["code"] == code


def test_too_long_and_unknown_model_and_missing_file_are_400(
    http: httpx.Client, tmp_path: Path
) -> None:
    too_long = tiled_wav(SPEECH, tmp_path / "long.wav", MAX_SECONDS + 1)
    error = submit(http, too_long).json()["error"]
    assert error["code"] == "audio_too_long"
    response = submit(http, SPEECH, model="no-such-model")
    assert response.status_code == 400 and response.json()["error"]["code"] == "model_not_found"
    response = http.post("/v1/jobs", data={"model": "whisper-1"}, files={"x": ("a", b"1")})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_required_parameter"


def test_every_job_route_needs_the_key(url: str) -> None:
    with httpx.Client(base_url=url, timeout=TIMEOUT) as anonymous:
        for method, path in [
            ("POST", "/v1/jobs"),
            ("GET", "/v1/jobs"),
            ("GET", "/v1/jobs/job_0"),
            ("GET", "/v1/jobs/job_0/result"),
            ("GET", "/v1/jobs/job_0/events"),
            ("DELETE", "/v1/jobs/job_0"),
        ]:
            response = anonymous.request(method, path)
            assert response.status_code == 401, (method, path)
            assert response.json()["error"]["code"] == "invalid_api_key"


def test_unknown_job_is_404_everywhere(http: httpx.Client) -> None:
    for method, path in [
        ("GET", "/v1/jobs/job_000000000000000000000000"),
        ("GET", "/v1/jobs/job_000000000000000000000000/result"),
        ("GET", "/v1/jobs/job_000000000000000000000000/events"),
        ("DELETE", "/v1/jobs/job_000000000000000000000000"),
        ("GET", "/v1/jobs/../etc/passwd"),
    ]:
        response = http.request(method, path)
        assert response.status_code == 404, (method, path)
        if "job_0" in path:
            assert response.json()["error"]["code"] == "job_not_found"


# -- results -------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["short", "long"])
def test_result_equals_the_synchronous_answer_in_every_format(
    http: httpx.Client, long_wav: Path, which: str
) -> None:
    path = SPEECH if which == "short" else long_wav
    job = submit_ok(http, path)
    assert wait_job(http, job["id"])["status"] == "completed"
    for fmt in FORMATS:
        expected = sync(http, path, response_format=fmt)
        got = http.get(f"/v1/jobs/{job['id']}/result", params={"response_format": fmt})
        assert got.status_code == 200
        assert got.headers["content-type"] == expected.headers["content-type"]
        assert got.text == expected.text, fmt
    expected = sync(
        http, path, response_format="verbose_json", **{"timestamp_granularities[]": "word"}
    )
    got = http.get(
        f"/v1/jobs/{job['id']}/result",
        params={"response_format": "verbose_json", "timestamp_granularities[]": "word"},
    )
    assert got.text == expected.text and got.json()["words"]


def test_result_of_an_unfinished_job_is_409_unless_partial(
    app: FastAPI, http: httpx.Client, long_wav: Path
) -> None:
    job = submit_ok(http, long_wav)
    response = http.get(f"/v1/jobs/{job['id']}/result")
    if response.status_code == 409:  # normally: the job is still queued or running
        assert response.json()["error"]["code"] == "job_not_completed"
        partial = http.get(f"/v1/jobs/{job['id']}/result", params={"partial": "true"})
        assert partial.status_code == 200 and "text" in partial.json()
    wait_job(http, job["id"])
    assert http.get(f"/v1/jobs/{job['id']}/result").status_code == 200
    bad = http.get(f"/v1/jobs/{job['id']}/result", params={"response_format": "docx"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "response_format"


# -- listing and deleting ------------------------------------------------------------------


def test_list_is_newest_first_and_pages_with_after(http: httpx.Client) -> None:
    ids = [submit_ok(http, SPEECH)["id"] for _ in range(3)]
    first = http.get("/v1/jobs", params={"limit": 2}).json()
    assert first["object"] == "list" and first["has_more"] is True
    assert [j["id"] for j in first["data"]] == ids[::-1][:2]
    second = http.get("/v1/jobs", params={"limit": 2, "after": first["data"][-1]["id"]}).json()
    assert second["data"][0]["id"] == ids[0]
    assert http.get("/v1/jobs", params={"limit": 0}).status_code == 400
    for job_id in ids:
        wait_job(http, job_id)


def test_delete_cancels_a_running_job_and_removes_its_files(
    app: FastAPI, http: httpx.Client, long_wav: Path
) -> None:
    service = jobs_of(app)
    job = submit_ok(http, long_wav)
    folder = service.files.folder(job["id"])
    assert (folder / "audio").is_file()
    wait_job(http, job["id"], until=("running", "completed"))
    response = http.delete(f"/v1/jobs/{job['id']}")
    assert response.status_code == 200
    assert response.json() == {
        "id": job["id"],
        "object": "transcription.job.deleted",
        "deleted": True,
    }
    assert not folder.exists()
    after = http.get(f"/v1/jobs/{job['id']}").json()
    assert after["status"] in ("cancelled", "completed")
    wait_for(lambda: job["id"] not in service.runner.running_ids, what="the runner to let go")
    assert service.store.segments(job["id"]) == [] or after["status"] == "completed"
    # deleting again removes the record itself
    assert http.delete(f"/v1/jobs/{job['id']}").status_code == 200
    assert http.get(f"/v1/jobs/{job['id']}").status_code == 404


def test_retention_removes_finished_jobs_and_their_files(app: FastAPI, http: httpx.Client) -> None:
    service = jobs_of(app)
    job = submit_ok(http, SPEECH)
    wait_job(http, job["id"])
    folder = service.files.folder(job["id"])
    assert folder.is_dir()
    hours = service.settings.job_retention_hours
    assert apply_retention(service.store, service.files, hours, now=time.time() + 60) == 0
    removed = apply_retention(
        service.store, service.files, hours, now=time.time() + hours * 3600 + 1
    )
    assert removed >= 1
    assert not folder.exists()
    assert http.get(f"/v1/jobs/{job['id']}").status_code == 404


# -- failures ------------------------------------------------------------------------------


def test_a_truncated_file_fails_cleanly_and_the_next_job_runs(
    http: httpx.Client, long_wav: Path, tmp_path: Path
) -> None:
    flac = tmp_path / "long.flac"
    encode(flac, decode(long_wav))  # FLAC by PyAV (no ffmpeg program needed)
    data = flac.read_bytes()
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(data[: len(data) * 6 // 10])
    broken = submit_ok(http, truncated)
    assert broken["duration"] == pytest.approx(180.0, abs=1.0)  # the header's claim
    following = submit_ok(http, SPEECH)
    failed = wait_job(http, broken["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "truncated_audio"
    assert failed["error"]["type"] == "invalid_request_error"
    assert "truncated" in failed["error"]["message"]
    assert http.get(f"/v1/jobs/{broken['id']}/result").status_code == 409
    assert wait_job(http, following["id"])["status"] == "completed"


@pytest.mark.parametrize(
    "error",
    [
        audio.EmptyAudio("the file holds no audio"),
        audio.FfmpegMissing("the decoder cannot start"),
        audio.DecoderCrashed("the decoder was killed", user_error=False),
        RuntimeError("a bug"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_failed_job_says_what_the_synchronous_endpoint_says(error: Exception) -> None:
    """A job's ``error`` is the core's reading of the failure (``failure_of``), in the OpenAI
    fields: the client's audio keeps its message and code, the server's keeps its own, and a
    bug names the job (whose id the client holds) without leaking the exception."""
    failed = job_error(failure_of(error, "job_0123", what="job"))
    if isinstance(error, audio.AudioError):
        assert (failed.message, failed.code) == (error.message, error.code)
        assert failed.type == ("invalid_request_error" if error.user_error else "server_error")
    else:
        assert failed.message == "Internal error while transcribing (job id job_0123)"
        assert (failed.type, failed.code) == ("server_error", None)


# -- events --------------------------------------------------------------------------------


def test_events_stream_segments_progress_and_one_terminal_event(
    http: httpx.Client, long_wav: Path
) -> None:
    job = submit_ok(http, long_wav)
    events = [e for e in read_events(http, job["id"]) if e["event"] != "keep-alive"]
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "job.completed"
    assert sum(k.startswith(("job.completed", "job.failed", "job.cancelled")) for k in kinds) == 1
    assert set(kinds) <= {"job.progress", "job.segment", "job.completed"}
    segments = [e["data"] for e in events if e["event"] == "job.segment"]
    assert segments and [s["id"] for s in segments] == list(range(len(segments)))
    assert all(e["data"]["type"] == e["event"] for e in events)
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts)
    assert all(s["words"] for s in segments if s["text"].strip())
    progress = [e["data"]["processed_seconds"] for e in events if e["event"] == "job.progress"]
    assert progress == sorted(progress) and len(progress) >= 2
    result = http.get(
        f"/v1/jobs/{job['id']}/result", params={"response_format": "verbose_json"}
    ).json()
    assert " ".join(s["text"].strip() for s in segments if s["text"].strip()) == result["text"]
    # a late joiner gets everything so far first; Last-Event-ID resumes after that event
    late = [e for e in read_events(http, job["id"]) if e["event"] == "job.segment"]
    assert [e["data"] for e in late] == segments
    cut = len(segments) // 2
    resumed = read_events(http, job["id"], last_event_id=str(cut))
    resumed_segments = [e["data"] for e in resumed if e["event"] == "job.segment"]
    assert resumed_segments == segments[cut:]
    assert [e["event"] for e in resumed][-1] == "job.completed"


# -- scheduling ----------------------------------------------------------------------------


def test_a_short_request_goes_ahead_of_a_long_job(
    app: FastAPI, http: httpx.Client, tmp_path: Path
) -> None:
    scheduler = app.state.ctx.service.scheduler
    # The longest file allowed: the fixture model needs several seconds for an hour even on a
    # fast idle machine, so the job is still running around the clip (deleted once it is served).
    job = submit_ok(http, tiled_wav(LONG_SOURCE, tmp_path / "long.wav", MAX_SECONDS))
    wait_for(
        lambda: sum(1 for b in records_of(scheduler) if b.request_id == job["id"]) >= 2,
        what="the job to be under way",
    )
    results: list[httpx.Response] = []

    def short() -> None:
        with SPEECH.open("rb") as fh:
            results.append(
                http.post(
                    "/v1/audio/transcriptions",
                    files={"file": fh},
                    headers={"x-request-id": "short-vs-job"},
                )
            )

    thread = threading.Thread(target=short)
    thread.start()
    thread.join(TIMEOUT)
    assert results and results[0].status_code == 200
    wait_for(
        lambda: any(
            b.request_id == job["id"]
            for b in records_of(scheduler)[
                next(
                    i for i, b in enumerate(records_of(scheduler)) if b.request_id == "short-vs-job"
                ) :
            ]
        ),
        what="the job to go on after the clip",
    )
    assert http.delete(f"/v1/jobs/{job['id']}").status_code == 200  # no need to finish it
    order = records_of(scheduler)
    at = next(i for i, b in enumerate(order) if b.request_id == "short-vs-job")
    mine = order[at]
    assert not mine.background and mine.waited <= 1
    # what ran between its submission and its turn: at most one one-wave slice of the job
    assert all(b.background and b.size == 1 for b in order[at - mine.waited : at])
    assert any(b.request_id == job["id"] for b in order[at + 1 :])  # the job went on after


def test_metrics_show_jobs(url: str, http: httpx.Client) -> None:
    job = submit_ok(http, SPEECH)
    wait_job(http, job["id"])
    text = httpx.get(f"{url}/metrics").text
    assert 'gigaam_jobs{status="completed"}' in text
    assert "gigaam_job_queue_depth " in text
    processed = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gigaam_job_processed_seconds_total ")
    ]
    assert processed and processed[0] > 0
