"""Durable jobs that label speakers: submitted, run, stopped and resumed, renamed.

Real server, real job store, Resemblyzer's trained GE2E weights and a conversation of real
voices (see ``tests/test_api_speakers.py``). A job labels its speakers when its audio is done
and keeps its committed segments' ids; stopped mid-way, it resumes from the diarization it
committed and ends with the same speakers as an uninterrupted run of the same file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gigaam_api.server import create_app
from tests.api_server import real_model_settings, serve
from tests.jobs_helpers import TIMEOUT, read_events, submit, submit_ok, wait_job
from tests.speakers_conversations import Conversation, build_conversations
from tests.speakers_data import resemblyzer_wheel, write_wav

SAMPLE_RATE = 16000


@pytest.fixture(scope="module")
def conversation() -> Conversation:
    return next(c for c in build_conversations() if len(c.speakers) == 3)


@pytest.fixture(scope="module")
def audio_path(conversation: Conversation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wav(tmp_path_factory.mktemp("conv") / "meeting.wav", conversation.audio)


def app_for(golden_dir: Path, tmp: Path, jobs_dir: Path) -> FastAPI:
    settings = real_model_settings(
        golden_dir, tmp / "models", diarization_model=str(resemblyzer_wheel()), jobs_dir=jobs_dir
    )
    return create_app(settings, keepalive_seconds=0.5, tmp_dir=tmp / "uploads")


@pytest.fixture(scope="module")
def http(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("server")
    app = app_for(golden_dir, tmp, tmp / "jobs")
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        yield client


def test_a_labelled_job_answers_every_format_with_its_speakers(
    http: httpx.Client, audio_path: Path
) -> None:
    job = submit_ok(http, audio_path, diarize="true", num_speakers="3")
    assert job["speakers"] == []  # asked for, not known yet
    done = wait_job(http, job["id"])
    assert done["status"] == "completed", done
    assert [s["label"] for s in done["speakers"]] == ["A", "B", "C"]
    diarized = http.get(f"/v1/jobs/{job['id']}/result", params={"response_format": "diarized_json"})
    assert {s["speaker"] for s in diarized.json()["segments"]} == {"A", "B", "C"}
    srt = http.get(f"/v1/jobs/{job['id']}/result", params={"response_format": "srt"}).text
    assert "A: " in srt and "C: " in srt
    # the same file through the synchronous endpoint: the same labelled segments
    with audio_path.open("rb") as f:
        sync = http.post(
            "/v1/audio/transcriptions",
            files={"file": f},
            data={"diarize": "true", "num_speakers": "3", "response_format": "diarized_json"},
        ).json()
    assert sync["segments"] == diarized.json()["segments"]


def test_speakers_can_be_renamed_and_every_format_follows(
    http: httpx.Client, audio_path: Path
) -> None:
    job = wait_job(http, submit_ok(http, audio_path, diarize="true")["id"])
    labels = [s["label"] for s in job["speakers"]]
    assert len(labels) == 3
    renamed = http.patch(f"/v1/jobs/{job['id']}", json={"speakers": {"A": "Анна", "B": "Борис"}})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["speakers"][:2] == [
        {"label": "A", "name": "Анна"},
        {"label": "B", "name": "Борис"},
    ]
    body = http.get(f"/v1/jobs/{job['id']}/result", params={"response_format": "diarized_json"})
    speakers = {s["speaker"] for s in body.json()["segments"]}
    assert speakers == {"Анна", "Борис", "C"}
    vtt = http.get(f"/v1/jobs/{job['id']}/result", params={"response_format": "vtt"}).text
    assert "<v Анна>" in vtt
    events = [e for e in read_events(http, job["id"]) if e["event"] == "job.segment"]
    assert events and {e["data"]["speaker"] for e in events} == {"Анна", "Борис", "C"}
    # an empty name gives the label back
    http.patch(f"/v1/jobs/{job['id']}", json={"speakers": {"B": ""}})
    again = http.get(f"/v1/jobs/{job['id']}").json()
    assert again["speakers"][1] == {"label": "B", "name": "B"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"speakers": {"Z": "Зоя"}}, "speakers.Z"),
        ({"speakers": {"A": 5}}, "speakers.A"),
        ({"speakers": {"A": "x" * 65}}, "speakers.A"),
        ({"speakers": {"A": "a\u0000b"}}, "speakers.A"),
        ({"speakers": []}, "speakers"),
        ({"names": {"A": "Анна"}}, "speakers"),
        ([1, 2], "speakers"),
    ],
)
def test_a_bad_rename_is_a_400_naming_the_field(
    http: httpx.Client, audio_path: Path, body: Any, param: str
) -> None:
    job = wait_job(http, submit_ok(http, audio_path, diarize="true", num_speakers="2")["id"])
    response = http.patch(f"/v1/jobs/{job['id']}", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_renaming_a_job_without_labels_or_unknown_is_refused(
    http: httpx.Client, audio_path: Path
) -> None:
    plain = wait_job(http, submit_ok(http, audio_path)["id"])
    assert plain["speakers"] is None
    response = http.patch(f"/v1/jobs/{plain['id']}", json={"speakers": {"A": "Анна"}})
    assert response.status_code == 400 and response.json()["error"]["param"] == "speakers"
    assert http.patch("/v1/jobs/job_0123456789abcdef01234567", json={}).status_code == 404
    bad = http.patch(
        f"/v1/jobs/{plain['id']}",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 400


def test_a_job_with_a_bad_speaker_option_is_refused_at_submit(
    http: httpx.Client, audio_path: Path
) -> None:
    response = submit(http, audio_path, diarize="true", min_speakers="4", max_speakers="2")
    assert response.status_code == 400 and response.json()["error"]["param"] == "min_speakers"


def test_a_stopped_job_resumes_with_the_same_speakers(
    golden_dir: Path, audio_path: Path, tmp_path: Path
) -> None:
    """Stopped (gracefully) after its first commit, resumed by the next start from the
    committed diarization: the same speakers over the same time as an uninterrupted run."""
    jobs_dir = tmp_path / "jobs"
    app = app_for(golden_dir, tmp_path, jobs_dir)
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        assert app.state.ctx.service.wait_loaded(TIMEOUT)
        runner = app.state.jobs.service.runner
        commit = runner.store.commit_chunk
        committed = threading.Event()

        def commit_then_hold(job: Any, end: float, segments: Any, *state: Any) -> bool:
            written: bool = commit(job, end, segments, *state)
            if not committed.is_set():
                assert state and state[0], "the diarization is committed with the chunk"
                committed.set()
                runner._stopping.wait(TIMEOUT)  # until the server stops
            return written

        runner.store.commit_chunk = commit_then_hold
        job = submit_ok(client, audio_path, diarize="true")
        assert committed.wait(TIMEOUT)
    app = app_for(golden_dir, tmp_path, jobs_dir)
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        resumed = wait_job(client, job["id"])
        reference = wait_job(client, submit_ok(client, audio_path, diarize="true")["id"])
        assert resumed["status"] == reference["status"] == "completed"
        assert resumed["speakers"] == reference["speakers"]

        def spoken(job_id: str) -> dict[str, float]:
            body = client.get(
                f"/v1/jobs/{job_id}/result", params={"response_format": "diarized_json"}
            ).json()
            totals: dict[str, float] = {}
            for s in body["segments"]:
                totals[s["speaker"]] = totals.get(s["speaker"], 0.0) + s["end"] - s["start"]
            return totals

        again, whole = spoken(job["id"]), spoken(reference["id"])
        assert again.keys() == whole.keys()
        for who, seconds in whole.items():
            assert again[who] == pytest.approx(seconds, rel=0.15)
