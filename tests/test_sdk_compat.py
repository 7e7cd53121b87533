"""Cross-SDK conformance (``docs/api.md``): the real server driven by the openai
SDKs that applications actually run — Python 1.109.1 and 2.54.0, Node 4.104.0, 5.23.2 and
7.57.0 — not just the pinned Python 3.x that ``test_api_e2e.py`` uses.

Why it matters: the wire format is the same in every version, but what each SDK *does* with
our answers is not. Node parses JSON only for ``application/json`` (an SRT body served as JSON
comes back as an object), puts a Buffer's file part first and sends ``fs.createReadStream``
bodies chunked; each SDK has its own SSE decoder and exception classes. Each SDK runs a small
committed client (``tests/sdk/node_client.mjs``, ``tests/sdk/py_client.py``) in its own process
and prints a JSON summary; the tests here compare it with the server's raw answers.

The SDKs are installed on first use into git-ignored caches (``tests/sdk/.node/<version>``,
``tests/sdk/.py/<version>``) straight from the package registries, then reused: the first run
takes a minute or two, later ones a few seconds. Without ``node``/``npm`` the Node tests skip
with a message; so does any SDK whose install fails (no registry access).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from filelock import FileLock
from starlette.types import ASGIApp, Receive, Scope, Send

from gigaam_api.server import create_app
from tests.api_server import real_model_settings, serve
from tests.conftest import CORPUS_DIR
from tests.speakers_data import resemblyzer_wheel

#: The first run installs five SDK versions (minutes, needs the package registries): a developer
#: can leave these out with ``pytest -m "not sdk"``; ``make test`` runs them.
pytestmark = pytest.mark.sdk

KEY = "sdk-secret"
TIMEOUT = 120.0
INSTALL_TIMEOUT_S = 600
CLIENT_TIMEOUT_S = 180
SDK_DIR = Path(__file__).resolve().parent / "sdk"
NODE_VERSIONS = ("4.104.0", "5.23.2", "7.57.0")
PYTHON_VERSIONS = ("1.109.1", "2.54.0")
MARKER = ".installed"  # written last: a folder without it is a broken install, redone
SPEECH = CORPUS_DIR / "pisets" / "test_sound_ru.wav"
#: A keyword boosted hard enough to be written into the random fixture model's text.
KEYWORD = "саш:9"


# -- SDK caches ------------------------------------------------------------------------------


def tail(process: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    return "\n".join((process.stdout + process.stderr).strip().splitlines()[-lines:])


def cached_install(target: Path, steps: list[list[str]], what: str) -> Path:
    """Run ``steps`` once to fill ``target``; reuse it while its marker exists.

    A lock keeps two concurrent test runs from installing into the same folder; a failed or
    interrupted install leaves no marker, so the next run starts it over from scratch. A
    failure skips (the registry may be unreachable on a developer's machine) with the
    installer's own last lines, so the reason is visible in ``pytest -ra``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / MARKER).is_file():
            return target
        shutil.rmtree(target, ignore_errors=True)
        for step in steps:
            try:
                done = subprocess.run(
                    step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
                )
            except subprocess.TimeoutExpired:
                pytest.skip(f"installing {what} took over {INSTALL_TIMEOUT_S} s: {step}")
            if done.returncode != 0:
                pytest.skip(f"could not install {what} ({' '.join(step[:3])} …):\n{tail(done)}")
        (target / MARKER).write_text(what + "\n")
    return target


def node_sdk(version: str) -> Path:
    """A folder whose ``node_modules/openai`` is openai-node ``version``."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("node and npm are needed for the Node SDK tests (install Node.js 20+)")
    target = SDK_DIR / ".node" / version
    install = [
        npm,
        "install",
        "--prefix",
        str(target),
        f"openai@{version}",
        "--save-exact",
        "--no-package-lock",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
    ]
    return cached_install(target, [install], f"openai-node {version}")


def python_sdk(version: str) -> Path:
    """The interpreter of a virtualenv holding only openai-python ``version``."""
    target = SDK_DIR / ".py" / version
    python = target / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(target)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"openai=={version}",
        ],
    ]
    cached_install(target, steps, f"openai-python {version}")
    return python


def run_client(command: list[str]) -> dict[str, Any]:
    """Run one SDK client script; its stdout is the JSON summary."""
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S, check=False
    )
    assert done.returncode == 0, f"{command[0]} client failed:\n{tail(done, 40)}"
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


# -- the server and what it says over raw HTTP -----------------------------------------------


class HeaderLog:
    """ASGI wrapper noting each HTTP request's headers, so a test can see how an SDK *sent* its
    upload (chunked or with a length) — something no response can tell."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[dict[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.requests.append({"path": scope["path"], **headers})
        await self.app(scope, receive, send)


@dataclass
class Server:
    base_url: str  # with /v1, as SDK users configure it
    log: HeaderLog


@pytest.fixture(scope="module")
def server(
    golden_dir: Path, corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The real server on the tiny golden v3_ctc checkpoint (as in ``test_api_e2e.py``)."""
    settings = real_model_settings(
        golden_dir,
        tmp_path_factory.mktemp("models"),
        api_key=KEY,
        diarization_model=str(resemblyzer_wheel()),  # real GE2E weights for diarized_json
    )
    app = create_app(settings, keepalive_seconds=0.5, tmp_dir=tmp_path_factory.mktemp("uploads"))
    log = HeaderLog(app)
    with serve(log) as url:
        assert app.state.ctx.service.wait_loaded(TIMEOUT), app.state.ctx.service.error
        yield Server(f"{url}/v1", log)


@pytest.fixture(scope="module")
def raw(server: Server) -> dict[str, Any]:
    """The server's own bodies per format (plain httpx): what every SDK must hand back intact."""
    answers: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=TIMEOUT) as http:
        for fmt in ("json", "text", "srt", "vtt", "verbose_json"):
            data: dict[str, Any] = {"model": "whisper-1", "response_format": fmt}
            if fmt == "verbose_json":
                data["timestamp_granularities[]"] = ["word", "segment"]
            with SPEECH.open("rb") as fh:
                response = http.post(
                    "/audio/transcriptions", files={"file": (SPEECH.name, fh)}, data=data
                )
            assert response.status_code == 200, response.text
            answers[fmt] = response.json() if fmt.endswith("json") else response.text
        with SPEECH.open("rb") as fh:
            response = http.post(
                "/audio/transcriptions",
                files={"file": (SPEECH.name, fh)},
                data={"model": "whisper-1", "keywords[]": [KEYWORD]},
            )
        assert response.status_code == 200, response.text
        answers["keywords"] = response.json()
    assert answers["json"]["text"], "the speech clip must give a non-empty transcript"
    return answers


# -- Node -----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=NODE_VERSIONS)
def node(request: pytest.FixtureRequest, server: Server) -> dict[str, Any]:
    version: str = request.param
    prefix = node_sdk(version)
    script = SDK_DIR / "node_client.mjs"
    command = ["node", str(script), str(prefix), server.base_url, KEY, str(SPEECH), KEYWORD]
    summary = run_client(command)
    assert summary["version"] == version
    return summary


def test_node_json_from_buffer_and_chunked_stream(
    node: dict[str, Any], raw: dict[str, Any]
) -> None:
    # A Buffer (file part first in v5+) and a read stream (chunked in v7) give the same object.
    for key in ("json_buffer", "json_stream"):
        assert node[key]["type"] == "object"
        assert node[key]["value"] == raw["json"]


def test_node_uploads_as_the_contract_says(node: dict[str, Any], server: Server) -> None:
    # What the server saw from this SDK, as the headers of each upload.
    sent = [
        r
        for r in server.log.requests
        if r.get("user-agent") == f"OpenAI/JS {node['version']}"
        and r["path"].endswith("/audio/transcriptions")
    ]
    assert len(sent) == 11  # the client's eleven transcription calls, each seen once
    chunked = [r for r in sent if r.get("transfer-encoding") == "chunked"]
    assert all("content-length" not in r for r in chunked)
    # Three of the calls upload an fs.createReadStream (json, verbose_json, stream); v4 and v5
    # measure the file and send a length, v7 streams it.
    assert len(chunked) == (3 if node["version"].startswith("7.") else 0)


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_node_text_formats_are_strings(node: dict[str, Any], raw: dict[str, Any], fmt: str) -> None:
    # Served as text/plain, so Node returns the body untouched: not a parsed (mangled) object.
    assert node[fmt] == {"type": "string", "value": raw[fmt]}
    assert raw["text"] == raw["json"]["text"] + "\n"


def test_node_verbose_json(node: dict[str, Any], raw: dict[str, Any]) -> None:
    verbose = node["verbose_json"]
    assert verbose["type"] == "object" and verbose["value"] == raw["verbose_json"]
    body = verbose["value"]
    assert body["text"] == raw["json"]["text"]
    assert body["language"] == "russian" and body["duration"] > 0
    assert body["words"] and body["segments"]


def test_node_stream_iterates_to_done(node: dict[str, Any], raw: dict[str, Any]) -> None:
    stream = node["stream"]
    types = stream["types"]
    assert types[-1] == "transcript.text.done" and types.count("transcript.text.done") == 1
    assert set(types[:-1]) == {"transcript.text.delta"}
    assert "".join(stream["deltas"]) == stream["done_text"] == raw["json"]["text"]


def test_node_keywords_reach_the_decoder(node: dict[str, Any], raw: dict[str, Any]) -> None:
    assert node["keywords"] == {"type": "object", "value": raw["keywords"]}
    assert raw["keywords"]["text"] != raw["json"]["text"]
    bad = node["bad_keyword"]
    assert bad["raised"] and bad["is_bad_request"] and bad["status"] == 400
    assert bad["param"] == "keywords" and bad["code"] == "invalid_value"


def test_node_error_classes(node: dict[str, Any]) -> None:
    bad_format = node["bad_format"]
    assert bad_format["raised"] and bad_format["is_bad_request"]
    assert bad_format["name"] == "BadRequestError" and bad_format["status"] == 400
    assert bad_format["param"] == "response_format"
    bad_key = node["bad_key"]
    assert bad_key["raised"] and bad_key["is_authentication"]
    assert bad_key["name"] == "AuthenticationError" and bad_key["status"] == 401
    assert bad_key["code"] == "invalid_api_key"


# -- Python 1.x / 2.x -----------------------------------------------------------------------


@pytest.fixture(scope="module", params=PYTHON_VERSIONS)
def py(request: pytest.FixtureRequest, server: Server) -> dict[str, Any]:
    version: str = request.param
    python = python_sdk(version)
    script = SDK_DIR / "py_client.py"
    command = [str(python), str(script), server.base_url, KEY, str(SPEECH), KEYWORD]
    summary = run_client(command)
    assert summary["version"] == version
    return summary


def test_python_json(py: dict[str, Any], raw: dict[str, Any]) -> None:
    # An open file (named part, file last) and raw bytes (``upload``, octet-stream) agree.
    for key in ("json", "json_bytes"):
        assert py[key]["class"] == "Transcription"
        assert py[key]["value"]["text"] == raw["json"]["text"]
        assert py[key]["value"]["usage"] == raw["json"]["usage"]
    assert py["json_request_id"]


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_python_text_formats_are_str(py: dict[str, Any], raw: dict[str, Any], fmt: str) -> None:
    assert py[fmt] == {"class": "str", "value": raw[fmt]}


def test_python_verbose_json(py: dict[str, Any], raw: dict[str, Any]) -> None:
    verbose = py["verbose_json"]
    assert verbose["class"] == "TranscriptionVerbose"
    assert py["verbose_attrs"] == {
        "duration": raw["verbose_json"]["duration"],
        "language": "russian",
    }
    body = verbose["value"]
    assert body["text"] == raw["json"]["text"]
    assert body["words"] == raw["verbose_json"]["words"]
    assert [s["id"] for s in body["segments"]] == [s["id"] for s in raw["verbose_json"]["segments"]]
    for ours, theirs in zip(body["segments"], raw["verbose_json"]["segments"], strict=True):
        assert {k: ours[k] for k in theirs} == theirs  # every served field kept, none retyped


def test_python_stream_iterates_to_done(py: dict[str, Any], raw: dict[str, Any]) -> None:
    events = py["stream"]
    *deltas, done = events
    assert deltas and {e["type"] for e in deltas} == {"transcript.text.delta"}
    assert {e["class"] for e in deltas} == {"TranscriptionTextDeltaEvent"}
    assert done["type"] == "transcript.text.done" and done["class"] == "TranscriptionTextDoneEvent"
    assert "".join(e["delta"] for e in deltas) == done["text"] == raw["json"]["text"]


def test_python_2x_parses_diarized_json_into_its_own_types(py: dict[str, Any]) -> None:
    """openai-python 2.x (diarized_json arrived there): ``TranscriptionDiarized`` and the
    stream's ``transcript.text.segment`` events, built by the SDK itself from our bodies."""
    if "diarized" not in py:
        assert py["version"].startswith("1.")  # 1.x has no diarized_json
        return
    diarized = py["diarized"]
    assert diarized["class"] == "TranscriptionDiarized"
    body = diarized["value"]
    assert body["task"] == "transcribe" and body["segments"]
    assert {s["speaker"] for s in body["segments"]} == {"A"}  # one voice in the clip
    assert all(s["type"] == "transcript.text.segment" for s in body["segments"])
    events = py["diarized_stream"]
    classes = {e["type"]: e["class"] for e in events}
    assert classes["transcript.text.segment"] == "TranscriptionTextSegmentEvent"
    assert classes["transcript.text.delta"] == "TranscriptionTextDeltaEvent"
    assert events[-1]["type"] == "transcript.text.done"
    segments = [e for e in events if e["type"] == "transcript.text.segment"]
    assert [s["text"] for s in segments] == [s["text"] for s in body["segments"]]


def test_python_keywords_reach_the_decoder(py: dict[str, Any], raw: dict[str, Any]) -> None:
    """2.54 sends its own ``keywords=``, 1.109 the same list through ``extra_body``: both
    arrive as the keywords[] parts the server reads, so the text is the keyword text (not the
    plain one), and a phrase the model cannot write is a ``BadRequestError`` naming it."""
    assert py["keywords_native"] == (not py["version"].startswith("1."))
    assert py["keywords"]["class"] == "Transcription"
    assert py["keywords"]["value"]["text"] == raw["keywords"]["text"] != raw["json"]["text"]
    bad = py["bad_keyword"]
    assert bad["raised"] and bad["class"] == "BadRequestError"
    assert bad["status"] == 400 and bad["param"] == "keywords" and bad["code"] == "invalid_value"


def test_python_error_classes(py: dict[str, Any]) -> None:
    bad_format = py["bad_format"]
    assert bad_format["raised"] and bad_format["class"] == "BadRequestError"
    assert bad_format["status"] == 400 and bad_format["param"] == "response_format"
    assert bad_format["request_id"]
    bad_key = py["bad_key"]
    assert bad_key["raised"] and bad_key["class"] == "AuthenticationError"
    assert bad_key["status"] == 401 and bad_key["code"] == "invalid_api_key"
