"""Reading a client's ``session.update``: GA and beta names → a :class:`SessionConfig`.

Pure functions over JSON values, no socket. The names and shapes are those of the ``openai``
SDK's types (``openai.types.realtime`` for the GA protocol of openai-python ≥ 1.103,
``openai.types.beta.realtime`` for the beta ``transcription_session.update`` deployed clients
still send); fields not given keep their values.

Nothing a client sends is ignored silently: an unknown field or value is a
:class:`~.session_config.WireError` naming it (``param``), and the fields accepted without
effect are listed in ``docs/realtime.md`` (``noise_reduction``, ``include``, ``prompt``,
``delay``, ``create_response``, ``interrupt_response``). ``keywords`` are read here as
strings; the door reads them as every door does (``keyword_list.py``) and checks them against
the model. The other client events are small enough to be read where they are handled
(:mod:`.client_session`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from gigaam_api.api.realtime.session_config import (
    AudioFormat,
    SessionConfig,
    WireError,
    server_vad_wire,
)
from gigaam_api.audio.g711 import G711_RATE
from gigaam_api.service.live_turns import TurnDetection

__all__ = ["PCM_RATES", "parse_session_update"]

#: PCM rates taken besides OpenAI's only one (24 kHz): what browsers and our own tools send.
PCM_RATES: Final = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
#: ``semantic_vad``'s eagerness, served as ``server_vad`` with this much silence ending a turn.
EAGERNESS_SILENCE_MS: Final = {"low": 1200, "medium": 700, "auto": 700, "high": 400}
LOGPROBS: Final = "item.input_audio_transcription.logprobs"

_BETA_FORMATS: Final = {
    "pcm16": AudioFormat("audio/pcm", 24000),
    "g711_ulaw": AudioFormat("audio/pcmu", G711_RATE),
    "g711_alaw": AudioFormat("audio/pcma", G711_RATE),
}


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
        return params, server_vad_wire(params)
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
