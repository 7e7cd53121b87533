"""The live door end to end: a real uvicorn server on the tiny golden v3_ctc checkpoint,
driven over real WebSockets by a plain client (``websockets``) and by the official ``openai``
SDK's realtime clients (GA and beta), with the real VAD, pipeline and scheduler.

The golden model has random weights: its text is nonsense but deterministic, which is what
lets every test require a turn's final text to equal what ``POST /v1/audio/transcriptions``
answers for exactly that turn's audio (cut from what was sent at the turn's
``audio_start_ms``/``audio_end_ms``). Interim work is read from the scheduler's recorded
serving order, never from wall-clock time.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gigaam_api.audio.g711 import expand
from gigaam_api.scheduler import Scheduler
from gigaam_api.server import create_app
from tests.api_server import real_model_settings, serve
from tests.conftest import CORPUS_DIR
from tests.helpers import wait_until
from tests.realtime_client import (
    TIMEOUT,
    Event,
    LiveClient,
    http_text,
    live,
    pcm_at,
    silence,
    turn_audio,
    wav_bytes,
)

SPEECH = CORPUS_DIR / "pisets" / "test_sound_ru.wav"  # 3.2 s
LONGER = CORPUS_DIR / "pisets" / "mono_sound.wav"  # 11.3 s
RATE = 24000
COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"
MESSAGE_KB = 256
KEY = "sekret-key"


@dataclass
class Server:
    url: str
    app: FastAPI

    @property
    def scheduler(self) -> Scheduler[Any]:
        sched: Scheduler[Any] | None = self.app.state.ctx.service.scheduler
        assert sched is not None
        return sched


def _server(golden_dir: Path, factory: pytest.TempPathFactory, **extra: Any) -> Iterator[Server]:
    values: dict[str, Any] = {
        "max_queue": 16,
        "batch_size": 1,
        "realtime_interim_seconds": 0.2,
        "realtime_max_message_kb": MESSAGE_KB,
        **extra,
    }
    settings = real_model_settings(golden_dir, factory.mktemp("models"), **values)
    app = create_app(settings, keepalive_seconds=0.5, tmp_dir=factory.mktemp("uploads"))
    with serve(app) as url:
        assert app.state.ctx.service.wait_loaded(TIMEOUT), app.state.ctx.service.error
        app.state.ctx.service.scheduler.record_served()
        yield Server(url, app)


@pytest.fixture(scope="module")
def server(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(golden_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def guarded(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a key, one allowed foreign origin, one session at most, a short idle."""
    yield from _server(
        golden_dir,
        tmp_path_factory,
        api_key=KEY,
        allowed_origins="https://app.example",
        realtime_max_sessions=1,
        realtime_idle_timeout=1.5,
    )


def _idle(server: Server) -> None:
    wait_until(lambda: server.app.state.realtime.open == 0, "live sessions to close")
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("live-")],
        "live threads to end",
    )
    wait_until(lambda: server.scheduler.active == 0, "tickets to be released")


@pytest.fixture(autouse=True)
def idle_afterwards(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test leaves no session, no session thread and no admitted ticket behind."""
    yield
    for name in ("server", "guarded"):
        if name in request.fixturenames:
            _idle(request.getfixturevalue(name))


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("audio")
    return {
        "speech": pcm_at(SPEECH, RATE, tmp),
        "longer": pcm_at(LONGER, RATE, tmp),
        "speech16": pcm_at(SPEECH, 16000, tmp),
        "speech8": pcm_at(SPEECH, 8000, tmp),
    }


def _turns(events: list[Event]) -> dict[str, tuple[int, int]]:
    starts = {e["item_id"]: e["audio_start_ms"] for e in events if e["type"].endswith("started")}
    return {
        e["item_id"]: (starts[e["item_id"]], e["audio_end_ms"])
        for e in events
        if e["type"] == "input_audio_buffer.speech_stopped"
    }


def _completed(client: LiveClient, count: int) -> list[Event]:
    events: list[Event] = []
    while sum(1 for e in events if e["type"] == COMPLETED) < count:
        events += client.until_type(COMPLETED)
    return events


def _check_finals_equal_http(
    url: str, events: list[Event], sent: bytes, rate: int = RATE
) -> list[str]:
    turns = _turns(events)
    texts = []
    for event in events:
        if event["type"] != COMPLETED:
            continue
        start, end = turns[event["item_id"]]
        expected = http_text(url, wav_bytes(turn_audio(sent, rate, start, end), rate))
        assert event["transcript"] == expected
        assert event["usage"] == {"type": "duration", "seconds": round((end - start) / 1000, 3)}
        texts.append(event["transcript"])
    return texts


# -- turns, finals, interim text ----------------------------------------------------------------


def test_vad_turns_give_the_http_text_of_each_turn(server: Server, audio: dict[str, bytes]) -> None:
    sent = audio["longer"] + silence(1.5, RATE) + audio["speech"] + silence(1.5, RATE)
    with live(server.url) as client:
        created = client.next()
        assert created["type"] == "session.created"
        assert created["session"]["type"] == "transcription"
        client.append(sent)
        events = _completed(client, 2)
    kinds = [e["type"] for e in events]
    assert kinds.count("input_audio_buffer.speech_started") == 2
    assert kinds.count("input_audio_buffer.committed") == 2
    texts = _check_finals_equal_http(server.url, events, sent)
    assert all(texts)
    committed = [e for e in events if e["type"] == "input_audio_buffer.committed"]
    assert committed[0]["previous_item_id"] is None
    assert committed[1]["previous_item_id"] == committed[0]["item_id"]
    for event in events:
        assert event["event_id"].startswith("event_")


def test_interim_deltas_arrive_while_a_turn_is_spoken(
    server: Server, audio: dict[str, bytes]
) -> None:
    log = server.scheduler.record_served()
    before = log.total
    sent = audio["longer"] + silence(1.5, RATE)
    step = RATE * 2 // 5  # 200 ms of audio…
    with live(server.url) as client:
        client.next()
        for start in range(0, len(sent), step * 2):
            client.append(sent[start : start + step * 2], chunk=step * 2)
            time.sleep(0.1)  # …every 50 ms: four times real time
        events = _completed(client, 1)
    interim = [r for r in log.records[-(log.total - before) :] if r.interim]
    assert interim, "the open turn was re-recognised as interim work"
    assert _metric(server, 'gigaam_live_recognitions_total{kind="interim",outcome="ok"}') > 0
    item = next(e["item_id"] for e in events if e["type"] == COMPLETED)
    deltas = [e for e in events if e["type"] == DELTA and e["item_id"] == item]
    assert deltas
    stopped = next(
        i for i, e in enumerate(events) if e["type"] == "input_audio_buffer.speech_stopped"
    )
    assert any(events.index(d) < stopped for d in deltas), "a delta came while speaking"
    _check_finals_equal_http(server.url, events, sent)


def test_a_turn_longer_than_the_model_window_is_cut_at_pauses(
    server: Server, audio: dict[str, bytes]
) -> None:
    sent = audio["longer"] * 3 + silence(1.5, RATE)  # 34 s of speech, no silence between
    limit_ms = round(server.app.state.ctx.settings.vad_max_duration * 1000)
    with live(server.url) as client:
        client.next()
        client.append(sent)
        events = client.events_until(
            lambda e: e["type"] == COMPLETED and e["item_id"] == last_item(client.received)
        )
    turns = _turns(events)
    assert len(turns) >= 2
    ranges = sorted(turns.values())
    for (start, end), (next_start, _) in itertools.pairwise(ranges):
        assert end - start <= limit_ms
        assert next_start == end  # cut: the speech goes on as the next turn at once
    _check_finals_equal_http(server.url, events, sent)


def last_item(events: list[Event]) -> str | None:
    """The item of the last turn, once its speech has stopped after the audio's end."""
    stopped = [e for e in events if e["type"] == "input_audio_buffer.speech_stopped"]
    started = [e for e in events if e["type"] == "input_audio_buffer.speech_started"]
    if not stopped or len(stopped) < len(started):
        return None
    item: str = stopped[-1]["item_id"]
    return item


def test_turn_detection_can_be_switched_off_and_on(server: Server, audio: dict[str, bytes]) -> None:
    off = {"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}}
    on = {
        "type": "session.update",
        "session": {"audio": {"input": {"turn_detection": {"type": "server_vad"}}}},
    }
    with live(server.url) as client:
        client.next()
        client.send(off)
        client.next()
        client.append(audio["speech"])
        client.send({"type": "input_audio_buffer.commit"})
        manual = client.until_type(COMPLETED)
        client.send(on)
        assert client.next()["type"] == "session.updated"
        client.append(silence(0.5, RATE) + audio["speech"] + silence(1.5, RATE))
        detected = client.until_type(COMPLETED)
    assert manual[-1]["transcript"] == http_text(server.url, wav_bytes(audio["speech"], RATE))
    assert "input_audio_buffer.speech_started" in [e["type"] for e in detected]


def test_idle_timeout_of_turn_detection(server: Server) -> None:
    detection = {"type": "server_vad", "idle_timeout_ms": 1000}
    with live(server.url) as client:
        client.next()
        client.send(
            {
                "type": "session.update",
                "session": {"audio": {"input": {"turn_detection": detection}}},
            }
        )
        updated = client.next()
        assert updated["session"]["audio"]["input"]["turn_detection"]["idle_timeout_ms"] == 1000
        client.append(silence(2.5, RATE))
        events = client.until_type("input_audio_buffer.timeout_triggered")
    assert (events[-1]["audio_start_ms"], events[-1]["audio_end_ms"]) == (0, 1024)


def test_interim_deltas_with_client_commits(server: Server, audio: dict[str, bytes]) -> None:
    sent = audio["longer"]
    step = RATE * 2 // 5
    with live(server.url) as client:
        client.next()
        client.send(
            {"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}}
        )
        client.next()
        for start in range(0, len(sent), step * 2):
            client.append(sent[start : start + step * 2], chunk=step * 2)
            time.sleep(0.1)
        client.send({"type": "input_audio_buffer.commit"})
        events = client.until_type(COMPLETED)
    committed = next(e for e in events if e["type"] == "input_audio_buffer.committed")
    deltas = [e for e in client.received if e["type"] == DELTA]
    assert deltas and all(d["item_id"] == committed["item_id"] for d in deltas)
    assert client.received.index(deltas[0]) < client.received.index(committed)
    expected = http_text(server.url, wav_bytes(sent, RATE))
    assert events[-1]["transcript"] == expected


def _metric(server: Server, name: str) -> float:
    for line in httpx.get(f"{server.url}/metrics", timeout=TIMEOUT).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_client_commits_without_vad(server: Server, audio: dict[str, bytes]) -> None:
    with live(server.url) as client:
        client.next()
        client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "transcription",
                    "audio": {
                        "input": {
                            "format": {"type": "audio/pcm", "rate": 16000},
                            "turn_detection": None,
                            "transcription": {"model": "gpt-4o-transcribe", "language": "ru"},
                        }
                    },
                },
            }
        )
        updated = client.next()
        assert updated["type"] == "session.updated"
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        texts = []
        for piece in (audio["speech16"], audio["speech16"][: 16000 * 2]):
            client.append(piece)
            client.send({"type": "input_audio_buffer.commit"})
            events = client.until_type(COMPLETED)
            expected = http_text(server.url, wav_bytes(piece, 16000), language="ru")
            assert [e["type"] for e in events] == ["input_audio_buffer.committed", DELTA, COMPLETED]
            assert events[1]["delta"] == events[-1]["transcript"] == expected
            texts.append(expected)
        client.append(audio["speech16"])
        client.send({"type": "input_audio_buffer.clear"})
        assert client.next()["type"] == "input_audio_buffer.cleared"
        client.send({"type": "input_audio_buffer.commit", "event_id": "evt_1"})
        error = client.next()
        assert error["type"] == "error"
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"


def _commit_session(keywords: list[str] | None) -> dict[str, Any]:
    transcription: dict[str, Any] = {"model": "gpt-4o-transcribe", "language": "ru"}
    if keywords is not None:
        transcription["keywords"] = keywords
    return {
        "type": "session.update",
        "session": {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 16000},
                    "turn_detection": None,
                    "transcription": transcription,
                }
            },
        },
    }


def test_session_keywords_reach_the_decoder(server: Server, audio: dict[str, bytes]) -> None:
    """``audio.input.transcription.keywords`` is read as the HTTP field is: a phrase boosted
    hard enough is written into this random model's text (the README's failure mode, used as
    proof the list reached the beam search), and the turn's text equals the HTTP answer with
    the same keywords; clearing the list brings the greedy text back."""
    phrase, strong = "саш", "саш:9"  # as tests/test_keywords_api.py measured on this model
    wav = wav_bytes(audio["speech16"], 16000)
    plain = http_text(server.url, wav, language="ru")
    boosted = http_text(server.url, wav, language="ru", **{"keywords[]": strong})
    assert phrase not in plain.split() and phrase in boosted.split(), (plain, boosted)
    with live(server.url) as client:
        client.next()
        texts = []
        for keywords in ([strong], None, []):
            client.send(_commit_session(keywords))
            updated = client.next()
            assert updated["type"] == "session.updated", updated
            client.append(audio["speech16"])
            client.send({"type": "input_audio_buffer.commit"})
            texts.append(client.until_type(COMPLETED)[-1]["transcript"])
    assert texts == [boosted, boosted, plain]  # an update without the field keeps the list


@pytest.mark.parametrize(
    ("keywords", "needle"),
    [(["саш", "Moscow"], "'Moscow'"), (["саш:99"], "boost"), (["x" * 65], "64")],
)
def test_session_keywords_are_checked(
    server: Server, audio: dict[str, bytes], keywords: list[str], needle: str
) -> None:
    with live(server.url) as client:
        client.next()
        client.send(_commit_session(keywords))
        error = client.next()
        assert error["type"] == "error", error
        assert error["error"]["param"] == "session.audio.input.transcription.keywords", error
        assert needle in error["error"]["message"], error
        client.send(_commit_session(None))  # the session goes on, without the refused list
        updated = client.next()
        assert updated["type"] == "session.updated"
        assert "keywords" not in updated["session"]["audio"]["input"]["transcription"]


def test_beta_names_and_g711(server: Server, audio: dict[str, bytes]) -> None:
    ulaw = _ulaw(audio["speech8"])
    with live(server.url, headers={"OpenAI-Beta": "realtime=v1"}) as client:
        assert client.next()["type"] == "transcription_session.created"
        client.send(
            {
                "type": "transcription_session.update",
                "session": {
                    "input_audio_format": "g711_ulaw",
                    "input_audio_transcription": {"model": "whisper-1", "language": "ru"},
                    "turn_detection": None,
                },
            }
        )
        updated = client.next()
        assert updated["type"] == "transcription_session.updated"
        assert updated["session"]["input_audio_format"] == "g711_ulaw"
        client.append(ulaw)
        client.send({"type": "input_audio_buffer.commit"})
        events = client.until_type(COMPLETED)
    expected = http_text(server.url, wav_bytes(expand(ulaw, "ulaw"), 8000), language="ru")
    assert events[-1]["transcript"] == expected


def _ulaw(pcm16: bytes) -> bytes:
    """16-bit PCM → μ-law by the inverse of the decoder's table (nearest code)."""
    import numpy as np

    table = np.frombuffer(expand(bytes(range(256)), "ulaw"), dtype="<i2").astype(np.int32)
    order = np.argsort(table)
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.int32)
    index = np.clip(np.searchsorted(table[order], samples), 0, 255)
    return order[index].astype(np.uint8).tobytes()


def test_sixteen_sessions_at_once_stay_correct(server: Server, audio: dict[str, bytes]) -> None:
    sent = audio["speech"] + silence(1.0, RATE)
    expected = http_text(server.url, wav_bytes(sent, RATE))
    results: list[list[Event]] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            with live(server.url) as client:
                client.next()
                client.send(
                    {
                        "type": "session.update",
                        "session": {
                            "type": "transcription",
                            "audio": {"input": {"turn_detection": None}},
                        },
                    }
                )
                client.next()
                client.append(sent)
                client.send({"type": "input_audio_buffer.commit"})
                results.append(client.until_type(COMPLETED))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)
    assert not errors, errors
    assert [events[-1]["transcript"] for events in results] == [expected] * 16


# -- the official SDK ---------------------------------------------------------------------------


def test_openai_sdk_ga_client(server: Server, audio: dict[str, bytes]) -> None:
    from openai import AsyncOpenAI

    sent = audio["speech"] + silence(1.5, RATE) + audio["speech"] + silence(1.5, RATE)

    async def run() -> list[Any]:
        client = AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused")
        events = []
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
            await conn.session.update(
                session={
                    "type": "transcription",
                    "audio": {
                        "input": {
                            "format": {"type": "audio/pcm", "rate": 24000},
                            "transcription": {"model": "gpt-4o-transcribe", "language": "ru"},
                            "turn_detection": {
                                "type": "server_vad",
                                "threshold": 0.5,
                                "prefix_padding_ms": 300,
                                "silence_duration_ms": 500,
                            },
                        }
                    },
                }
            )
            for start in range(0, len(sent), 48000):
                await conn.input_audio_buffer.append(
                    audio=base64.b64encode(sent[start : start + 48000]).decode()
                )
            done = 0
            async for event in conn:
                events.append(event)
                done += event.type == COMPLETED
                if done == 2:
                    break
        return events

    events = asyncio.run(asyncio.wait_for(run(), TIMEOUT))
    types = [e.type for e in events]
    assert types[:2] == ["session.created", "session.updated"]
    dicts = [e.model_dump() for e in events]
    _check_finals_equal_http(server.url, dicts, sent)


def test_openai_sdk_beta_client(server: Server, audio: dict[str, bytes]) -> None:
    from openai import AsyncOpenAI

    sent = audio["speech"]

    async def run() -> list[Any]:
        client = AsyncOpenAI(
            base_url=f"{server.url}/v1",
            websocket_base_url=server.url.replace("http://", "ws://") + "/v1",
            api_key="unused",
        )
        events = []
        async with client.beta.realtime.connect(
            model="gpt-4o-transcribe", extra_query={"intent": "transcription"}
        ) as conn:
            await conn.transcription_session.update(
                session={
                    "input_audio_format": "pcm16",
                    "input_audio_transcription": {"model": "gpt-4o-transcribe"},
                    "turn_detection": None,  # type: ignore[typeddict-item]
                }
            )
            await conn.input_audio_buffer.append(audio=base64.b64encode(sent).decode())
            await conn.input_audio_buffer.commit()
            async for event in conn:
                events.append(event)
                if event.type == COMPLETED:
                    break
        return events

    events = asyncio.run(asyncio.wait_for(run(), TIMEOUT))
    assert events[0].type == "transcription_session.created"
    assert events[1].type == "transcription_session.updated"
    assert events[-1].transcript == http_text(server.url, wav_bytes(sent, RATE))


# -- bad input: an error event, the session goes on ------------------------------------------


BAD_EVENTS: list[tuple[str, str | bytes, str]] = [
    ("malformed JSON", "{not json", "invalid_json"),
    ("not an object", "[1, 2]", "invalid_event"),
    ("nested too deep", "[" * 100_000 + "]" * 100_000, "invalid_json"),
    ("unknown event", '{"type": "response.create"}', "invalid_event"),
    ("no type", '{"audio": "AAAA"}', "invalid_event"),
    ("bad base64", '{"type": "input_audio_buffer.append", "audio": "@@@"}', "invalid_value"),
    ("odd bytes", '{"type": "input_audio_buffer.append", "audio": "AA=="}', "invalid_audio_format"),
    ("audio not a string", '{"type": "input_audio_buffer.append", "audio": 5}', "invalid_value"),
    (
        "unknown field",
        '{"type": "input_audio_buffer.append", "audio": "", "extra": 1}',
        "unknown_parameter",
    ),
    (
        "wrong sample format",
        '{"type": "session.update", "session": {"type": "transcription", "audio": {"input":'
        ' {"format": {"type": "audio/pcm", "rate": 7}}}}}',
        "invalid_value",
    ),
    (
        "unknown format type",
        '{"type": "session.update", "session": {"audio": {"input": {"format": {"type": "flac"}}}}}',
        "invalid_value",
    ),
    (
        "unknown session field",
        '{"type": "session.update", "session": {"type": "transcription", "voice": "alloy"}}',
        "unknown_parameter",
    ),
    (
        "conversation session",
        '{"type": "session.update", "session": {"type": "realtime"}}',
        "invalid_value",
    ),
    (
        "bad threshold",
        '{"type": "session.update", "session": {"audio": {"input": {"turn_detection":'
        ' {"type": "server_vad", "threshold": 2}}}}}',
        "invalid_value",
    ),
    (
        "unserved language",
        '{"type": "session.update", "session": {"audio": {"input": {"transcription":'
        ' {"language": "de"}}}}}',
        "unsupported_value",
    ),
    (
        "unknown model",
        '{"type": "session.update", "session": {"audio": {"input": {"transcription":'
        ' {"model": "nope"}}}}}',
        "model_not_found",
    ),
    (
        "commit before audio",
        '{"type": "input_audio_buffer.commit"}',
        "input_audio_buffer_commit_empty",
    ),
    ("binary frame", b"\x00\x01", "invalid_event"),
    ("oversize message", "x" * (MESSAGE_KB * 1024 + 1), "message_too_large"),
]


@pytest.mark.parametrize(("name", "message", "code"), BAD_EVENTS, ids=[b[0] for b in BAD_EVENTS])
def test_bad_input_gets_an_error_event_and_the_session_goes_on(
    server: Server, audio: dict[str, bytes], name: str, message: str | bytes, code: str
) -> None:
    with live(server.url) as client:
        client.next()
        client.send(
            {"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}}
        )
        client.next()
        client.send_raw(message)
        error = client.next()
        assert error["type"] == "error", error
        assert error["error"]["code"] == code
        assert error["error"]["type"] in ("invalid_request_error", "server_error")
        assert error["error"]["message"]
        if code in ("unsupported_value", "model_not_found"):
            assert error["error"]["param"].startswith("session.audio.input.transcription.")
        # the same session still transcribes
        client.append(audio["speech"])
        client.send({"type": "input_audio_buffer.commit"})
        events = client.until_type(COMPLETED)
    assert events[-1]["transcript"] == http_text(server.url, wav_bytes(audio["speech"], RATE))


def test_format_cannot_change_once_audio_was_sent(server: Server, audio: dict[str, bytes]) -> None:
    with live(server.url) as client:
        client.next()
        client.append(audio["speech"][:4800])
        client.send(
            {
                "type": "session.update",
                "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}},
            }
        )
        error = client.next()
        assert error["error"]["param"] == "session.audio.input.format"


def test_a_flood_of_tiny_appends_is_survived(server: Server, audio: dict[str, bytes]) -> None:
    tiny = {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\0\0").decode()}
    with live(server.url) as client, live(server.url) as other:
        client.next()
        other.next()
        client.send(
            {"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}}
        )
        client.next()
        for _ in range(20000):
            client.send(tiny)
        client.append(audio["speech"])
        client.send({"type": "input_audio_buffer.commit"})
        events = client.until_type(COMPLETED)
        refused = [e for e in events if e["type"] == "error"]
        assert all(e["error"]["code"] == "rate_limit_exceeded" for e in refused)
        # the other session is served meanwhile
        other.send(
            {"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}}
        )
        other.next()
        other.append(audio["speech"])
        other.send({"type": "input_audio_buffer.commit"})
        assert other.until_type(COMPLETED)[-1]["transcript"]


def test_a_client_gone_mid_turn_leaves_nothing_behind(
    server: Server, audio: dict[str, bytes]
) -> None:
    with live(server.url) as client:
        client.next()
        client.append(audio["longer"])
        client.socket.close()
    _idle(server)


# -- who may connect ------------------------------------------------------------------------------


def test_key_is_required_and_checked(guarded: Server) -> None:
    for headers in (None, {"Authorization": "Bearer wrong"}):
        with live(guarded.url, headers=headers) as client:
            error = client.next()
            assert error["type"] == "error"
            assert error["error"]["code"] == "invalid_api_key"
            with pytest.raises(ConnectionClosed) as closed:
                client.next(5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    with live(guarded.url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        assert client.next()["type"] == "session.created"


def test_browser_key_subprotocol_is_taken_and_never_echoed(guarded: Server) -> None:
    protocols = ["realtime", f"openai-insecure-api-key.{KEY}"]
    with live(guarded.url, subprotocols=protocols) as client:
        assert client.socket.subprotocol == "realtime"
        assert client.next()["type"] == "session.created"


def test_origin_is_checked(guarded: Server) -> None:
    port = guarded.url.rsplit(":", 1)[1]
    auth = {"Authorization": f"Bearer {KEY}"}
    for origin in (f"http://127.0.0.1:{port}", "https://app.example"):
        with live(guarded.url, headers=auth, origin=origin) as client:
            assert client.next()["type"] == "session.created"
    for origin in ("https://evil.example", f"http://127.0.0.1:{int(port) + 1}"):
        with (
            pytest.raises(InvalidStatus) as refused,
            live(guarded.url, headers=auth, origin=origin),
        ):
            pass
        assert refused.value.response.status_code == 403


def test_a_full_server_answers_with_an_error_event(guarded: Server) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    with live(guarded.url, headers=auth) as first:
        assert first.next()["type"] == "session.created"
        with live(guarded.url, headers=auth) as second:
            error = second.next()
            assert error["error"]["code"] == "session_limit_reached"
            with pytest.raises(ConnectionClosed) as closed:
                second.next(5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


def test_an_idle_session_is_closed_with_an_error(guarded: Server) -> None:
    with live(guarded.url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        assert client.next()["type"] == "session.created"
        error = client.next(10)
        assert error["error"]["code"] == "idle_timeout"
        with pytest.raises(ConnectionClosed):
            client.next(5)


def test_open_sessions_are_counted(server: Server) -> None:
    with live(server.url) as client:
        client.next()
        assert _metric(server, "gigaam_live_sessions") == 1
    wait_until(lambda: _metric(server, "gigaam_live_sessions") == 0, "the gauge to drop")
    assert httpx.get(f"{server.url}/health", timeout=TIMEOUT).status_code == 200


def test_a_server_stopping_with_sessions_open_closes_them(
    golden_dir: Path, tmp_path_factory: pytest.TempPathFactory, audio: dict[str, bytes]
) -> None:
    running = _server(golden_dir, tmp_path_factory)
    stopping = next(running)
    with live(stopping.url) as client:
        client.next()
        client.append(audio["longer"])
        client.until_type("input_audio_buffer.speech_started")
        running.close()  # uvicorn stops: the lifespan stops the core under the session
        with pytest.raises(ConnectionClosed):
            while True:
                client.next(20)
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("live-")],
        "live threads to end",
    )
