"""The live door's pure parts: reading session updates in both dialects, writing the session
and the core's events, and the Origin rule (``api/realtime/session_update.py``,
``server_events.py``, ``gate.origin_allowed``).
The same events go over a real socket in ``tests/test_realtime.py``."""

from __future__ import annotations

from typing import Any

import pytest

from gigaam_api.api.realtime.gate import origin_allowed
from gigaam_api.api.realtime.server_events import error_event, live_event, session_event
from gigaam_api.api.realtime.session_config import AudioFormat, SessionConfig, WireError
from gigaam_api.api.realtime.session_update import parse_session_update
from gigaam_api.service.errors import ServiceError
from gigaam_api.service.live_events import (
    Cleared,
    Committed,
    SpeechStarted,
    SpeechStopped,
    TimeoutTriggered,
    TranscriptCompleted,
    TranscriptDelta,
    TranscriptFailed,
)
from gigaam_api.service.live_turns import TurnDetection


def ga(**audio_input: Any) -> dict[str, Any]:
    return {
        "type": "session.update",
        "session": {"type": "transcription", "audio": {"input": audio_input}},
    }


def test_ga_update_reads_every_field() -> None:
    config = parse_session_update(
        ga(
            format={"type": "audio/pcm", "rate": 24000},
            transcription={
                "model": "whisper-1",
                "language": "ru",
                "prompt": "p",
                "keywords": ["ГигаАМ"],
            },
            turn_detection={"type": "server_vad", "threshold": 0.6, "silence_duration_ms": 300},
            noise_reduction={"type": "near_field"},
        ),
        SessionConfig(),
    )
    assert config.format == AudioFormat("audio/pcm", 24000)
    assert (config.model, config.language, config.prompt) == ("whisper-1", "ru", "p")
    assert config.keywords == ("ГигаАМ",)
    assert config.turn_detection == TurnDetection(threshold=0.6, silence_duration_ms=300)


def test_fields_left_out_keep_their_values() -> None:
    first = parse_session_update(
        ga(turn_detection=None, transcription={"language": "ru"}), SessionConfig()
    )
    second = parse_session_update(ga(format={"type": "audio/pcmu"}), first)
    assert second.turn_detection is None and second.language == "ru"
    assert second.format.pcm_rate == 8000 and second.format.law == "ulaw"


def test_beta_update_and_its_echo() -> None:
    config = parse_session_update(
        {
            "type": "transcription_session.update",
            "session": {
                "input_audio_format": "g711_alaw",
                "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "ru"},
                "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
            },
        },
        SessionConfig(),
    )
    assert config.format.law == "alaw"
    assert config.turn_detection == TurnDetection(silence_duration_ms=400)
    echo = session_event("updated", "beta", "sess_1", config, 0)
    assert echo["type"] == "transcription_session.updated"
    assert echo["session"]["input_audio_format"] == "g711_alaw"
    assert echo["session"]["turn_detection"] == {"type": "semantic_vad", "eagerness": "high"}


@pytest.mark.parametrize(
    ("event", "param"),
    [
        (ga(format={"type": "audio/pcm", "rate": 7}), "session.audio.input.format.rate"),
        (ga(format={"type": "audio/flac"}), "session.audio.input.format.type"),
        (
            ga(transcription={"model": "x", "temperature": 1}),
            "session.audio.input.transcription.temperature",
        ),
        (
            ga(turn_detection={"type": "server_vad", "threshold": True}),
            "session.audio.input.turn_detection.threshold",
        ),
        (
            ga(turn_detection={"type": "server_vad", "silence_duration_ms": 1.5}),
            "session.audio.input.turn_detection.silence_duration_ms",
        ),
        (ga(turn_detection={"type": "other"}), "session.audio.input.turn_detection.type"),
        ({"type": "session.update", "session": {"type": "realtime"}}, "session.type"),
        ({"type": "session.update", "session": {"instructions": "x"}}, "session.instructions"),
        ({"type": "session.update", "session": "x"}, "session"),
        (
            {"type": "transcription_session.update", "session": {"input_audio_format": "opus"}},
            "session.input_audio_format",
        ),
        (
            {
                "type": "transcription_session.update",
                "session": {"input_audio_transcription": {"keywords": []}},
            },
            "session.input_audio_transcription.keywords",
        ),
    ],
)
def test_bad_values_and_unknown_fields_name_their_param(event: dict[str, Any], param: str) -> None:
    with pytest.raises(WireError) as error:
        parse_session_update(event, SessionConfig())
    assert error.value.param == param


def test_completed_and_failed_events_have_openais_shape() -> None:
    completed = live_event(TranscriptCompleted("item_1", "текст", 3.2004, 0, 3200))
    assert completed["usage"] == {"type": "duration", "seconds": 3.2}
    assert completed["content_index"] == 0 and completed["event_id"].startswith("event_")
    failed = live_event(TranscriptFailed("item_1", ServiceError("internal", "boom", code="x")))
    assert failed["error"] == {
        "type": "server_error",
        "code": "x",
        "message": "boom",
        "param": None,
    }


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "a.example", [], True),
        ("https://a.example", "a.example", [], True),  # TLS proxy: the server sees ws, no port
        ("http://a.example:8000", "a.example:8000", [], True),
        ("http://a.example:8001", "a.example:8000", [], False),
        ("https://evil.example", "a.example", [], False),
        ("https://app.example", "a.example", ["https://app.example/"], True),
        ("https://evil.example", "a.example", ["*"], True),
        ("null", "a.example", [], False),
        ("http://[bad", "a.example", [], False),
    ],
)
def test_origin_rule(origin: str | None, host: str, allowed: list[str], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


def _every_event() -> list[dict[str, Any]]:
    return [
        live_event(SpeechStarted("item_1", 300)),
        live_event(SpeechStopped("item_1", 3500)),
        live_event(Committed("item_1", None)),
        live_event(Committed("item_2", "item_1")),
        live_event(Cleared()),
        live_event(TimeoutTriggered("item_3", 0, 5000)),
        live_event(TranscriptDelta("item_1", "при")),
        live_event(TranscriptCompleted("item_1", "привет", 3.2, 300, 3500)),
        live_event(TranscriptFailed("item_1", ServiceError("busy", "busy", code="server_busy"))),
        error_event("bad", code="invalid_value", param="audio", client_event_id="evt_1"),
    ]


def test_every_event_parses_as_the_sdks_ga_type() -> None:
    from openai.types.realtime import RealtimeServerEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
    config = parse_session_update(
        ga(turn_detection={"type": "server_vad", "idle_timeout_ms": 5000}), SessionConfig()
    )
    events = [
        *_every_event(),
        session_event("created", "ga", "sess_1", config, 0),
        session_event("updated", "ga", "sess_1", SessionConfig(), 0),
    ]
    for event in events:
        parsed = adapter.validate_python(event)
        assert parsed.type == event["type"]
        assert parsed.model_dump(exclude_unset=True).keys() <= event.keys() | {"session"}
    created = adapter.validate_python(events[-2])
    assert created.session.type == "transcription"
    assert created.session.audio.input.turn_detection.idle_timeout_ms == 5000


def test_the_beta_events_parse_as_the_sdks_beta_types() -> None:
    from openai.types.beta.realtime import RealtimeServerEvent, TranscriptionSessionUpdatedEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
    for event in _every_event():
        if event["type"] != "input_audio_buffer.timeout_triggered":  # GA only
            assert adapter.validate_python(event).type == event["type"]
    updated = session_event("updated", "beta", "sess_1", SessionConfig(), 0)
    parsed = TranscriptionSessionUpdatedEvent.model_validate(updated)
    assert parsed.session.input_audio_format == "pcm16"
    assert parsed.session.turn_detection is not None
    assert parsed.session.turn_detection.silence_duration_ms == 500
