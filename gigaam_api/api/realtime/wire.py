"""OpenAI's Realtime transcription events on the wire: client events in, server events out.

Pure functions over JSON values, no socket. The names and shapes are those of the ``openai``
SDK's types (``openai.types.realtime`` for the GA protocol of openai-python ≥ 1.103,
``openai.types.beta.realtime`` for the beta one deployed clients still speak); both dialects
are read, and a session's server events use the dialect it opened in (the beta clients send
``OpenAI-Beta: realtime=v1``): only the session events differ (``session.created`` /
``transcription_session.created``…), the audio and transcription events are the same.

Nothing a client sends is ignored silently: an unknown field, event or value is an ``error``
event naming it (``param``), and the fields accepted without effect are listed in
``docs/realtime.md`` (``noise_reduction``, ``include``, ``prompt``, ``delay``,
``create_response``, ``interrupt_response``). ``keywords`` are read here as strings; the door
reads them as every door does (``keyword_list.py``) and checks them against the model.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from gigaam_api.audio.g711 import G711_RATE
from gigaam_api.service.live import (
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
from gigaam_api.service.live_turns import TurnDetection

__all__ = [
    "AudioFormat",
    "Dialect",
    "SessionConfig",
    "WireError",
    "error_event",
    "live_event",
    "parse_session_update",
    "session_event",
]

Dialect = Literal["ga", "beta"]

#: PCM rates taken besides OpenAI's only one (24 kHz): what browsers and our own tools send.
PCM_RATES: Final = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
#: ``semantic_vad``'s eagerness, served as ``server_vad`` with this much silence ending a turn.
EAGERNESS_SILENCE_MS: Final = {"low": 1200, "medium": 700, "auto": 700, "high": 400}
LOGPROBS: Final = "item.input_audio_transcription.logprobs"


class WireError(Exception):
    """A client event that cannot be followed: becomes an ``error`` event."""

    def __init__(self, message: str, *, param: str | None = None, code: str = "invalid_value"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """``audio/pcm`` (16-bit little-endian mono at ``rate``), ``audio/pcmu`` or ``audio/pcma``."""

    type: Literal["audio/pcm", "audio/pcmu", "audio/pcma"] = "audio/pcm"
    rate: int = 24000

    @property
    def law(self) -> Literal["ulaw", "alaw"] | None:
        return {"audio/pcmu": "ulaw", "audio/pcma": "alaw"}.get(self.type)  # type: ignore[return-value]

    @property
    def pcm_rate(self) -> int:
        """The rate of the 16-bit PCM the session sees (G.711 is expanded at 8 kHz)."""
        return self.rate if self.type == "audio/pcm" else G711_RATE

    def ga(self) -> dict[str, Any]:
        if self.type == "audio/pcm":
            return {"type": self.type, "rate": self.rate}
        return {"type": self.type}

    def beta(self) -> str:
        return {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}[
            self.type
        ]


_BETA_FORMATS: Final = {
    "pcm16": AudioFormat("audio/pcm", 24000),
    "g711_ulaw": AudioFormat("audio/pcmu", G711_RATE),
    "g711_alaw": AudioFormat("audio/pcma", G711_RATE),
}


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """A session's configuration as the client set it (echoed in ``session.updated``)."""

    format: AudioFormat = AudioFormat()
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    #: The ``turn_detection`` object as echoed (``semantic_vad`` keeps its own shape).
    turn_detection_wire: dict[str, Any] | None = field(
        default_factory=lambda: _server_vad_wire(TurnDetection())
    )
    model: str = "gpt-4o-transcribe"
    language: str | None = None
    prompt: str = ""
    keywords: tuple[str, ...] = ()
    noise_reduction: dict[str, Any] | None = None
    include: tuple[str, ...] = ()


def _server_vad_wire(params: TurnDetection) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "type": "server_vad",
        "threshold": params.threshold,
        "prefix_padding_ms": params.prefix_padding_ms,
        "silence_duration_ms": params.silence_duration_ms,
    }
    if params.idle_timeout_ms is not None:
        wire["idle_timeout_ms"] = params.idle_timeout_ms
    return wire


# -- reading client values -------------------------------------------------------------------


def _object(value: object, param: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WireError(f"'{param}' must be an object", param=param)
    return value


def _known(obj: Mapping[str, Any], allowed: frozenset[str], param: str) -> None:
    for key in obj:
        if key not in allowed:
            raise WireError(
                f"Unknown parameter: '{param}.{key}'.",
                param=f"{param}.{key}",
                code="unknown_parameter",
            )


def _number(value: object, param: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise WireError(f"'{param}' must be a number from {low:g} to {high:g}", param=param)
    return float(value)


def _int(value: object, param: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WireError(f"'{param}' must be an integer from {low} to {high}", param=param)
    return value


def _string(value: object, param: str, *, limit: int = 10_000) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise WireError(f"'{param}' must be a string of at most {limit} characters", param=param)
    return value


def _strings(value: object, param: str, *, limit: int = 1000) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > limit:
        raise WireError(f"'{param}' must be a list of at most {limit} strings", param=param)
    return tuple(_string(item, f"{param}[{i}]", limit=200) for i, item in enumerate(value))


def _ga_format(value: object, param: str) -> AudioFormat:
    obj = _object(value, param)
    _known(obj, frozenset({"type", "rate"}), param)
    kind = obj.get("type", "audio/pcm")
    if kind == "audio/pcm":
        rate = obj.get("rate", 24000)
        if rate not in PCM_RATES or isinstance(rate, bool):
            raise WireError(
                f"'{param}.rate' must be one of {', '.join(map(str, PCM_RATES))} "
                "(16-bit little-endian mono PCM)",
                param=f"{param}.rate",
            )
        return AudioFormat("audio/pcm", int(rate))
    if kind in ("audio/pcmu", "audio/pcma"):
        if "rate" in obj and obj["rate"] != G711_RATE:
            raise WireError(f"'{param}.rate' of G.711 audio is 8000", param=f"{param}.rate")
        return AudioFormat(kind, G711_RATE)
    raise WireError(
        f"Invalid value for '{param}.type': {kind!r}; expected 'audio/pcm', 'audio/pcmu' or "
        "'audio/pcma'",
        param=f"{param}.type",
    )


def _turn_detection(value: object, param: str) -> tuple[TurnDetection | None, Any]:
    if value is None:
        return None, None
    obj = _object(value, param)
    kind = obj.get("type", "server_vad")
    common = {"type", "create_response", "interrupt_response"}
    for flag in ("create_response", "interrupt_response"):
        if flag in obj and not isinstance(obj[flag], bool):
            raise WireError(f"'{param}.{flag}' must be a boolean", param=f"{param}.{flag}")
    if kind == "server_vad":
        _known(
            obj,
            frozenset(
                common
                | {"threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"}
            ),
            param,
        )
        defaults = TurnDetection()
        idle = obj.get("idle_timeout_ms")
        params = TurnDetection(
            threshold=_number(
                obj.get("threshold", defaults.threshold), f"{param}.threshold", 0.01, 0.99
            ),
            prefix_padding_ms=_int(
                obj.get("prefix_padding_ms", defaults.prefix_padding_ms),
                f"{param}.prefix_padding_ms",
                0,
                5000,
            ),
            silence_duration_ms=_int(
                obj.get("silence_duration_ms", defaults.silence_duration_ms),
                f"{param}.silence_duration_ms",
                32,
                10_000,
            ),
            idle_timeout_ms=None
            if idle is None
            else _int(idle, f"{param}.idle_timeout_ms", 1000, 600_000),
        )
        return params, _server_vad_wire(params)
    if kind == "semantic_vad":
        _known(obj, frozenset(common | {"eagerness"}), param)
        eagerness = obj.get("eagerness", "auto")
        if eagerness not in EAGERNESS_SILENCE_MS:
            raise WireError(
                f"'{param}.eagerness' must be one of low, medium, high, auto",
                param=f"{param}.eagerness",
            )
        params = TurnDetection(silence_duration_ms=EAGERNESS_SILENCE_MS[eagerness])
        return params, {"type": "semantic_vad", "eagerness": eagerness}
    raise WireError(
        f"Invalid value for '{param}.type': {kind!r}; expected 'server_vad' or 'semantic_vad'",
        param=f"{param}.type",
    )


def _noise_reduction(value: object, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    obj = _object(value, param)
    _known(obj, frozenset({"type", "strength"}), param)
    if obj.get("type") not in ("near_field", "far_field", None):
        raise WireError(
            f"'{param}.type' must be 'near_field' or 'far_field'", param=f"{param}.type"
        )
    return dict(obj)


def _include(value: object, param: str) -> tuple[str, ...]:
    items = _strings(value, param, limit=10)
    for i, item in enumerate(items):
        if item != LOGPROBS:
            raise WireError(f"'{param}[{i}]' must be '{LOGPROBS}'", param=f"{param}[{i}]")
    return items


def _transcription(value: object, param: str, config: SessionConfig, *, ga: bool) -> SessionConfig:
    if value is None:
        return config
    obj = _object(value, param)
    allowed = {"model", "language", "prompt"}
    if ga:
        allowed |= {"keywords", "languages", "delay"}
    _known(obj, frozenset(allowed), param)
    changes: dict[str, Any] = {}
    if "model" in obj:
        changes["model"] = _string(obj["model"], f"{param}.model", limit=200)
    if "language" in obj:
        language = obj["language"]
        changes["language"] = (
            None if language is None else _string(language, f"{param}.language", limit=35)
        )
    if "languages" in obj and obj["languages"] is not None:
        languages = _strings(obj["languages"], f"{param}.languages", limit=10)
        if len(languages) == 1 and "language" not in obj:
            changes["language"] = languages[0]
    if "prompt" in obj:
        changes["prompt"] = (
            "" if obj["prompt"] is None else _string(obj["prompt"], f"{param}.prompt")
        )
    if "keywords" in obj:
        changes["keywords"] = (
            () if obj["keywords"] is None else _strings(obj["keywords"], f"{param}.keywords")
        )
    if "delay" in obj and obj["delay"] not in ("minimal", "low", "medium", "high", "xhigh", None):
        raise WireError(
            f"'{param}.delay' must be minimal, low, medium, high or xhigh", param=f"{param}.delay"
        )
    return replace(config, **changes)


_READ_ONLY: Final = frozenset({"id", "object", "expires_at", "client_secret"})


def parse_session_update(event: Mapping[str, Any], config: SessionConfig) -> SessionConfig:
    """``session.update`` (GA) or ``transcription_session.update`` (beta) → the new config.

    Fields not given keep their values; read-only fields a client echoes back from
    ``session.created`` (``id``, ``object``, ``expires_at``, ``client_secret``) are ignored.
    """
    if event.get("type") == "transcription_session.update":
        return _parse_beta(_object(event.get("session"), "session"), config)
    session = _object(event.get("session"), "session")
    _known(session, frozenset({"type", "audio", "include"} | _READ_ONLY), "session")
    if session.get("type", "transcription") != "transcription":
        raise WireError(
            "Only transcription sessions are served here: set session.type to 'transcription' "
            "(connect with ?intent=transcription)",
            param="session.type",
        )
    if "include" in session:
        config = replace(config, include=_include(session["include"] or [], "session.include"))
    audio = session.get("audio")
    if audio is None:
        return config
    audio = _object(audio, "session.audio")
    _known(audio, frozenset({"input"}), "session.audio")
    if audio.get("input") is None:
        return config
    inp = _object(audio["input"], "session.audio.input")
    _known(
        inp,
        frozenset({"format", "noise_reduction", "transcription", "turn_detection"}),
        "session.audio.input",
    )
    changes: dict[str, Any] = {}
    if "format" in inp:
        changes["format"] = _ga_format(inp["format"], "session.audio.input.format")
    if "noise_reduction" in inp:
        changes["noise_reduction"] = _noise_reduction(
            inp["noise_reduction"], "session.audio.input.noise_reduction"
        )
    if "turn_detection" in inp:
        params, wire = _turn_detection(inp["turn_detection"], "session.audio.input.turn_detection")
        changes["turn_detection"], changes["turn_detection_wire"] = params, wire
    config = replace(config, **changes)
    return _transcription(
        inp.get("transcription"), "session.audio.input.transcription", config, ga=True
    )


def _parse_beta(session: Mapping[str, Any], config: SessionConfig) -> SessionConfig:
    _known(
        session,
        frozenset(
            {
                "input_audio_format",
                "input_audio_transcription",
                "turn_detection",
                "input_audio_noise_reduction",
                "include",
                "modalities",
            }
            | _READ_ONLY
        ),
        "session",
    )
    changes: dict[str, Any] = {}
    if "input_audio_format" in session:
        name = session["input_audio_format"]
        if name not in _BETA_FORMATS:
            raise WireError(
                f"Invalid value for 'session.input_audio_format': {name!r}; expected 'pcm16', "
                "'g711_ulaw' or 'g711_alaw'",
                param="session.input_audio_format",
            )
        changes["format"] = _BETA_FORMATS[name]
    if "input_audio_noise_reduction" in session:
        changes["noise_reduction"] = _noise_reduction(
            session["input_audio_noise_reduction"], "session.input_audio_noise_reduction"
        )
    if "turn_detection" in session:
        params, wire = _turn_detection(session["turn_detection"], "session.turn_detection")
        changes["turn_detection"], changes["turn_detection_wire"] = params, wire
    if "include" in session:
        changes["include"] = _include(session["include"] or [], "session.include")
    if "modalities" in session:
        modalities = _strings(session["modalities"], "session.modalities", limit=2)
        if any(m not in ("text", "audio") for m in modalities):
            raise WireError(
                "'session.modalities' may hold 'text' and 'audio'", param="session.modalities"
            )
    config = replace(config, **changes)
    return _transcription(
        session.get("input_audio_transcription"),
        "session.input_audio_transcription",
        config,
        ga=False,
    )


# -- server events ---------------------------------------------------------------------------


def event_id() -> str:
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
