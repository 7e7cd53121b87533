"""Writing OpenAI's Realtime server events: the session, the core's live events, ``error``.

Pure functions building JSON values, no socket. A session's events use the dialect it opened
in (beta clients send ``OpenAI-Beta: realtime=v1``) or last updated in: only the session
events differ (``session.created`` / ``transcription_session.created``…, with the session
object in each dialect's shape); the audio and transcription events, built here from the
core's :data:`~gigaam_api.service.live_events.LiveEvent` values, are the same in both. Every
event carries a fresh ``event_id``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from gigaam_api.api.realtime.session_config import Dialect, SessionConfig
from gigaam_api.service.live_events import (
    Cleared,
    Committed,
    LiveEvent,
    SpeechStarted,
    SpeechStopped,
    TimeoutTriggered,
    TranscriptCompleted,
    TranscriptDelta,
    TranscriptFailed,
)

__all__ = ["error_event", "event_id", "expiry", "live_event", "session_event"]


def event_id() -> str:
    """A server event's id, shaped like OpenAI's."""
    return f"event_{uuid.uuid4().hex[:22]}"


def _transcription_wire(config: SessionConfig, *, ga: bool) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "model": config.model,
        "language": config.language,
        "prompt": config.prompt,
    }
    if ga and config.keywords:
        wire["keywords"] = list(config.keywords)
    return wire


def session_event(
    kind: Literal["created", "updated"],
    dialect: Dialect,
    session_id: str,
    config: SessionConfig,
    expires_at: int,
) -> dict[str, Any]:
    """``session.created``/``session.updated`` (beta: ``transcription_session.…``)."""
    if dialect == "beta":
        session: dict[str, Any] = {
            "id": session_id,
            "object": "realtime.transcription_session",
            "expires_at": expires_at,
            # the beta type requires it; a WebSocket session issues no ephemeral key
            "client_secret": {"value": "", "expires_at": expires_at},
            "modalities": ["text"],
            "input_audio_format": config.format.beta(),
            "input_audio_transcription": _transcription_wire(config, ga=False),
            "turn_detection": config.turn_detection_wire,
            "input_audio_noise_reduction": config.noise_reduction,
            "include": list(config.include),
        }
        return {"type": f"transcription_session.{kind}", "event_id": event_id(), "session": session}
    session = {
        "type": "transcription",
        "id": session_id,
        "object": "realtime.transcription_session",
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": config.format.ga(),
                "noise_reduction": config.noise_reduction,
                "transcription": _transcription_wire(config, ga=True),
                "turn_detection": config.turn_detection_wire,
            }
        },
        "include": list(config.include),
    }
    return {"type": f"session.{kind}", "event_id": event_id(), "session": session}


def error_event(
    message: str,
    *,
    code: str | None = "invalid_value",
    param: str | None = None,
    client_event_id: str | None = None,
    type: str = "invalid_request_error",
) -> dict[str, Any]:
    """OpenAI's ``error`` server event."""
    return {
        "type": "error",
        "event_id": event_id(),
        "error": {
            "type": type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }


def live_event(event: LiveEvent) -> dict[str, Any]:
    """A core live event → its server event."""
    body: dict[str, Any]
    if isinstance(event, SpeechStarted):
        body = {
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": event.audio_start_ms,
            "item_id": event.item_id,
        }
    elif isinstance(event, SpeechStopped):
        body = {
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": event.audio_end_ms,
            "item_id": event.item_id,
        }
    elif isinstance(event, Committed):
        body = {
            "type": "input_audio_buffer.committed",
            "item_id": event.item_id,
            "previous_item_id": event.previous_item_id,
        }
    elif isinstance(event, Cleared):
        body = {"type": "input_audio_buffer.cleared"}
    elif isinstance(event, TimeoutTriggered):
        body = {
            "type": "input_audio_buffer.timeout_triggered",
            "audio_start_ms": event.audio_start_ms,
            "audio_end_ms": event.audio_end_ms,
            "item_id": event.item_id,
        }
    elif isinstance(event, TranscriptDelta):
        body = {
            "type": "conversation.item.input_audio_transcription.delta",
            "item_id": event.item_id,
            "content_index": 0,
            "delta": event.delta,
        }
    elif isinstance(event, TranscriptCompleted):
        body = {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": event.item_id,
            "content_index": 0,
            "transcript": event.transcript,
            "usage": {"type": "duration", "seconds": round(event.seconds, 3)},
        }
    elif isinstance(event, TranscriptFailed):
        body = {
            "type": "conversation.item.input_audio_transcription.failed",
            "item_id": event.item_id,
            "content_index": 0,
            "error": {
                "type": "server_error"
                if event.error.kind == "internal"
                else "invalid_request_error",
                "code": event.error.code,
                "message": event.error.message,
                "param": event.error.param,
            },
        }
    else:
        return error_event(event.message, code=event.code, param=event.param)
    return {"event_id": event_id(), **body}


def expiry(seconds: float) -> int:
    """``expires_at`` of a session opened now that may last ``seconds``."""
    return int(time.time() + seconds)
