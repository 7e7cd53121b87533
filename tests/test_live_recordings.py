"""A live session's recording kept as a job (``gigaam_api/jobs/recordings.py``), end to end on
the real server with the fixture checkpoint: the job service saves the audio and the finals,
and the public job API then lists it, answers its text (equal to the finals), streams its
audio and renders every format, like any uploaded file's job.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gigaam_api.jobs.recordings import RecordedTurn, recording_segments
from gigaam_api.jobs.service import JobService
from gigaam_api.server import create_app
from gigaam_api.transcript import Word
from tests.api_server import real_model_settings, serve
from tests.conftest import CORPUS_DIR
from tests.jobs_helpers import TIMEOUT

SPEECH = CORPUS_DIR / "pisets" / "test_sound_ru.wav"
FORMATS = ("json", "text", "verbose_json", "srt", "vtt")


def _pcm16k(path: Path) -> bytes:
    with wave.open(str(path), "rb") as source:
        assert (source.getframerate(), source.getnchannels()) == (16000, 1)
        return source.readframes(source.getnframes())


@pytest.fixture(scope="module")
def app(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = real_model_settings(
        golden_dir, tmp_path_factory.mktemp("models"), jobs_dir=tmp_path_factory.mktemp("jobs")
    )
    return create_app(settings, tmp_dir=tmp_path_factory.mktemp("uploads"))


@pytest.fixture(scope="module")
def http(app: FastAPI) -> Iterator[httpx.Client]:
    with serve(app) as base, httpx.Client(base_url=base, timeout=TIMEOUT) as client:
        assert app.state.ctx.service.wait_loaded(TIMEOUT), app.state.ctx.service.error
        yield client


def _jobs(app: FastAPI) -> JobService:
    service: JobService | None = app.state.jobs.service
    assert service is not None, app.state.jobs.error
    return service


def test_a_saved_recording_is_a_completed_job_like_an_upload(
    app: FastAPI, http: httpx.Client
) -> None:
    pcm = _pcm16k(SPEECH)
    duration = len(pcm) / 32000
    turns = [
        RecordedTurn(0.1, 1.2, "первая фраза", (Word("первая", 0.1, 0.5), Word("фраза", 0.6, 1.2))),
        RecordedTurn(1.3, 1.4, "   "),  # noise the VAD took for speech: no segment, no text
        RecordedTurn(1.5, duration + 5.0, " вторая фраза "),
    ]
    job = _jobs(app).save_recording(pcm, turns)

    listed = http.get("/v1/jobs").json()["data"]
    assert listed[0]["id"] == job.id
    body = http.get(f"/v1/jobs/{job.id}").json()
    assert body["status"] == "completed" and body["progress"] == 1.0
    assert body["duration"] == pytest.approx(duration, abs=1e-3)
    assert body["filename"].endswith(".wav")

    # the job's text is the live finals, trimmed and joined, blank ones left out
    result = http.get(f"/v1/jobs/{job.id}/result", params={"response_format": "json"})
    assert result.json()["text"] == "первая фраза вторая фраза"
    verbose = http.get(
        f"/v1/jobs/{job.id}/result",
        params={
            "response_format": "verbose_json",
            "timestamp_granularities[]": ["word", "segment"],
        },
    ).json()
    assert [(s["start"], s["text"].strip()) for s in verbose["segments"]] == [
        (0.1, "первая фраза"),
        (1.5, "вторая фраза"),
    ]
    assert verbose["segments"][1]["end"] == pytest.approx(duration, abs=1e-3)  # clipped
    assert [w["word"] for w in verbose["words"]] == ["первая", "фраза"]
    for fmt in FORMATS:
        got = http.get(f"/v1/jobs/{job.id}/result", params={"response_format": fmt})
        assert got.status_code == 200, (fmt, got.text)
        assert "вторая фраза" in got.text

    # the audio plays: a WAV of exactly the session's samples, and it seeks
    audio = http.get(f"/v1/jobs/{job.id}/audio")
    assert audio.status_code == 200 and audio.headers["content-type"].startswith("audio/")
    with wave.open(io.BytesIO(audio.content), "rb") as saved:
        assert (saved.getframerate(), saved.getnchannels()) == (16000, 1)
        assert saved.readframes(saved.getnframes()) == pcm
    part = http.get(f"/v1/jobs/{job.id}/audio", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100

    # and it goes like any job
    assert http.delete(f"/v1/jobs/{job.id}").json()["deleted"] is True
    assert http.get(f"/v1/jobs/{job.id}/audio").status_code == 404


def test_an_empty_recording_is_kept_with_no_text(app: FastAPI, http: httpx.Client) -> None:
    job = _jobs(app).save_recording(b"", [], filename="nothing.wav")
    body = http.get(f"/v1/jobs/{job.id}").json()
    assert (body["status"], body["duration"], body["filename"]) == ("completed", 0.0, "nothing.wav")
    assert http.get(f"/v1/jobs/{job.id}/result").json()["text"] == ""


def test_segments_are_the_turns_in_order_with_times_inside_the_audio() -> None:
    turns = [RecordedTurn(-1.0, 2.0, "a"), RecordedTurn(3.0, 2.5, "b"), RecordedTurn(9, 12, "c")]
    segments = recording_segments(turns, duration=10.0)
    assert [(s.id, s.start, s.end, s.text) for s in segments] == [
        (0, 0.0, 2.0, "a"),
        (1, 3.0, 3.0, "b"),
        (2, 9.0, 10.0, "c"),
    ]
