"""The Wyoming door end to end: the real server (uvicorn + the Wyoming listener on loopback,
the real pipeline and ONNX model on the tiny golden v3_ctc checkpoint), driven by the
``wyoming`` library's client as Home Assistant drives it, and by a raw socket for bad input.

The golden model has random weights: its text is nonsense but deterministic, which is what
lets these tests require the Wyoming transcript to equal the HTTP one for the same audio.
Fairness is read from the scheduler's recorded serving order, never from wall-clock time.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from wyoming.client import AsyncClient, AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Info

from gigaam_api import __version__
from gigaam_api.loading import load_model_from_settings
from gigaam_api.scheduler import Scheduler
from gigaam_api.server import create_app
from gigaam_api.wyoming.info import GIGAAM_LICENCE_URL
from gigaam_api.wyoming.protocol import MAX_HEADER_BYTES, MAX_PAYLOAD_BYTES
from tests.api_server import free_port, real_model_settings, serve, tiled_wav
from tests.conftest import CORPUS_DIR
from tests.helpers import records_of, records_total
from tests.wyoming_client import (
    TIMEOUT,
    describe,
    parse_raw,
    pcm_of,
    raw_event,
    raw_exchange,
    resampled_wav,
    transcribe,
    utterance_events,
)

SPEECH = CORPUS_DIR / "pisets" / "test_sound_ru.wav"  # 3.2 s, 16 kHz mono
LONGER = CORPUS_DIR / "pisets" / "mono_sound.wav"  # 11.3 s, 16 kHz mono
MAX_SECONDS = 6.0
MAX_CLIENTS = 12
STALL_TIMEOUT = 1.5


@dataclass
class Server:
    url: str
    port: int
    app: FastAPI

    @property
    def scheduler(self) -> Scheduler[Any]:
        sched: Scheduler[Any] | None = self.app.state.ctx.service.scheduler
        assert sched is not None
        return sched

    @property
    def uploads(self) -> Path:
        path: Path = self.app.state.ctx.tmp_dir
        return path


def make_app(golden_dir: Path, factory: pytest.TempPathFactory, port: int, **extra: Any) -> FastAPI:
    values: dict[str, Any] = {
        "max_queue": 16,
        "batch_size": 1,
        "wyoming_uri": f"tcp://127.0.0.1:{port}",
        "wyoming_max_seconds": MAX_SECONDS,
        "wyoming_max_clients": MAX_CLIENTS,
        "wyoming_timeout": STALL_TIMEOUT,
        **extra,
    }
    settings = real_model_settings(golden_dir, factory.mktemp("models"), **values)
    return create_app(settings, keepalive_seconds=0.5, tmp_dir=factory.mktemp("uploads"))


@pytest.fixture(scope="module")
def server(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    app = make_app(golden_dir, tmp_path_factory, port)
    with serve(app) as url:
        assert app.state.ctx.service.wait_loaded(TIMEOUT), app.state.ctx.service.error
        app.state.ctx.service.scheduler.record_served()  # the serving order tests read
        yield Server(url, port, app)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def idle_afterwards(server: Server) -> Iterator[None]:
    """Every test leaves no connection, no admitted ticket and no recorded utterance behind."""
    yield
    wait_until(lambda: server.app.state.wyoming.connections == 0, "connections to close")
    wait_until(lambda: server.scheduler.active == 0, "tickets to be released")
    wait_until(lambda: not list(server.uploads.iterdir()), "utterance files to be removed")


def http_text(server: Server, path: Path, request_id: str | None = None) -> str:
    headers = {"x-request-id": request_id} if request_id else {}
    with path.open("rb") as fh:
        response = httpx.post(
            f"{server.url}/v1/audio/transcriptions",
            files={"file": (path.name, fh)},
            headers=headers,
            timeout=TIMEOUT,
        )
    assert response.status_code == 200, response.text
    text: str = response.json()["text"]
    return text


def metric(server: Server, name: str) -> float:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- describe ----------------------------------------------------------------------------------


def test_describe_reports_the_asr_program_and_model(server: Server) -> None:
    event = asyncio.run(describe(server.port))
    assert event.type == "info"
    info = Info.from_event(event)
    assert len(info.asr) == 1
    program = info.asr[0]
    assert program.name == "gigaam-api"
    assert program.description and "GigaAM" in program.description
    assert program.installed and program.version == __version__
    assert "GigaAM" in program.attribution.name and "Sber" in program.attribution.name
    assert program.attribution.url == GIGAAM_LICENCE_URL
    assert program.supports_transcript_streaming
    (model,) = program.models
    assert model.name == server.app.state.ctx.service.model.name
    assert model.languages == ["ru"] and model.installed
    assert model.attribution.url == GIGAAM_LICENCE_URL


# -- transcripts ---------------------------------------------------------------------------


def test_16k_mono_utterance_matches_http_and_streams(server: Server) -> None:
    expected = http_text(server, SPEECH)
    assert expected, "the speech clip must give a non-empty transcript"
    before = metric(server, 'gigaam_wyoming_utterances_total{outcome="ok"}')
    seconds_before = metric(server, "gigaam_wyoming_audio_seconds_total")

    reply = asyncio.run(transcribe(server.port, SPEECH))

    assert reply.error is None, reply.error
    assert reply.text == expected
    # the client library is >= 1.7: streaming events around the compatibility transcript
    assert reply.types[0] == "transcript-start" and reply.types[-2:] == [
        "transcript",
        "transcript-stop",
    ]
    chunks = [e.data["text"] for e in reply.events if e.type == "transcript-chunk"]
    assert chunks and "".join(chunks) == expected
    assert reply.events[-2].data.get("language") == "ru"
    rate, width, channels, frames = pcm_of(SPEECH)
    assert metric(server, 'gigaam_wyoming_utterances_total{outcome="ok"}') == before + 1
    added = metric(server, "gigaam_wyoming_audio_seconds_total") - seconds_before
    assert added == pytest.approx(len(frames) / (rate * width * channels))


def test_44k_stereo_utterance_matches_http(server: Server, tmp_path: Path) -> None:
    stereo = resampled_wav(SPEECH, tmp_path / "speech_44k_stereo.wav", 44100, 2)
    assert pcm_of(stereo)[:3] == (44100, 2, 2)
    reply = asyncio.run(transcribe(server.port, stereo))
    assert reply.error is None, reply.error
    # The same file over HTTP: both doors decode it with the same decoder (FFmpeg's resampler). (The
    # random-weight test model is not asked to be robust to resampling: its text for the
    # 44.1 kHz copy may differ from the 16 kHz original's.)
    assert reply.text == http_text(server, stereo)


def test_old_client_gets_only_the_transcript(server: Server) -> None:
    rate, width, channels, frames = pcm_of(SPEECH)
    fmt = {"rate": rate, "width": width, "channels": channels}
    sent = raw_event("transcribe", {"language": "ru"}, version="1.5.0")
    sent += raw_event("audio-start", fmt, version="1.5.0")
    for at in range(0, len(frames), 4096):
        sent += raw_event("audio-chunk", fmt, frames[at : at + 4096], version="1.5.0")
    sent += raw_event("audio-stop", {}, version="1.5.0")
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(sent)
        received = b""
        while b"\n" not in received or not parse_raw(received):
            received += sock.recv(65536)
    events = parse_raw(received)
    assert [e["type"] for e in events] == ["transcript"]
    assert events[0]["data"]["text"] == http_text(server, SPEECH)  # type: ignore[index]


def test_long_utterance_is_cut_with_a_warning(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    seconds_before = metric(server, "gigaam_wyoming_audio_seconds_total")
    with caplog.at_level(logging.WARNING, logger="gigaam_api.wyoming"):
        reply = asyncio.run(transcribe(server.port, LONGER))
    assert reply.error is None, reply.error
    assert reply.text  # what fitted was transcribed
    added = metric(server, "gigaam_wyoming_audio_seconds_total") - seconds_before
    assert added == pytest.approx(MAX_SECONDS)
    ours = [r for r in caplog.records if r.name == "gigaam_api.wyoming.handler"]
    assert any("WYOMING_MAX_SECONDS" in r.getMessage() for r in ours)
    assert ours and all(getattr(r, "wyoming_connection", None) for r in ours)


def test_audio_stop_without_audio_gives_an_empty_transcript(server: Server) -> None:
    async def run() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            events = await utterance_events(SPEECH)
            await client.write_event(events[1])  # audio-start
            await client.write_event(events[-1])  # audio-stop
            got = []
            while not got or got[-1].type != "transcript-stop":
                event = await client.read_event()
                assert event is not None
                got.append(event)
            return got

    events = asyncio.run(run())
    assert [e.type for e in events] == ["transcript-start", "transcript", "transcript-stop"]
    assert events[1].data["text"] == ""


# -- bad input -----------------------------------------------------------------------------

FMT = {"rate": 16000, "width": 2, "channels": 1}
START = raw_event("audio-start", FMT)
CHUNK = raw_event("audio-chunk", FMT, b"\x00\x01" * 800)

BAD_INPUTS = {
    "malformed json": b"{not json\n",
    "json that is not an object": b"[1, 2, 3]\n",
    "no type": raw_event("", {}),
    "data not an object": b'{"type": "describe", "data": [1]}\n',
    "header too long": b'{"type": "describe", "data": {"x": "' + b"a" * MAX_HEADER_BYTES + b'"}}\n',
    "payload too large": raw_event("audio-chunk", FMT, payload_length=MAX_PAYLOAD_BYTES + 1),
    "negative length": raw_event("describe", {}, data_length=-5),
    "length not a number": raw_event("describe", {}, payload_length="12"),
    "bad additional data": raw_event("describe", {}, data_length=5) + b"nope!",
    "chunk before audio-start": CHUNK,
    "stop before audio-start": raw_event("audio-stop", {}),
    "audio-start twice": START + START,
    "transcribe mid-utterance": START + raw_event("transcribe", {}),
    "chunk format differs from start": START
    + raw_event("audio-chunk", {**FMT, "rate": 22050}, b"\x00\x00" * 10),
    "chunk of half a frame": START + raw_event("audio-chunk", FMT, b"\x00\x00\x00"),
    "unsupported rate": raw_event("audio-start", {**FMT, "rate": 1_000_000}),
    "width missing": raw_event("audio-start", {"rate": 16000, "channels": 1}),
    "stall mid-utterance": START + CHUNK,
    "payload shorter than announced": START
    + raw_event("audio-chunk", FMT, payload_length=4000)
    + b"\x00" * 100,
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gets_an_error_and_the_next_client_is_served(server: Server, name: str) -> None:
    events = raw_exchange(server.port, BAD_INPUTS[name])
    # the server answered with an error event and closed (raw_exchange returns at close)
    assert [e["type"] for e in events] == ["error"], events
    assert events[0]["data"]["code"]  # type: ignore[index]
    assert asyncio.run(describe(server.port)).type == "info"


def test_unknown_event_gets_an_error_and_the_connection_goes_on(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(raw_event("frobnicate", {"x": 1}) + raw_event("describe"))
        received = b""
        while len(parse_raw(received)) < 2:
            received += sock.recv(65536)
    events = parse_raw(received)
    assert [e["type"] for e in events] == ["error", "info"]
    assert events[0]["data"]["code"] == "unsupported_event"  # type: ignore[index]


def test_client_cap_refuses_extra_connections(server: Server) -> None:
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(MAX_CLIENTS)]
    try:
        wait_until(
            lambda: server.app.state.wyoming.connections == MAX_CLIENTS, "all connections held"
        )
        events = raw_exchange(server.port, b"")
        assert [e["type"] for e in events] == ["error"]
        assert events[0]["data"]["code"] == "too_many_clients"  # type: ignore[index]
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: server.app.state.wyoming.connections == 0, "held connections to close")
    assert asyncio.run(describe(server.port)).type == "info"


# -- sharing the worker --------------------------------------------------------------------


def test_wyoming_and_http_share_the_worker_fairly(
    server: Server, corpus_dir: Path, tmp_path: Path
) -> None:
    long_wav = tiled_wav(
        corpus_dir / "longform" / "longform_espeak_ru.wav", tmp_path / "l.wav", 240
    )
    expected = http_text(server, SPEECH)
    results: dict[str, str] = {}

    def long_request() -> None:
        results["long"] = http_text(server, long_wav, "long-fair")

    def short_request(index: int) -> None:
        results[f"http-{index}"] = http_text(server, SPEECH, f"short-http-{index}")

    def served(prefix: str) -> int:
        return sum(1 for b in records_of(server.scheduler) if b.request_id.startswith(prefix))

    start_mark = records_total(server.scheduler)
    runner = threading.Thread(target=long_request)
    runner.start()
    wait_until(lambda: served("long-fair") >= 2, "the long request to be under way", TIMEOUT)

    async def wyoming_clients() -> list[str]:
        replies = await asyncio.gather(*(transcribe(server.port, SPEECH) for _ in range(10)))
        return [r.text for r in replies]

    http_threads = [threading.Thread(target=short_request, args=(i,)) for i in range(2)]
    for thread in http_threads:
        thread.start()
    wyoming_texts = asyncio.run(wyoming_clients())
    for thread in http_threads:
        thread.join(TIMEOUT)
    runner.join(TIMEOUT)

    assert wyoming_texts == [expected] * 10
    assert results["http-0"] == results["http-1"] == expected and results["long"]
    served_now = records_of(server.scheduler)
    order = served_now[len(served_now) - (records_total(server.scheduler) - start_mark) :]
    shorts = [b for b in order if b.request_id.startswith(("wyoming-", "short-http-"))]
    assert len([b for b in shorts if b.request_id.startswith("wyoming-")]) == 10
    assert len([b for b in shorts if b.request_id.startswith("short-http-")]) == 2
    # Round-robin: a short request waits behind at most one batch of every other request
    # (12 short ones and the long one), never behind the rest of the long file.
    assert all(b.waited <= 12 for b in shorts), [(b.request_id, b.waited) for b in shorts]
    first = next(i for i, b in enumerate(order) if b in shorts)
    last = max(i for i, b in enumerate(order) if b in shorts)
    assert any(b.request_id == "long-fair" for b in order[:first])
    assert any(b.request_id == "long-fair" for b in order[last + 1 :])


# -- shutdown ------------------------------------------------------------------------------


def test_shutdown_with_clients_connected(
    golden_dir: Path, tmp_path_factory: pytest.TempPathFactory, server: Server
) -> None:
    port = free_port()
    app = make_app(golden_dir, tmp_path_factory, port, wyoming_timeout=60.0)
    closed: list[bytes] = []
    with serve(app) as _url:
        assert app.state.ctx.service.wait_loaded(TIMEOUT)
        idle = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        recording = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        recording.sendall(START + CHUNK)
        wait_until(lambda: app.state.wyoming.connections == 2, "both clients connected")
    # serve() returned: uvicorn ran the lifespan shutdown and its thread ended
    assert app.state.wyoming.connections == 0
    for sock in (idle, recording):
        sock.settimeout(10)
        with sock:
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            closed.append(data)
    assert len(closed) == 2  # both saw the connection end (EOF), neither hung
    # the half-recorded utterance is gone: the server's own upload folder is removed at stop
    assert not app.state.ctx.tmp_dir.exists()
    assert app.state.ctx.service.state == "stopped"


class GatedModel:
    """The real model, paused at the start of every batch until ``gate`` opens.

    It holds an utterance on the worker for as long as the test needs: a tiny model would
    otherwise finish a ten-minute utterance before shutdown could reach it.
    """

    def __init__(self, model: Any) -> None:
        self._model = model
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def transcribe(self, waves: Any, language: Any = None) -> Any:
        self.entered.set()
        self.gate.wait(TIMEOUT)
        return self._model.transcribe(waves, language)


def test_shutdown_cancels_an_utterance_being_transcribed(
    golden_dir: Path, tmp_path_factory: pytest.TempPathFactory, server: Server, corpus_dir: Path
) -> None:
    """An utterance is on the worker when the server stops: the connection ends, no further
    batch runs for it, its ticket and file are released, and the worker stops."""
    long_wav = tiled_wav(
        corpus_dir / "longform" / "longform_espeak_ru.wav",
        tmp_path_factory.mktemp("long") / "long.wav",
        120,
    )
    mono = resampled_wav(long_wav, tmp_path_factory.mktemp("mono") / "long_mono.wav", 16000, 1)
    port = free_port()
    gated: list[GatedModel] = []

    def loader(settings: Any) -> Any:
        gated.append(GatedModel(load_model_from_settings(settings)))
        return gated[0]

    values: dict[str, Any] = {
        "max_queue": 4,
        "batch_size": 1,
        "wyoming_uri": f"tcp://127.0.0.1:{port}",
        "wyoming_max_seconds": 600.0,
    }
    settings = real_model_settings(golden_dir, tmp_path_factory.mktemp("models"), **values)
    app = create_app(settings, loader=loader, tmp_dir=tmp_path_factory.mktemp("uploads"))
    replies: list[object] = []

    def client() -> None:
        try:
            replies.append(asyncio.run(transcribe(port, mono)))
        except (AssertionError, ConnectionError) as exc:  # closed before a transcript
            replies.append(exc)

    def open_gate_once_disconnected() -> None:
        wait_until(lambda: app.state.wyoming.connections == 0, "the connection to end", TIMEOUT)
        gated[0].gate.set()

    with serve(app):
        assert app.state.ctx.service.wait_loaded(TIMEOUT)
        sched = app.state.ctx.service.scheduler
        sched.record_served()
        runner = threading.Thread(target=client)
        runner.start()
        assert gated[0].entered.wait(TIMEOUT), "the utterance never reached the worker"
        opener = threading.Thread(target=open_gate_once_disconnected)
        opener.start()
    runner.join(TIMEOUT)
    opener.join(TIMEOUT)
    assert not runner.is_alive() and not opener.is_alive()
    served = [b for b in records_of(sched) if b.request_id.startswith("wyoming-")]
    assert len(served) <= 1  # the batch held at the gate at most: nothing after the stop
    assert len(replies) == 1 and isinstance(replies[0], AssertionError | ConnectionError)
    assert app.state.wyoming.connections == 0 and sched.active == 0
    assert app.state.ctx.service.state == "stopped"
    assert not app.state.ctx.tmp_dir.exists()  # removed, with every utterance, at stop


def test_unix_socket_uri(
    golden_dir: Path, tmp_path_factory: pytest.TempPathFactory, server: Server
) -> None:
    socket_path = tmp_path_factory.mktemp("sock") / "wyoming.sock"
    settings = real_model_settings(
        golden_dir, tmp_path_factory.mktemp("models"), wyoming_uri=f"unix://{socket_path}"
    )
    app = create_app(settings, tmp_dir=tmp_path_factory.mktemp("uploads"))

    async def describe_unix() -> Event | None:
        async with AsyncClient.from_uri(f"unix://{socket_path}") as client:
            await client.write_event(Event(type="describe"))
            return await asyncio.wait_for(client.read_event(), TIMEOUT)

    with serve(app):
        event = asyncio.run(describe_unix())
    assert event is not None and event.type == "info"
    assert not socket_path.exists()  # removed on shutdown


def test_busy_and_loading_servers_answer_with_error_events(
    golden_dir: Path, tmp_path_factory: pytest.TempPathFactory, server: Server
) -> None:
    """While the model loads, describe works and an utterance gets ``model_not_loaded``; with
    ``MAX_QUEUE`` taken by an HTTP request, an utterance gets ``server_busy``; afterwards the
    same server transcribes normally."""
    port = free_port()
    may_load = threading.Event()
    gated: list[GatedModel] = []

    def loader(settings: Any) -> Any:
        may_load.wait(TIMEOUT)
        gated.append(GatedModel(load_model_from_settings(settings)))
        gated[0].gate.set()  # open until the test closes it
        return gated[0]

    values: dict[str, Any] = {"max_queue": 1, "wyoming_uri": f"tcp://127.0.0.1:{port}"}
    settings = real_model_settings(golden_dir, tmp_path_factory.mktemp("models"), **values)
    app = create_app(settings, loader=loader, tmp_dir=tmp_path_factory.mktemp("uploads"))
    with serve(app) as url:
        info = Info.from_event(asyncio.run(describe(port)))
        assert info.asr[0].models[0].languages == ["ru"]  # answered while loading
        reply = asyncio.run(transcribe(port, SPEECH))
        assert reply.error is not None and reply.error.data["code"] == "model_not_loaded"

        may_load.set()
        assert app.state.ctx.service.wait_loaded(TIMEOUT)
        model = gated[0]
        model.gate.clear()
        model.entered.clear()
        holder: list[httpx.Response] = []

        def hold_the_queue() -> None:
            with SPEECH.open("rb") as fh:
                holder.append(
                    httpx.post(
                        f"{url}/v1/audio/transcriptions", files={"file": fh}, timeout=TIMEOUT
                    )
                )

        thread = threading.Thread(target=hold_the_queue)
        thread.start()
        assert model.entered.wait(TIMEOUT)
        reply = asyncio.run(transcribe(port, SPEECH))
        assert reply.error is not None and reply.error.data["code"] == "server_busy"
        model.gate.set()
        thread.join(TIMEOUT)
        assert holder and holder[0].status_code == 200
        reply = asyncio.run(transcribe(port, SPEECH))
        assert reply.error is None and reply.text == holder[0].json()["text"]
