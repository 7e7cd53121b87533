"""``keywords`` end to end: every HTTP door over a real server, down to the decoder.

The server runs the v3_ctc golden checkpoint (random weights: its text is nonsense, but
deterministic). That makes the effect of a keyword easy to see: a random model has no strong
opinion, so a phrase boosted hard enough is written where the greedy text has none, and a weak
boost changes nothing — which is the failure mode the README warns about, used here as the
observable proof that a request's phrase (and its own boost) reached the beam search. A phrase
the model cannot write (Latin letters for a Russian model) is a 400 naming it, before any audio
is decoded. Requests go through the official ``openai`` SDK (its own ``keywords=``, and
``extra_body`` as older versions must), through ``httpx`` with every way of writing a list,
and through durable jobs, whose stored keywords a resumed attempt runs with again; the
server-wide ``KEYWORDS`` reaches the Wyoming door too.
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
import numpy as np
import openai
import pytest
from fastapi import FastAPI
from numpy.typing import NDArray
from openai import OpenAI

from gigaam_api import formats, pipeline
from gigaam_api.config import pipeline_options
from gigaam_api.keyword_list import MAX_KEYWORD_CHARS, MAX_KEYWORDS
from gigaam_api.model import DEFAULT_BOOST, Keyword, Result
from gigaam_api.server import create_app
from gigaam_api.transcript import Transcript
from tests.api_server import free_port, real_model_settings, scheduler, serve, tiled_wav
from tests.conftest import CORPUS_DIR
from tests.gated_server import Gate, gated_app, served
from tests.helpers import records_of, wait_until
from tests.jobs_helpers import submit, submit_ok, wait_job
from tests.keyword_cases import DISTRACTORS
from tests.wyoming_client import transcribe as wyoming_transcribe

SPEECH = CORPUS_DIR / "pisets" / "test_sound_ru.wav"  # 3.2 s, 16 kHz mono
KEY = "keywords-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}
TIMEOUT = 120.0
#: A phrase in the model's letters that its greedy text does not hold as a word.
PHRASE = "саш"
STRONG = f"{PHRASE}:9"  # strong enough to be written into this random model's text
WEAK = f"{PHRASE}:1"  # too weak to change anything
MAX_BOOST = 9.5


@dataclass
class Server:
    url: str
    app: FastAPI


@pytest.fixture(scope="module")
def server(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = real_model_settings(
        golden_dir,
        tmp_path_factory.mktemp("models"),
        api_key=KEY,
        jobs_dir=tmp_path_factory.mktemp("jobs"),
        keywords_max_boost=MAX_BOOST,
    )
    app = create_app(settings, keepalive_seconds=0.5, tmp_dir=tmp_path_factory.mktemp("uploads"))
    with serve(app) as url:
        assert app.state.ctx.service.wait_loaded(TIMEOUT), app.state.ctx.service.error
        yield Server(url, app)


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module")
def sdk(server: Server) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0) as client:
        yield client


def post(http: httpx.Client, data: Any = None) -> httpx.Response:
    with SPEECH.open("rb") as fh:
        return http.post("/v1/audio/transcriptions", files={"file": ("a.wav", fh)}, data=data)


def text_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    text: str = response.json()["text"]
    return text


def words(text: str) -> list[str]:
    return text.split()


def marked(text: str) -> bool:
    """Whether the phrase is one of the words of ``text`` (keywords match whole words)."""
    return PHRASE in text.split()


@pytest.fixture(scope="module")
def plain(http: httpx.Client) -> str:
    """The greedy text, without keywords: the phrase is not one of its words."""
    text = text_of(post(http))
    assert text and PHRASE not in words(text), text
    return text


@pytest.fixture(scope="module")
def boosted(http: httpx.Client, plain: str) -> str:
    """The text with the phrase boosted strongly: written in, so the text changed."""
    text = text_of(post(http, {"keywords[]": [STRONG]}))
    assert PHRASE in words(text) and text != plain, text
    return text


def assert_keyword_error(response: httpx.Response, *needles: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "keywords" and error["type"] == "invalid_request_error", error
    assert error["code"] == "invalid_value", error
    for needle in needles:
        assert needle in error["message"], error["message"]


# -- the official SDK ------------------------------------------------------------------------


def test_the_sdk_keywords_parameter_reaches_the_decoder(
    sdk: OpenAI, plain: str, boosted: str
) -> None:
    """openai-python's own ``keywords=`` (≥ 2.50; the pinned version has it), one
    ``keywords[]`` part per phrase on the wire; the boost syntax rides inside the phrase."""
    with SPEECH.open("rb") as fh:
        result = sdk.audio.transcriptions.create(model="whisper-1", file=fh, keywords=[STRONG])
    assert result.text == boosted
    with SPEECH.open("rb") as fh:
        weak = sdk.audio.transcriptions.create(model="whisper-1", file=fh, keywords=[WEAK])
    assert PHRASE not in words(weak.text)  # the phrase's own boost reached the search too


def test_older_sdks_send_keywords_through_extra_body(sdk: OpenAI, boosted: str) -> None:
    """What an SDK without the parameter does (1.x, early 2.x): ``extra_body`` lists are
    encoded like the SDK's own lists."""
    with SPEECH.open("rb") as fh:
        result = sdk.audio.transcriptions.create(
            model="whisper-1", file=fh, extra_body={"keywords": [STRONG]}
        )
    assert result.text == boosted


def test_the_sdk_gets_a_400_naming_a_phrase_the_model_cannot_write(sdk: OpenAI) -> None:
    with SPEECH.open("rb") as fh, pytest.raises(openai.BadRequestError) as caught:
        sdk.audio.transcriptions.create(model="whisper-1", file=fh, keywords=["Сбербанк", "Moscow"])
    assert caught.value.status_code == 400 and caught.value.param == "keywords"
    assert "Moscow" in caught.value.message


def test_the_sdk_streams_with_keywords(sdk: OpenAI, boosted: str) -> None:
    with SPEECH.open("rb") as fh:
        events = list(
            sdk.audio.transcriptions.create(
                model="gpt-4o-transcribe", file=fh, keywords=[STRONG], stream=True
            )
        )
    assert events[-1].type == "transcript.text.done" and events[-1].text == boosted


def test_requests_with_different_keywords_share_a_model_call(
    golden_dir: Path, tmp_path_factory: pytest.TempPathFactory, plain: str, boosted: str
) -> None:
    """Requests queued behind a held worker, one with keywords and one without, share one
    model call: each wave is decoded with its own request's graph (or greedily), and each
    text equals the one the request gets alone."""
    gate = Gate()
    app = gated_app(golden_dir, tmp_path_factory, gate, overlap_short_calls=False)
    answers: dict[str, httpx.Response] = {}

    def send(url: str, name: str, keywords: list[str]) -> threading.Thread:
        def run() -> None:
            with SPEECH.open("rb") as fh:
                answers[name] = httpx.post(
                    f"{url}/v1/audio/transcriptions",
                    files={"file": ("a.wav", fh)},
                    data={"keywords[]": keywords},
                    headers={"x-request-id": name},
                    timeout=TIMEOUT,
                )

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    for url in served(app):
        gate.open.clear()
        threads = [send(url, "blocker", [])]
        assert gate.entered.acquire(timeout=TIMEOUT), "the blocker never reached the model"
        threads += [send(url, "boosted", [STRONG]), send(url, "plain", [])]
        wait_until(lambda: scheduler(app).pending_batches == 2, "two queued batches")
        gate.open.set()
        for thread in threads:
            thread.join(TIMEOUT)
        assert text_of(answers["boosted"]) == boosted
        assert text_of(answers["plain"]) == text_of(answers["blocker"]) == plain
        combined = [r for r in records_of(scheduler(app)) if r.owners == 2]
        assert sorted(r.request_id for r in combined) == ["boosted", "plain"]
        assert gate.keywords[0] is None  # the blocker: no keywords, the plain call
        graphs = gate.keywords[1]
        assert len(graphs) == 2 and sorted(g is None for g in graphs) == [False, True]


# -- every way of writing the list -----------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"keywords": STRONG},  # the bare name
        {"keywords": f"Сбербанк, {STRONG}"},  # a comma-separated list in one field
        {"keywords": f"Сбербанк\n{STRONG}\n"},  # one per line
        {"keywords": json.dumps(["Сбербанк", STRONG], ensure_ascii=False)},  # a JSON list
        {"keywords[]": ["Сбербанк", f"{PHRASE.upper()} : 9"]},  # case and spaces
    ],
    ids=["bare", "commas", "lines", "json", "array-parts"],
)
def test_a_list_is_read_the_same_however_it_is_written(
    http: httpx.Client, boosted: str, data: dict[str, Any]
) -> None:
    assert PHRASE in words(text_of(post(http, data)))


def test_prompt_is_accepted_and_changes_nothing(http: httpx.Client, plain: str) -> None:
    assert text_of(post(http, {"prompt": f"{PHRASE} {PHRASE} {PHRASE}"})) == plain


def test_without_keywords_the_text_is_the_greedy_one(http: httpx.Client, plain: str) -> None:
    """An empty list (the SDKs leave it out; hand-written clients send an empty part) is no
    keywords at all: greedy decoding, unchanged."""
    assert text_of(post(http, {"keywords": ""})) == plain
    assert text_of(post(http, {"keywords[]": [" ", ""]})) == plain


# -- the limits: each a 400 naming `keywords` ------------------------------------------------


def test_more_than_the_maximum_number_of_phrases(http: httpx.Client) -> None:
    many = ", ".join(f"слово{chr(0x430 + i % 32)}{i // 32}" for i in range(MAX_KEYWORDS + 1))
    assert_keyword_error(post(http, {"keywords": many}), str(MAX_KEYWORDS))
    exactly = ", ".join(
        "".join(chr(0x430 + int(d)) for d in f"{i:03d}") for i in range(MAX_KEYWORDS)
    )
    assert post(http, {"keywords": exactly}).status_code == 200


def test_a_phrase_longer_than_the_maximum(http: httpx.Client) -> None:
    assert_keyword_error(post(http, {"keywords[]": ["а" * (MAX_KEYWORD_CHARS + 1)]}), "64")
    assert post(http, {"keywords[]": ["а" * MAX_KEYWORD_CHARS]}).status_code == 200


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        (f"{PHRASE}:много", "must be a number"),
        (f"{PHRASE}:2,5", "'5'"),  # a comma separates phrases: "саш:2", then "5" (a digit)
        (f"{PHRASE}:nan", "must be a number"),
        (f"{PHRASE}:0", "above 0"),
        (f"{PHRASE}:-1", "above 0"),
        (f"{PHRASE}:{MAX_BOOST + 0.5}", "KEYWORDS_MAX_BOOST"),
        (":3", "no phrase"),
        ("са\x07ш", "control"),
    ],
)
def test_a_bad_boost_or_phrase(http: httpx.Client, entry: str, needle: str) -> None:
    assert_keyword_error(post(http, {"keywords[]": [entry]}), needle)


def test_a_malformed_json_list(http: httpx.Client) -> None:
    assert_keyword_error(post(http, {"keywords": '["саш", 3]'}), "JSON list of strings")
    assert_keyword_error(post(http, {"keywords": '["саш"'}), "JSON list of strings")


@pytest.mark.parametrize("phrase", ["Moscow", "123", "!!!"])
def test_a_phrase_the_model_cannot_write(http: httpx.Client, phrase: str) -> None:
    assert_keyword_error(post(http, {"keywords[]": ["саш", phrase]}), repr(phrase))


def test_a_hundred_real_phrases_reach_the_decoder_as_sent(
    server: Server, http: httpx.Client, plain: str
) -> None:
    """The 100 distractor phrases of the decoding tests (names, places, brands, terms; with
    hyphens, ``ё`` and two-word names), sent as 100 ``keywords[]`` parts: the text is exactly
    what the pipeline gives over the served model with that list compiled at the default
    boost, i.e. the door handed every phrase to the beam search, with the server's boost."""
    assert len(DISTRACTORS) == MAX_KEYWORDS
    model = server.app.state.ctx.service.model
    graph = model.compile_keywords([Keyword(p) for p in DISTRACTORS], DEFAULT_BOOST)

    def infer(batch: list[NDArray[np.float32]]) -> list[Result]:
        return model.transcribe(batch, keywords=[graph] * len(batch))

    run = pipeline.transcribe_file(SPEECH, infer, pipeline_options(server.app.state.ctx.settings))
    expected = formats.transcript_text(Transcript(segments=list(run)))
    assert expected != plain
    assert text_of(post(http, {"keywords[]": list(DISTRACTORS)})) == expected


def test_the_maximum_boost_is_accepted(http: httpx.Client) -> None:
    assert PHRASE in words(text_of(post(http, {"keywords[]": [f"{PHRASE}:{MAX_BOOST}"]})))


# -- durable jobs ----------------------------------------------------------------------------


def test_a_job_stores_its_keywords_and_runs_with_them(
    server: Server, http: httpx.Client, boosted: str
) -> None:
    wanted = ["Сбербанк", STRONG]
    job = submit_ok(http, SPEECH, **{"keywords[]": wanted})
    done = wait_job(http, job["id"])
    assert done["status"] == "completed", done
    stored = server.app.state.jobs.service.get(job["id"])
    assert stored.options.keywords == (("Сбербанк", None), (PHRASE, 9.0))
    result = http.get(f"/v1/jobs/{job['id']}/result", params={"response_format": "text"})
    assert PHRASE in words(result.text)
    assert result.text.strip() == text_of(post(http, {"keywords[]": wanted}))


def test_a_job_with_a_phrase_the_model_cannot_write_is_refused_at_submission(
    server: Server, http: httpx.Client
) -> None:
    before = len(http.get("/v1/jobs", params={"limit": 100}).json()["data"])
    assert_keyword_error(submit(http, SPEECH, **{"keywords[]": ["Moscow"]}), "'Moscow'")
    assert_keyword_error(submit(http, SPEECH, keywords=f"{PHRASE}:0"), "above 0")
    assert len(http.get("/v1/jobs", params={"limit": 100}).json()["data"]) == before


def test_a_job_resumed_after_a_restart_runs_with_its_keywords_again(
    golden_dir: Path, tmp_path: Path
) -> None:
    """A job stopped after its first committed chunk resumes in a new server from its stored
    options: the second attempt's chunks are decoded with the keyword too."""
    long_wav = tiled_wav(SPEECH, tmp_path / "long.wav", 60.0)
    jobs_dir = tmp_path / "jobs"

    def make_app() -> FastAPI:
        settings = real_model_settings(
            golden_dir, tmp_path / "models", jobs_dir=jobs_dir, batch_size=1
        )
        return create_app(settings, keepalive_seconds=0.5, tmp_dir=tmp_path / "uploads")

    first = make_app()
    with serve(first) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        assert first.state.ctx.service.wait_loaded(TIMEOUT)
        runner = first.state.jobs.service.runner
        commit = runner.store.commit_chunk
        committed = threading.Event()

        def commit_then_hold(job: Any, end: float, segments: Any, *state: Any) -> bool:
            """The real commit; the first one then holds the runner until the stop begins."""
            written: bool = commit(job, end, segments, *state)
            if not committed.is_set():
                committed.set()
                runner._stopping.wait(TIMEOUT)
            return written

        runner.store.commit_chunk = commit_then_hold
        job = submit_ok(client, long_wav, **{"keywords[]": [STRONG]})
        assert committed.wait(TIMEOUT)
        plain_job = submit_ok(client, long_wav)  # queued behind it: the same audio, no keywords

    second = make_app()
    with serve(second) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        assert second.state.ctx.service.wait_loaded(TIMEOUT)
        done = wait_job(client, job["id"])
        assert done["status"] == "completed", done
        assert wait_job(client, plain_job["id"])["status"] == "completed"
        starts = [
            s for s in second.state.jobs.service.runner.decode_starts if s.job_id == job["id"]
        ]
        assert [s.attempt for s in starts] == [2] and 0 < starts[0].start_seconds < 60

        def segments(job_id: str) -> list[dict[str, Any]]:
            params = {"response_format": "verbose_json"}
            found: list[dict[str, Any]] = client.get(
                f"/v1/jobs/{job_id}/result", params=params
            ).json()["segments"]
            return found

        after = starts[0].start_seconds
        resumed = [s["text"] for s in segments(job["id"]) if s["start"] >= after]
        unboosted = [s["text"] for s in segments(plain_job["id"]) if s["start"] >= after]
        assert resumed and all(marked(text) for text in resumed), resumed
        assert unboosted and not any(marked(text) for text in unboosted), unboosted


# -- the server-wide list --------------------------------------------------------------------


def test_the_server_keywords_apply_to_every_request(golden_dir: Path, tmp_path: Path) -> None:
    """``KEYWORDS`` (here a file) is merged into every request, the Wyoming door's too; a
    request may re-boost one of its phrases (weaker: no longer written) and add its own."""
    listing = tmp_path / "keywords.txt"
    listing.write_text(f"# names we need right\n{STRONG}\nСбербанк\n", encoding="utf-8")
    port = free_port()
    settings = real_model_settings(
        golden_dir,
        tmp_path / "models",
        jobs_dir=tmp_path / "jobs",
        keywords=str(listing),
        wyoming_uri=f"tcp://127.0.0.1:{port}",
    )
    app = create_app(settings, keepalive_seconds=0.5, tmp_dir=tmp_path / "uploads")
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        assert app.state.ctx.service.wait_loaded(TIMEOUT), app.state.ctx.service.error
        text = text_of(post(client))
        assert PHRASE in words(text)
        assert asyncio.run(wyoming_transcribe(port, SPEECH)).text == text
        assert PHRASE not in words(text_of(post(client, {"keywords[]": [WEAK]})))
        assert_keyword_error(post(client, {"keywords[]": ["Paris"]}), "'Paris'")


def test_server_keywords_the_model_cannot_write_fail_loading_with_the_reason(
    golden_dir: Path, tmp_path: Path
) -> None:
    settings = real_model_settings(
        golden_dir, tmp_path / "models", jobs_dir=tmp_path / "jobs", keywords="саш, London"
    )
    app = create_app(settings, keepalive_seconds=0.5, tmp_dir=tmp_path / "uploads")
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        assert not app.state.ctx.service.wait_loaded(TIMEOUT)
        health = client.get("/health")
        assert health.status_code == 503
        assert "KEYWORDS" in health.text and "London" in health.text, health.text
