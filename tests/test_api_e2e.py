"""End to end: the real server (uvicorn on loopback, the real pipeline and ONNX model on the
tiny golden v3_ctc checkpoint) driven by the official ``openai`` SDK and raw ``httpx``.

Follows the wire contract in ``docs/api.md``. Not covered here:

* Other SDK versions (Python SDK 1.x/2.x, Node SDK 4/5/7): in ``tests/test_sdk_compat.py``,
  which installs those SDKs into git-ignored caches.
* ``include[]=logprobs``: GigaAM's greedy decoders produce no token log-probabilities;
  ``include[]`` is accepted and ignored, so there are no logprobs to check.
* Languages: the v3 model here is Russian-only; we check that ``language=ru`` (any case,
  with a region) is accepted, that another language is a 400 naming ``language``, and that
  ``verbose_json.language`` is ``"russian"``. What ``language`` does on a multilingual model
  is in ``tests/test_language_api.py``.

The golden model has random weights, so transcripts are nonsense — but deterministic, which
is what lets these tests compare formats, part orders and streaming against each other.
"""

from __future__ import annotations

import json
import os
import re
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
from openai.types.audio import Transcription, TranscriptionVerbose

from gigaam_api import audio
from gigaam_api.audio import source as audio_source
from gigaam_api.server import create_app
from tests import media
from tests.api_server import MULTIPART_HEADERS, form_body, form_part, real_model_settings, serve
from tests.conftest import CORPUS_DIR
from tests.helpers import wait_until

KEY = "e2e-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}
UPLOAD_LIMIT_MB = 3
MAX_AUDIO_SECONDS = 70
TIMEOUT = 120.0


@dataclass
class Server:
    url: str
    app: FastAPI


@pytest.fixture(scope="module")
def server(
    golden_dir: Path, corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    settings = real_model_settings(
        golden_dir,
        tmp_path_factory.mktemp("models"),
        api_key=KEY,
        max_upload_mb=UPLOAD_LIMIT_MB,
        max_audio_seconds=MAX_AUDIO_SECONDS,
        model_aliases="whisper-1,gpt-4o-transcribe,gpt-4o-mini-transcribe,openai/whisper-large-v3",
    )
    app = create_app(settings, keepalive_seconds=0.5, tmp_dir=tmp_path_factory.mktemp("uploads"))
    with serve(app) as url:
        assert app.state.ctx.service.wait_loaded(TIMEOUT), app.state.ctx.service.error
        yield Server(url, app)


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=TIMEOUT) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=TIMEOUT) as raw:
        yield raw


SPEECH = CORPUS_DIR / "pisets" / "test_sound_ru.wav"
SPEECH_SECONDS = 3.234


def post(
    http: httpx.Client, path: Path = SPEECH, prefix: str = "/v1", **data: Any
) -> httpx.Response:
    with path.open("rb") as fh:
        return http.post(
            f"{prefix}/audio/transcriptions", files={"file": (path.name, fh)}, data=data
        )


@pytest.fixture(scope="module")
def reference(http: httpx.Client) -> dict[str, Any]:
    """The plain json answer for the speech clip: what every other variant must agree with."""
    response = post(http, model="whisper-1")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["text"], "the speech clip must give a non-empty transcript"
    return body


# -- request parsing --------------------------------------------------------------------------


def test_plain_request_gives_json_text(client: OpenAI, reference: dict[str, Any]) -> None:
    with SPEECH.open("rb") as fh:
        raw = client.audio.transcriptions.with_raw_response.create(file=fh, model="whisper-1")
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.request_id and raw.request_id == raw.headers["x-request-id"]
    result = raw.parse()
    assert isinstance(result, Transcription)
    assert result.text == reference["text"] == result.text.strip()
    assert result.usage is not None and result.usage.type == "duration"
    assert result.usage.seconds >= SPEECH_SECONDS


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_every_route_also_without_v1(
    http: httpx.Client, reference: dict[str, Any], prefix: str
) -> None:
    assert post(http, prefix=prefix).json() == reference


def test_file_part_first_or_last(http: httpx.Client, reference: dict[str, Any]) -> None:
    file_part = form_part("file", SPEECH.read_bytes(), "voice.wav", "audio/wav")
    fields = form_part("model", b"whisper-1") + form_part("response_format", b"json")
    url = "/v1/audio/transcriptions"
    first = http.post(url, content=form_body(file_part, fields), headers=MULTIPART_HEADERS)
    last = http.post(url, content=form_body(fields, file_part), headers=MULTIPART_HEADERS)
    assert first.status_code == last.status_code == 200
    assert first.json() == last.json() == reference


def test_file_part_without_content_type(http: httpx.Client, reference: dict[str, Any]) -> None:
    body = form_body(form_part("file", SPEECH.read_bytes(), "x.wav"))
    response = http.post("/v1/audio/transcriptions", content=body, headers=MULTIPART_HEADERS)
    assert response.status_code == 200 and response.json() == reference


@pytest.mark.parametrize(
    ("filename", "ctype"),
    [("upload", "application/octet-stream"), ("unknown_file", None), ("a.txt", "text/plain")],
)
def test_format_is_sniffed_not_named(
    http: httpx.Client, reference: dict[str, Any], filename: str, ctype: str | None
) -> None:
    file: tuple[Any, ...] = (filename, SPEECH.read_bytes()) + ((ctype,) if ctype else ())
    response = http.post("/v1/audio/transcriptions", files={"file": file})
    assert response.status_code == 200 and response.json() == reference


def test_gsm_is_sniffed_without_its_extension(http: httpx.Client) -> None:
    """GSM 06.10 has no container header; the probe still finds it from the frames."""
    data = (CORPUS_DIR / "edge_cases" / "espeak_03.gsm").read_bytes()
    named = http.post("/v1/audio/transcriptions", files={"file": ("voice.gsm", data)})
    anonymous = http.post("/v1/audio/transcriptions", files={"file": ("upload", data)})
    assert named.status_code == anonymous.status_code == 200
    assert named.json()["text"] and named.json() == anonymous.json()


def test_sdk_with_raw_bytes(client: OpenAI, reference: dict[str, Any]) -> None:
    result = client.audio.transcriptions.create(file=SPEECH.read_bytes(), model="gpt-4o-transcribe")
    assert result.text == reference["text"]


@pytest.fixture(scope="module")
def video_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AAC audio in an MP4 with a video track, as a phone recording would be."""
    target = tmp_path_factory.mktemp("video") / "clip.mp4"
    return media.with_video(target, audio.load_audio(SPEECH))


@pytest.mark.parametrize(
    ("name", "ctype"),
    [("clip.mp4", "video/mp4"), ("clip.mpeg", "video/mpeg")],
)
def test_video_containers_labelled_video(
    http: httpx.Client, video_mp4: Path, name: str, ctype: str
) -> None:
    response = http.post(
        "/v1/audio/transcriptions", files={"file": (name, video_mp4.read_bytes(), ctype)}
    )
    assert response.status_code == 200, response.text
    assert response.json()["text"]


@pytest.mark.parametrize(
    "name", ["pisets.opus", "pisets.ogg", "pisets.webm", "pisets.m4a", "pisets.mp3"]
)
def test_compressed_speech_formats(client: OpenAI, name: str) -> None:
    with (CORPUS_DIR / "edge_cases" / name).open("rb") as fh:
        result = client.audio.transcriptions.create(
            file=fh, model="whisper-1", response_format="verbose_json"
        )
    assert result.text
    assert abs(result.duration - SPEECH_SECONDS) < 0.2


def test_chunked_upload_without_content_length(
    http: httpx.Client, reference: dict[str, Any]
) -> None:
    body = form_body(
        form_part("file", SPEECH.read_bytes(), "a.wav"), form_part("model", b"whisper-1")
    )

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    response = http.post("/v1/audio/transcriptions", content=chunks(), headers=MULTIPART_HEADERS)
    assert "content-length" not in response.request.headers
    assert response.status_code == 200 and response.json() == reference


@pytest.mark.parametrize(
    "fields",
    [
        {"chunking_strategy": "auto"},  # 8
        {
            "chunking_strategy[type]": "server_vad",
            "chunking_strategy[threshold]": "0.5",
            "chunking_strategy[prefix_padding_ms]": "300",
        },
        {"stream": "false"},  # 9
        {"stream": "False"},
        {"temperature": "0"},
        {"temperature": "0.0"},
        {"temperature": "0.2"},
        {"temperature": "1e-05"},
        {"prompt": "", "language": ""},  # 10
        {"language": "auto"},
        {"language": "ru-RU"},  # 11
        {"language": "RU"},
        {"language": "ru"},
        {"vad_filter": "true", "foo[]": "x", "include[]": "logprobs"},  # 12
        {"model": "whisper-1"},  # 13
        {"model": "gpt-4o-transcribe"},
        {"model": ""},
        {"model": "v3_ctc"},
        {"model": "v3_rnnt"},  # allowed: the loaded model is used anyway
        {"timestamp_granularities[]": ["word", "segment"]},  # 35: ignored for json
    ],
)
def test_accepted_field_variants(
    http: httpx.Client, reference: dict[str, Any], fields: dict[str, Any]
) -> None:
    assert post(http, **fields).json() == reference


@pytest.mark.parametrize("language", ["en", "en-US", "kk", "russian"])
def test_a_language_the_russian_model_lacks_is_a_400_naming_it(
    http: httpx.Client, language: str
) -> None:
    """The v3 models transcribe Russian only: another language (or a name, not an ISO 639-1
    code, as OpenAI also refuses) cannot be honoured, so it is refused rather than ignored."""
    response = post(http, language=language)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "language" and error["code"] == "unsupported_value"
    assert "transcribes ru" in error["message"]


def test_unknown_query_parameters_are_ignored(
    http: httpx.Client, reference: dict[str, Any]
) -> None:
    with SPEECH.open("rb") as fh:
        response = http.post(
            "/v1/audio/transcriptions?api-version=2024&foo=bar", files={"file": ("a.wav", fh)}
        )
    assert response.json() == reference


def test_upload_over_the_limit_is_413(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.audio.transcriptions.create(
            file=("big.wav", b"\0" * (UPLOAD_LIMIT_MB * 1024 * 1024 + 1)), model="whisper-1"
        )
    assert info.value.status_code == 413
    assert info.value.request_id
    assert isinstance(info.value.body, dict) and "MAX_UPLOAD_MB" in info.value.body["message"]


def test_missing_file_names_the_param(http: httpx.Client) -> None:
    response = http.post(
        "/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"other": ("x", b"1")}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"


def test_bad_response_format_names_the_param(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(file=SPEECH, model="whisper-1", response_format="xml")  # type: ignore[call-overload]
    assert info.value.param == "response_format"


def metric(http: httpx.Client, family: str, **labels: str) -> float:
    text = http.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(family + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_junk_bytes_are_400_and_not_retried(server: Server, http: httpx.Client) -> None:
    before = metric(http, "gigaam_http_requests_total", route="/audio/transcriptions", status="400")
    with (
        OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=2) as retrying,
        pytest.raises(openai.BadRequestError) as info,
    ):
        retrying.audio.transcriptions.create(file=("upload", b"\x13\x37" * 4000), model="whisper-1")
    assert info.value.param == "file"
    after = metric(http, "gigaam_http_requests_total", route="/audio/transcriptions", status="400")
    assert after == before + 1  # one attempt: 4xx is not retried


def test_audio_over_max_audio_seconds_is_400(client: OpenAI) -> None:
    longform = CORPUS_DIR / "longform" / "longform_espeak_ru.wav"  # 81 s > MAX_AUDIO_SECONDS
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(file=longform, model="whisper-1")
    assert info.value.code == "audio_too_long" and info.value.param == "file"


def test_a_decoder_that_cannot_start_is_a_500_that_says_so(
    client: OpenAI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A broken install (PyAV not importable by the decoder worker) is the server's fault."""
    shadow = tmp_path / "av"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('no FFmpeg libraries here')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the app runs in this process
    audio.pool.close()
    mp3 = CORPUS_DIR / "edge_cases" / "pisets.mp3"  # a plain 16 kHz WAV needs no decoder
    with pytest.raises(openai.InternalServerError) as info:
        client.audio.transcriptions.create(file=mp3, model="whisper-1")
    assert info.value.status_code == 500
    assert "PyAV is not installed" in info.value.message
    assert info.value.code == "ffmpeg_missing"
    monkeypatch.delenv("PYTHONPATH")


def test_wrong_key_is_authentication_error(server: Server) -> None:
    with OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as info:
            bad.audio.transcriptions.create(file=SPEECH, model="whisper-1")
        assert info.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()


def test_unknown_model_is_400_model_not_found(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(file=SPEECH, model="whisper-9")
    assert info.value.code == "model_not_found" and info.value.param == "model"


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_translations_are_refused_clearly(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.translations.create(file=SPEECH, model="whisper-1")
    assert "Russian" in info.value.message


# -- non-streaming formats -----------------------------------------------------------------------

SRT_TIME = re.compile(r"^\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}$")
VTT_TIME = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d{3} --> \d{2}:\d{2}:\d{2}\.\d{3}$")


def clock(value: str) -> float:
    hours, minutes, rest = value.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


def test_text_format(client: OpenAI, http: httpx.Client, reference: dict[str, Any]) -> None:
    text = client.audio.transcriptions.create(
        file=SPEECH, model="whisper-1", response_format="text"
    )
    assert isinstance(text, str) and text == reference["text"] + "\n"
    raw = post(http, response_format="text")
    assert raw.headers["content-type"] == "text/plain; charset=utf-8"
    assert not raw.text.startswith('"')


@pytest.fixture(scope="module")
def verbose(client: OpenAI) -> TranscriptionVerbose:
    return client.audio.transcriptions.create(
        file=SPEECH,
        model="whisper-1",
        response_format="verbose_json",
        timestamp_granularities=["segment", "word"],
    )


def test_srt(client: OpenAI, http: httpx.Client, verbose: TranscriptionVerbose) -> None:
    srt = client.audio.transcriptions.create(file=SPEECH, model="whisper-1", response_format="srt")
    assert isinstance(srt, str)
    assert post(http, response_format="srt").headers["content-type"] == "text/plain; charset=utf-8"
    assert srt.endswith("\n\n") and "\r" not in srt
    cues = srt[:-2].split("\n\n")
    assert verbose.segments is not None and len(cues) == len(verbose.segments) > 0
    for number, (cue, segment) in enumerate(zip(cues, verbose.segments, strict=True), start=1):
        index, times, text = cue.split("\n", 2)
        assert int(index) == number
        assert SRT_TIME.match(times)
        start, end = times.split(" --> ")
        assert abs(clock(start) - segment.start) <= 0.001 and abs(clock(end) - segment.end) <= 0.001
        assert text.strip() and text == segment.text.strip()


def test_vtt(client: OpenAI, verbose: TranscriptionVerbose) -> None:
    vtt = client.audio.transcriptions.create(file=SPEECH, model="whisper-1", response_format="vtt")
    assert isinstance(vtt, str) and vtt.startswith("WEBVTT\n\n") and vtt.endswith("\n\n")
    cues = vtt[len("WEBVTT\n\n") : -2].split("\n\n")
    assert verbose.segments is not None and len(cues) == len(verbose.segments)
    for cue, segment in zip(cues, verbose.segments, strict=True):
        times, text = cue.split("\n", 1)  # no numeric identifier line
        assert VTT_TIME.match(times)
        start, end = times.split(" --> ")
        assert abs(clock(start) - segment.start) <= 0.001 and abs(clock(end) - segment.end) <= 0.001
        assert text == segment.text.strip()


def test_verbose_json(verbose: TranscriptionVerbose, reference: dict[str, Any]) -> None:
    assert verbose.language == "russian"
    assert isinstance(verbose.duration, float) and abs(verbose.duration - SPEECH_SECONDS) < 0.05
    assert verbose.text == reference["text"]
    assert getattr(verbose, "task", None) == "transcribe"
    assert verbose.segments and verbose.words
    previous_start = 0.0
    for index, segment in enumerate(verbose.segments):
        raw = segment.model_dump()
        assert set(raw) >= {
            "id",
            "seek",
            "start",
            "end",
            "text",
            "tokens",
            "temperature",
            "avg_logprob",
            "compression_ratio",
            "no_speech_prob",
        }
        assert segment.id == index and isinstance(segment.seek, int)
        assert isinstance(segment.tokens, list)
        for name in (
            "start",
            "end",
            "temperature",
            "avg_logprob",
            "compression_ratio",
            "no_speech_prob",
        ):
            assert isinstance(raw[name], float), name
        assert previous_start <= segment.start <= segment.end
        previous_start = segment.start
    assert "".join(s.text for s in verbose.segments).strip() == verbose.text
    previous = 0.0
    for word in verbose.words:
        assert word.word and 0.0 <= word.start <= word.end <= verbose.duration + 0.5
        assert word.start >= previous
        previous = word.start
    assert " ".join(w.word for w in verbose.words) == verbose.text


@pytest.mark.parametrize(
    ("granularities", "segments", "words"),
    [
        (None, True, False),
        (["segment"], True, False),
        (["word"], False, True),
        (["word", "segment"], True, True),
    ],
)
def test_granularities_choose_the_lists(
    http: httpx.Client, granularities: list[str] | None, segments: bool, words: bool
) -> None:
    fields: dict[str, Any] = {"response_format": "verbose_json"}
    if granularities:
        fields["timestamp_granularities[]"] = granularities
    body = post(http, **fields).json()
    assert ("segments" in body) is segments and ("words" in body) is words


def test_bare_granularity_name(http: httpx.Client) -> None:
    body = post(http, response_format="verbose_json", timestamp_granularities="word").json()
    assert "words" in body and "segments" not in body


def test_granularities_ignored_for_text(http: httpx.Client, reference: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"response_format": "text", "timestamp_granularities[]": "word"}
    response = post(http, **fields)
    assert response.status_code == 200 and response.text == reference["text"] + "\n"


def test_silence_gives_empty_text_everywhere(client: OpenAI) -> None:
    silence = CORPUS_DIR / "edge_cases" / "silence_digital_10s_16k.wav"
    assert client.audio.transcriptions.create(file=silence, model="whisper-1").text == ""
    verbose = client.audio.transcriptions.create(
        file=silence, model="whisper-1", response_format="verbose_json"
    )
    assert verbose.segments == [] and verbose.duration == pytest.approx(10.0, abs=0.01)
    assert (
        client.audio.transcriptions.create(file=silence, model="whisper-1", response_format="srt")
        == ""
    )


# -- streaming --------------------------------------------------------------------------------


def sse_blocks(text: str) -> list[str]:
    assert text.endswith("\n\n")
    return text[:-2].split("\n\n")


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_streaming_wire_format(http: httpx.Client, reference: dict[str, Any], fmt: str) -> None:
    response = post(http, stream="true", response_format=fmt)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-request-id"]
    events = []
    blocks = sse_blocks(response.text)
    assert blocks[-1] == "data: [DONE]"
    for block in blocks[:-1]:
        if block.startswith(":"):
            continue  # keep-alive comment
        assert block.startswith("data: ") and "\n" not in block
        events.append(json.loads(block[len("data: ") :]))
    types = [e["type"] for e in events]
    assert types[-1] == "transcript.text.done" and types.count("transcript.text.done") == 1
    assert set(types[:-1]) == {"transcript.text.delta"} and len(types) >= 2
    done = events[-1]
    assert "".join(e["delta"] for e in events[:-1]) == done["text"] == reference["text"]
    assert done["usage"] == reference["usage"]


def test_sdk_iterates_the_stream(client: OpenAI, reference: dict[str, Any]) -> None:
    stream = client.audio.transcriptions.create(file=SPEECH, model="gpt-4o-transcribe", stream=True)
    deltas, done = [], []
    for event in stream:
        if event.type == "transcript.text.delta":
            deltas.append(event.delta)
        elif event.type == "transcript.text.done":
            done.append(event.text)
    assert len(done) == 1 and "".join(deltas) == done[0] == reference["text"]


def test_stream_of_long_audio_equals_non_streaming(http: httpx.Client) -> None:
    long_file = CORPUS_DIR / "edge_cases" / "espeak_long_pause_30s_16k.wav"
    plain = post(http, long_file).json()
    streamed = post(http, long_file, stream="true").text
    events = [json.loads(b[6:]) for b in sse_blocks(streamed) if b.startswith("data: {")]
    deltas = [e["delta"] for e in events if e["type"] == "transcript.text.delta"]
    assert len(deltas) >= 2  # one per segment: both sentences, 30 s apart
    assert "".join(deltas) == events[-1]["text"] == plain["text"] != ""


@pytest.mark.parametrize("fmt", ["verbose_json", "srt", "vtt"])
def test_stream_flag_is_ignored_for_timestamped_formats(http: httpx.Client, fmt: str) -> None:
    streamed = post(http, stream="true", response_format=fmt)
    plain = post(http, response_format=fmt)
    assert streamed.status_code == 200 and not streamed.headers["content-type"].startswith(
        "text/event-stream"
    )
    assert streamed.text == plain.text


def test_bad_audio_before_the_stream_is_a_plain_400(server: Server, client: OpenAI) -> None:
    """The probe's verdict arrives within the first wait (the production keep-alive, 15 s,
    not this fixture's short one: on a loaded machine a decoder worker may be starting)."""
    ctx = server.app.state.ctx
    saved, ctx.keepalive_seconds = ctx.keepalive_seconds, 15.0
    try:
        with pytest.raises(openai.BadRequestError) as info:
            client.audio.transcriptions.create(
                file=("notsound.wav", b"this is not audio at all"),
                model="gpt-4o-transcribe",
                stream=True,
            )
    finally:
        ctx.keepalive_seconds = saved
    assert info.value.param == "file"


def test_error_after_the_stream_started(
    server: Server, client: OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When nothing came within the first wait, the stream (200) starts, so a failure found
    after that must arrive as an SSE error event.

    The junk upload's probe (where it is found not to be audio) is held at a gate until the
    client has the 200: the failure cannot beat the first wait, however loaded the machine.
    (A shorter wait alone raced the decoder worker's probe and lost now and then.)
    """
    gate = threading.Event()
    real_probe = audio_source.probe

    def held_probe(path: str | os.PathLike[str], **kwargs: Any) -> audio.AudioInfo:
        assert gate.wait(TIMEOUT), "the test never opened the gate"
        return real_probe(path, **kwargs)

    monkeypatch.setattr(audio_source, "probe", held_probe)
    try:
        stream = client.audio.transcriptions.create(
            file=("notsound.wav", b"this is not audio at all"),
            model="gpt-4o-transcribe",
            stream=True,
        )
        assert stream.response.status_code == 200
        gate.set()
        with pytest.raises(openai.APIError) as info:
            for _ in stream:
                pass
        assert isinstance(info.value.body, dict) and info.value.body["param"] == "file"
    finally:
        gate.set()


def test_keep_alive_comments_while_waiting(server: Server, http: httpx.Client) -> None:
    ctx = server.app.state.ctx
    saved, ctx.keepalive_seconds = ctx.keepalive_seconds, 0.001
    try:
        text = post(
            http, CORPUS_DIR / "edge_cases" / "espeak_long_pause_30s_16k.wav", stream="true"
        ).text
    finally:
        ctx.keepalive_seconds = saved
    blocks = sse_blocks(text)
    assert ": keep-alive" in blocks
    assert blocks[-1] == "data: [DONE]"


# -- models --------------------------------------------------------------------------------------


def test_models_via_sdk(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[:4] == ["v3_ctc", "v3_e2e_ctc", "v3_rnnt", "v3_e2e_rnnt"]
    assert {"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"} <= set(ids)
    model = client.models.retrieve("openai/whisper-large-v3")  # the SDK sends %2F
    assert model.id == "openai/whisper-large-v3" and isinstance(model.created, int)
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("nope")
    assert info.value.code == "model_not_found"


def test_health_when_loaded(http: httpx.Client) -> None:
    body = http.get("/health").json()
    assert body == {"status": "ok", "model": "v3_ctc", "device": "cpu", "loaded": True}


def test_metrics_count_audio_and_inference(http: httpx.Client) -> None:
    post(http)
    values = {}
    for line in http.get("/metrics").text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    assert values["gigaam_inference_batch_seconds_count"] >= 1
    assert values["gigaam_inference_chunks_total"] >= 1
    assert values["gigaam_audio_seconds_total"] >= SPEECH_SECONDS
    assert values["gigaam_realtime_factor_count"] >= 1
    assert values["gigaam_model_loaded"] == 1.0
    assert values["gigaam_queue_limit"] == 8


# -- every corpus edge case: 200 or a 4xx envelope, never 5xx, never a hang ----------------------


def corpus_files() -> list[Path]:
    files = []
    for folder in ("edge_cases", "pisets"):
        root = CORPUS_DIR / folder
        if root.is_dir():
            files += [p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".tsv"]
    return files


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_edge_cases(http: httpx.Client, path: Path) -> None:
    response = post(http, path, response_format="verbose_json")
    assert response.status_code in (200, 400, 413), response.text
    if response.status_code == 200:
        body = response.json()
        assert isinstance(body["text"], str) and body["duration"] >= 0
    else:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]


@pytest.mark.parametrize(
    "name", ["notsound.wav", "unknown_sound", "empty_mono.wav", "incorrect_sampling_freq.wav"]
)
def test_invalid_pisets_inputs_are_400(client: OpenAI, name: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(file=CORPUS_DIR / "pisets" / name, model="whisper-1")
    assert info.value.param == "file" and info.value.code


def test_speech_files_give_text(client: OpenAI) -> None:
    for path in (
        CORPUS_DIR / "pisets" / "test_sound_ru.wav",
        CORPUS_DIR / "edge_cases" / "stereo_phase_inverted_pisets_16k.wav",
    ):
        assert client.audio.transcriptions.create(file=path, model="whisper-1").text


def test_no_upload_is_left_behind(server: Server) -> None:
    """Runs last: after every outcome above (200s, 4xx, 413, errors mid-stream, 500), the
    upload folder is empty once the requests are over."""
    uploads: Path = server.app.state.ctx.tmp_dir
    wait_until(lambda: not list(uploads.iterdir()), "the upload folder to empty")
