"""``language`` end to end on a multilingual model: every door over the real server.

The server runs ``MODEL=multilingual_ctc`` on the random-weight fixture checkpoint in the
multilingual shape (``tests/fixtures/generations``: v3 layout, 70 letters of five alphabets).
Its weights are random, so without ``language`` it writes letters of every alphabet; with
``language=kk`` every letter must be Kazakh Cyrillic, with ``language=en`` Latin: a real check
of the decode-time restriction, through the OpenAI route (``httpx`` and the official SDK),
durable jobs, the Wyoming door and the CLI. A Russian model's answer to ``language=en`` (a 400
naming ``language``) is in ``tests/test_api_e2e.py``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from openai import OpenAI
from wyoming.info import Info

from gigaam_api import cli, cli_common
from gigaam_api.api.errors import ApiError
from gigaam_api.api.params import check_language
from gigaam_api.catalogue import MULTILINGUAL_LANGUAGES
from gigaam_api.config import load_settings
from gigaam_api.model import LANGUAGES, LanguageError, detect_language, transcript_language
from gigaam_api.server import create_app
from gigaam_api.service.errors import failure_of
from gigaam_api.service.languages import normalise_language
from gigaam_api.service.metrics import Metrics
from gigaam_api.service.model_service import ModelService
from tests.api_server import free_port, real_model_settings, scheduler, serve, tiled_wav
from tests.conftest import CORPUS_DIR
from tests.gated_server import Gate, gated_app, served
from tests.helpers import records_of, wait_until
from tests.jobs_helpers import submit, submit_ok, wait_job
from tests.wyoming_client import describe, raw_event, raw_exchange, transcribe

ML_NAME = "multilingual_ctc"
ML_CHECKPOINT = Path(__file__).parent / "fixtures" / "generations" / ML_NAME / f"{ML_NAME}.ckpt"
SPEECH = CORPUS_DIR / "pisets" / "test_sound_ru.wav"  # 3.2 s, 16 kHz mono
KEY = "language-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}
TIMEOUT = 120.0


@dataclass
class Server:
    url: str
    port: int  # the Wyoming door's
    app: FastAPI


@pytest.fixture(scope="module")
def server(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    settings = real_model_settings(
        golden_dir,
        tmp_path_factory.mktemp("models"),
        model=ML_NAME,
        checkpoint_path=ML_CHECKPOINT,
        api_key=KEY,
        max_queue=8,
        jobs_dir=tmp_path_factory.mktemp("jobs"),
        wyoming_uri=f"tcp://127.0.0.1:{port}",
    )
    app = create_app(settings, keepalive_seconds=0.5, tmp_dir=tmp_path_factory.mktemp("uploads"))
    with serve(app) as url:
        assert app.state.ctx.service.wait_loaded(TIMEOUT), app.state.ctx.service.error
        yield Server(url, port, app)


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=TIMEOUT) as client:
        yield client


def post(http: httpx.Client, **data: Any) -> httpx.Response:
    with SPEECH.open("rb") as fh:
        return http.post("/v1/audio/transcriptions", files={"file": ("a.wav", fh)}, data=data)


def letters(text: str) -> set[str]:
    return {ch for ch in text.lower() if ch.isalpha()}


def in_alphabet(text: str, code: str) -> bool:
    return letters(text) <= LANGUAGES[code].letters


@pytest.fixture(scope="module")
def unrestricted(http: httpx.Client) -> str:
    """The model's own text: letters of several alphabets (what makes the checks real)."""
    response = post(http)
    assert response.status_code == 200, response.text
    text: str = response.json()["text"]
    assert not in_alphabet(text, "kk") and not in_alphabet(text, "en"), text
    return text


# -- the OpenAI route ------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["kk", "en", "uz", "ky", "ru"])
def test_language_keeps_the_text_in_its_alphabet(
    http: httpx.Client, unrestricted: str, code: str
) -> None:
    response = post(http, language=code, response_format="verbose_json")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] and body["text"] != unrestricted
    assert in_alphabet(body["text"], code), body["text"]
    assert body["language"] == LANGUAGES[code].name.lower()  # "kazakh": Whisper's naming


def test_region_subtags_and_case_are_read_as_the_language(http: httpx.Client) -> None:
    kazakh = post(http, language="kk").json()["text"]
    assert post(http, language="KK-kz").json()["text"] == kazakh
    assert post(http, language="auto").json()["text"] == post(http).json()["text"]


@pytest.mark.parametrize("value", ["xx", "de", "russian", "zh-CN"])
def test_an_unsupported_language_is_a_400_naming_it(http: httpx.Client, value: str) -> None:
    response = post(http, language=value)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "language" and error["code"] == "unsupported_value"
    assert error["type"] == "invalid_request_error"
    assert "ru, en, kk, ky, uz" in error["message"]


def test_verbose_json_without_language_names_the_script_of_the_text(
    http: httpx.Client, unrestricted: str
) -> None:
    body = post(http, response_format="verbose_json").json()
    assert body["text"] == unrestricted
    detected = detect_language(unrestricted, MULTILINGUAL_LANGUAGES)
    assert detected is not None
    assert body["language"] == LANGUAGES[detected].name.lower()


def test_requests_combined_in_one_model_call_keep_their_own_languages(
    golden_dir: Path, tmp_path_factory: pytest.TempPathFactory, http: httpx.Client
) -> None:
    """Requests that asked for different languages, queued behind a held worker, share one
    model call: each wave gets its own request's language, and each text equals the one the
    request gets alone."""
    alone = {code: post(http, language=code).json()["text"] for code in ("kk", "en")}
    gate = Gate()
    app = gated_app(
        golden_dir,
        tmp_path_factory,
        gate,
        model=ML_NAME,
        checkpoint_path=ML_CHECKPOINT,
        overlap_short_calls=False,  # one lane: the queued requests wait for the same turn
    )
    answers: dict[str, httpx.Response] = {}

    def send(url: str, name: str, code: str | None) -> threading.Thread:
        def run() -> None:
            with SPEECH.open("rb") as fh:
                answers[name] = httpx.post(
                    f"{url}/v1/audio/transcriptions",
                    files={"file": ("a.wav", fh)},
                    data={"language": code} if code else {},
                    headers={"x-request-id": name},
                    timeout=TIMEOUT,
                )

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    for url in served(app):
        gate.open.clear()
        threads = [send(url, "blocker", None)]
        assert gate.entered.acquire(timeout=TIMEOUT), "the blocker never reached the model"
        threads += [send(url, "kk", "kk"), send(url, "en", "en"), send(url, "none", None)]
        wait_until(lambda: scheduler(app).pending_batches == 3, "three queued batches")
        gate.open.set()
        for thread in threads:
            thread.join(TIMEOUT)
        assert answers["kk"].json()["text"] == alone["kk"]
        assert answers["en"].json()["text"] == alone["en"]
        assert answers["none"].json()["text"] == answers["blocker"].json()["text"]
        combined = [r for r in records_of(scheduler(app)) if r.owners == 3]
        assert sorted(r.request_id for r in combined) == ["en", "kk", "none"]
        assert gate.languages[0] is None  # the blocker: no language, the plain call
        assert sorted(gate.languages[1], key=lambda code: code or "") == [None, "en", "kk"]


def test_the_openai_sdk_passes_language(server: Server) -> None:
    with OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=TIMEOUT) as sdk:
        with SPEECH.open("rb") as fh:
            verbose = sdk.audio.transcriptions.create(
                model="whisper-1", file=fh, language="kk", response_format="verbose_json"
            )
        assert verbose.language == "kazakh" and in_alphabet(verbose.text, "kk")
        with SPEECH.open("rb") as fh, pytest.raises(openai.BadRequestError) as raised:
            sdk.audio.transcriptions.create(model="whisper-1", file=fh, language="xx")
        assert raised.value.status_code == 400
        body = raised.value.body
        assert isinstance(body, dict) and body.get("param") == "language"


def test_model_cards_carry_the_languages(http: httpx.Client) -> None:
    cards = http.get("/v1/models").json()["data"]
    assert cards and all(card["languages"] == list(MULTILINGUAL_LANGUAGES) for card in cards)
    assert http.get(f"/v1/models/{ML_NAME}").json()["languages"] == list(MULTILINGUAL_LANGUAGES)


# -- durable jobs ----------------------------------------------------------------------------


def test_a_job_stores_its_language_and_runs_with_it(
    server: Server, http: httpx.Client, unrestricted: str
) -> None:
    job = submit_ok(http, SPEECH, language="kk-KZ")
    done = wait_job(http, job["id"])
    assert done["status"] == "completed", done
    stored = server.app.state.jobs.service.get(job["id"])
    assert stored.options.language == "kk"  # what a resumed attempt runs with again
    body = http.get(f"/v1/jobs/{job['id']}/result", params={"response_format": "verbose_json"})
    verbose = body.json()
    assert verbose["language"] == "kazakh" and in_alphabet(verbose["text"], "kk")
    assert verbose["text"] == post(http, language="kk").json()["text"]

    plain = submit_ok(http, SPEECH)
    assert wait_job(http, plain["id"])["status"] == "completed"
    text = http.get(f"/v1/jobs/{plain['id']}/result", params={"response_format": "text"}).text
    assert text.strip() == unrestricted


def test_a_job_resumed_after_a_restart_runs_with_its_language_again(
    golden_dir: Path, tmp_path: Path
) -> None:
    """A job with ``language=kk`` stopped mid-way (after a committed chunk) resumes at the next
    start from its stored options: the chunks of the second attempt stay Kazakh too."""
    long_wav = tiled_wav(SPEECH, tmp_path / "long.wav", 60.0)
    jobs_dir = tmp_path / "jobs"

    def make_app() -> FastAPI:
        settings = real_model_settings(
            golden_dir,
            tmp_path / "models",
            model=ML_NAME,
            checkpoint_path=ML_CHECKPOINT,
            jobs_dir=jobs_dir,
            batch_size=1,  # one chunk per model call: the stop lands between chunks
        )
        return create_app(settings, keepalive_seconds=0.5, tmp_dir=tmp_path / "uploads")

    first = make_app()
    with serve(first) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        assert first.state.ctx.service.wait_loaded(TIMEOUT)
        runner = first.state.jobs.service.runner
        commit = runner.store.commit_chunk
        committed = threading.Event()

        def commit_then_hold(job: Any, end: float, segments: Any, *state: Any) -> bool:
            """The real commit; the first one then holds the runner until the stop begins,
            so the stop lands mid-job however fast the fixture model is."""
            written: bool = commit(job, end, segments, *state)
            if not committed.is_set():
                committed.set()
                runner._stopping.wait(TIMEOUT)
            return written

        runner.store.commit_chunk = commit_then_hold
        job = submit_ok(client, long_wav, language="kk")
        assert committed.wait(TIMEOUT)

    second = make_app()
    with serve(second) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        assert second.state.ctx.service.wait_loaded(TIMEOUT)
        done = wait_job(client, job["id"])
        assert done["status"] == "completed", done
        starts = [
            s for s in second.state.jobs.service.runner.decode_starts if s.job_id == job["id"]
        ]
        assert [s.attempt for s in starts] == [2] and 0 < starts[0].start_seconds < 60
        stored = second.state.jobs.service.get(job["id"])
        assert stored.options.language == "kk"
        verbose = client.get(
            f"/v1/jobs/{job['id']}/result",
            params={"response_format": "verbose_json"},
        ).json()
        resumed = [s["text"] for s in verbose["segments"] if s["start"] >= starts[0].start_seconds]
        assert resumed and all(in_alphabet(text, "kk") for text in resumed), resumed
        assert verbose["language"] == "kazakh"


def test_a_job_with_an_unsupported_language_is_refused(http: httpx.Client) -> None:
    response = submit(http, SPEECH, language="xx")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "language"


# -- Wyoming ---------------------------------------------------------------------------------


def test_wyoming_info_lists_the_models_languages(server: Server) -> None:
    info = Info.from_event(asyncio.run(describe(server.port)))
    (model,) = info.asr[0].models
    assert model.languages == list(MULTILINGUAL_LANGUAGES)


def test_wyoming_utterance_follows_transcribes_language(server: Server, http: httpx.Client) -> None:
    reply = asyncio.run(transcribe(server.port, SPEECH, language="kk"))
    assert reply.error is None, reply.error
    assert in_alphabet(reply.text, "kk") and reply.text == post(http, language="kk").json()["text"]
    assert reply.events[-2].data.get("language") == "kk"
    # a language the model does not transcribe: an error naming it, then the connection ends
    refused = raw_exchange(server.port, raw_event("transcribe", {"language": "de"}))
    assert [e["type"] for e in refused] == ["error"], refused
    error = refused[0]["data"]
    assert isinstance(error, dict) and error["code"] == "unsupported_language"
    assert "'de'" in str(error["text"])


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_language_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("NUM_THREADS", "1")
    base = ["transcribe", str(SPEECH), "--checkpoint", str(ML_CHECKPOINT), "-f", "verbose_json"]
    assert cli.main([*base, "--language", "kk"]) == 0
    verbose = json.loads(capsys.readouterr().out)
    assert verbose["language"] == "kazakh" and in_alphabet(verbose["text"], "kk")
    assert cli.main([*base, "--language", "en-US"]) == 0
    assert in_alphabet(json.loads(capsys.readouterr().out)["text"], "en")
    assert cli.main([*base, "--language", "xx"]) == cli_common.EXIT_USAGE
    assert "--language 'xx'" in capsys.readouterr().err


def test_jobs_cli_submit_language(
    server: Server, http: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = ["jobs", "--url", server.url, "--api-key", KEY, "submit", "--wait", "-f", "text"]
    assert cli.main([*jobs, "--language", "kk", str(SPEECH)]) == 0
    text = capsys.readouterr().out.strip()
    assert text == post(http, language="kk").json()["text"] and in_alphabet(text, "kk")
    assert cli.main([*jobs, "--language", "xx", str(SPEECH)]) != 0
    assert "language" in capsys.readouterr().err


# -- the pieces ------------------------------------------------------------------------------


def test_check_language_and_normalise() -> None:
    assert normalise_language(" ru-RU ") == "ru" and normalise_language("auto") is None
    check_language(None, ("ru",), "v3_ctc")
    check_language("ru", ("ru",), "v3_ctc")
    check_language("en", None, "local")  # not known yet: the run decides
    with pytest.raises(ApiError) as raised:
        check_language("en", ("ru",), "v3_ctc")
    assert raised.value.status == 400 and raised.value.param == "language"


def test_transcript_language_names() -> None:
    assert transcript_language(None, "", ("ru",)) == "russian"
    assert transcript_language(None, "hello", ("ru",)) == "russian"  # a Russian model's
    assert transcript_language(None, "сәлем", MULTILINGUAL_LANGUAGES) == "kazakh"
    assert transcript_language(None, "hello", MULTILINGUAL_LANGUAGES) == "english"
    assert transcript_language("ky", "hello", MULTILINGUAL_LANGUAGES) == "kyrgyz"


def test_languages_before_the_model_is_loaded(tmp_path: Path) -> None:
    """What a job submitted during start-up is checked against: the catalogue's languages for
    ``MODEL``; nothing for a local checkpoint, whose vocabulary decides once loaded."""

    def languages(**values: Any) -> tuple[str, ...] | None:
        settings = load_settings(_env_file=None, models_dir=tmp_path, **values)
        return ModelService(settings, Metrics()).languages

    assert languages(model=ML_NAME) == MULTILINGUAL_LANGUAGES
    assert languages(model="v3_rnnt") == ("ru",)
    assert languages(model=ML_NAME, checkpoint_path=ML_CHECKPOINT) is None


def test_a_stored_language_the_model_lacks_fails_the_run_clearly() -> None:
    """A job resumed after ``MODEL`` changed to one without its language: the run's failure
    names ``language`` (a client error), not an internal error."""
    error = failure_of(LanguageError("kk", ("ru",), "v3_ctc"), "job_1", what="job")
    assert error.kind == "invalid_audio" and error.client_error
    assert error.param == "language" and error.code == "unsupported_value"
    assert "'kk'" in error.message and "ru" in error.message
