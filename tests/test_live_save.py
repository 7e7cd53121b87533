"""The live door's extensions on the real server: ``session.finish`` and ``?save=true``
(``gigaam_api/api/realtime/recording.py``), and ``gigaam-api listen --file`` against
it.

A plain WebSocket client streams real speech (several turns, the last one still open when the
audio ends); the saved job must then be an ordinary job in every way the page and clients use:
listed, its text equal to the live finals, its audio a WAV of what was sent, every format.
"""

from __future__ import annotations

import io
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gigaam_api.listen_cli import Printer
from gigaam_api.server import create_app
from tests.api_server import real_model_settings, serve
from tests.conftest import CORPUS_DIR
from tests.jobs_helpers import wait_for
from tests.realtime_client import LiveClient, live, pcm_at, silence

KEY = "live-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}
RATE = 24000
FIRST = CORPUS_DIR / "pisets" / "test_sound_ru.wav"
SECOND = CORPUS_DIR / "golos" / "golos_001ce26c.wav"
SESSION = {
    "type": "session.update",
    "session": {
        "type": "transcription",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": RATE}}},
    },
}
COMPLETED = "conversation.item.input_audio_transcription.completed"
FORMATS = ("json", "text", "verbose_json", "srt", "vtt")


@pytest.fixture(scope="module")
def app(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = real_model_settings(
        golden_dir,
        tmp_path_factory.mktemp("models"),
        api_key=KEY,
        jobs_dir=tmp_path_factory.mktemp("jobs"),
    )
    return create_app(settings, tmp_dir=tmp_path_factory.mktemp("uploads"))


@pytest.fixture(scope="module")
def url(app: FastAPI) -> Iterator[str]:
    with serve(app) as base:
        assert app.state.ctx.service.wait_loaded(60), app.state.ctx.service.error
        yield base


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Two utterances with a pause between, ending in the middle of nowhere (no silence): the
    last turn is still open when the client finishes."""
    tmp = tmp_path_factory.mktemp("pcm")
    return (
        silence(0.5, RATE)
        + pcm_at(FIRST, RATE, tmp)
        + silence(1.5, RATE)
        + pcm_at(SECOND, RATE, tmp)
    )


def _finish(client: LiveClient) -> tuple[list[str], dict[str, Any]]:
    """Finish the session; the finals received and the ``session.finished`` event."""
    client.send({"type": "session.finish"})
    events = client.until_type("session.finished", timeout=120)
    finals = [e["transcript"] for e in client.received if e["type"] == COMPLETED]
    return finals, events[-1]


def test_a_saved_session_is_a_job_whose_text_is_the_live_finals(
    url: str, http: httpx.Client, speech: bytes
) -> None:
    with live(url, path="/v1/realtime?intent=transcription&save=true", headers=AUTH) as client:
        client.until_type("session.created")
        client.send(SESSION)
        client.until_type("session.updated")
        client.append(speech)
        client.until_type(COMPLETED, timeout=120)  # the first turn ended by the VAD
        finals, finished = _finish(client)
    assert finished["error"] is None and "event_id" in finished
    assert len(finals) >= 2  # the VAD's turn, then the one the finish committed
    job = finished["job"]
    assert job["object"] == "transcription.job" and job["status"] == "completed"
    assert job["duration"] == pytest.approx(len(speech) / 2 / RATE, abs=0.3)

    assert http.get("/v1/jobs").json()["data"][0]["id"] == job["id"]
    result = http.get(f"/v1/jobs/{job['id']}/result").json()
    assert result["text"] == " ".join(f.strip() for f in finals if f.strip())
    for fmt in FORMATS:
        assert http.get(f"/v1/jobs/{job['id']}/result", params={"response_format": fmt}).is_success
    # each turn's words, on the recording's clock, inside their turn (the player highlights them)
    verbose = http.get(
        f"/v1/jobs/{job['id']}/result",
        params={"response_format": "verbose_json", "timestamp_granularities[]": "word"},
    ).json()
    segments = http.get(
        f"/v1/jobs/{job['id']}/result", params={"response_format": "verbose_json"}
    ).json()["segments"]
    assert verbose["words"] and len(segments) == len([f for f in finals if f.strip()])
    starts = [w["start"] for w in verbose["words"]]
    assert starts == sorted(starts)
    assert all(
        any(s["start"] - 0.05 <= w["start"] <= w["end"] <= s["end"] + 0.05 for s in segments)
        for w in verbose["words"]
    )

    audio = http.get(f"/v1/jobs/{job['id']}/audio")
    assert audio.status_code == 200 and audio.headers["content-type"].startswith("audio/")
    with wave.open(io.BytesIO(audio.content), "rb") as saved:
        assert (saved.getframerate(), saved.getnchannels(), saved.getsampwidth()) == (16000, 1, 2)
        assert saved.getnframes() / 16000 == pytest.approx(len(speech) / 2 / RATE, abs=0.05)
    http.delete(f"/v1/jobs/{job['id']}")


def test_a_finish_right_after_the_audio_waits_for_every_turn_it_ended(
    url: str, http: httpx.Client, speech: bytes
) -> None:
    """The finish comes while the session still scores the audio before it: the turn the VAD
    ends there and the one the finish commits both have their finals in the saved job."""
    with live(url, path="/v1/realtime?intent=transcription&save=true", headers=AUTH) as client:
        client.send(SESSION)
        client.append(speech)
        finals, finished = _finish(client)
    committed = [e for e in client.received if e["type"] == "input_audio_buffer.committed"]
    assert len(finals) == len(committed) >= 2
    assert not [e for e in client.received if e["type"] in ("error", "input_audio_buffer.cleared")]
    job = finished["job"]
    result = http.get(f"/v1/jobs/{job['id']}/result").json()
    assert result["text"] == " ".join(f.strip() for f in finals if f.strip())
    http.delete(f"/v1/jobs/{job['id']}")


def test_finish_without_save_gives_the_last_final_and_no_job(
    url: str, http: httpx.Client, speech: bytes
) -> None:
    before = http.get("/v1/jobs").json()["data"]
    with live(url, headers=AUTH) as client:
        client.send(SESSION)
        client.append(speech)
        finals, finished = _finish(client)
    assert finished["job"] is None and finished["error"] is None
    assert finals and all(isinstance(f, str) for f in finals)
    assert http.get("/v1/jobs").json()["data"] == before


def test_finish_with_no_audio_answers_at_once(url: str) -> None:
    with live(url, path="/v1/realtime?intent=transcription&save=true", headers=AUTH) as client:
        finals, finished = _finish(client)
    assert finals == [] and finished["job"] is None


def test_a_session_that_just_disconnects_is_kept_too(
    url: str, http: httpx.Client, speech: bytes
) -> None:
    before = {job["id"] for job in http.get("/v1/jobs").json()["data"]}
    with live(url, path="/v1/realtime?intent=transcription&save=true", headers=AUTH) as client:
        client.send(SESSION)
        client.append(speech)
        client.until_type(COMPLETED, timeout=120)
    finals = [e["transcript"].strip() for e in client.received if e["type"] == COMPLETED]

    def saved() -> list[dict[str, Any]]:  # the server notices the close, then saves
        return [j for j in http.get("/v1/jobs").json()["data"] if j["id"] not in before]

    wait_for(saved, what="the recording of a closed session")
    job = saved()[0]
    assert job["status"] == "completed"
    assert job["duration"] == pytest.approx(len(speech) / 2 / RATE, abs=0.3)
    # the finals the client had, then any that were still on their way when it left
    text = http.get(f"/v1/jobs/{job['id']}/result").json()["text"]
    assert text.startswith(" ".join(f for f in finals if f))
    http.delete(f"/v1/jobs/{job['id']}")


def _listen(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``gigaam-api listen`` in its own process, piped (so only the finals are printed)."""
    command = [sys.executable, "-m", "gigaam_api", "listen", "--url", url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_listen_prints_the_finals_of_a_file_and_saves_it(url: str, http: httpx.Client) -> None:
    done = _listen(url, "--api-key", KEY, "--file", str(FIRST), "--fast", "--save")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, done.stderr
    job_id = done.stderr.strip().splitlines()[-1].removeprefix("saved as job ")
    result = http.get(f"/v1/jobs/{job_id}/result").json()
    assert result["text"] == " ".join(lines)
    http.delete(f"/v1/jobs/{job_id}")


def test_listen_says_when_the_key_is_wrong(url: str) -> None:
    done = _listen(url, "--api-key", "wrong", "--file", str(FIRST), "--fast")
    assert done.returncode == 1
    assert "API key" in done.stderr


def test_listen_without_the_microphone_package_says_what_to_install(url: str) -> None:
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError):
        pass
    else:
        pytest.skip("sounddevice is installed here: the message for its absence cannot show")
    done = _listen(url, "--api-key", KEY)
    assert done.returncode == 1
    assert "sounddevice" in done.stderr and "--file" in done.stderr


class _Terminal(io.StringIO):
    """What ``listen`` writes to a terminal (a text stream that says it is one)."""

    def isatty(self) -> bool:
        return True


def test_listen_rewrites_interim_text_in_place_on_a_terminal() -> None:
    screen = _Terminal()
    printer = Printer(screen)
    printer.delta("первые ")
    printer.delta("слова")
    printer.final("первые слова фразы")
    printer.final("   ")  # a turn with no words prints nothing
    printer.delta("вторая")
    printer.final("вторая фраза")
    shown = screen.getvalue()
    # interim: back to the line's start, cleared, dimmed; each final on its own line
    assert shown.count("\r\x1b[K\x1b[2m") == 3
    assert "\x1b[2mпервые слова\x1b[0m" in shown
    lines = [line.split("\r\x1b[K")[-1] for line in shown.split("\n")]
    assert lines == ["первые слова фразы", "вторая фраза", ""]

    piped = io.StringIO()  # not a terminal: finals only, no control characters
    printer = Printer(piped)
    printer.delta("первые")
    printer.final("первые слова")
    assert piped.getvalue() == "первые слова\n"
