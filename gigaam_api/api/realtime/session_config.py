"""A realtime session's configuration as the client set it, and the error of an event.

Both directions of the wire share these values, and so does the door's client-event handling,
so they have a module of their own: :mod:`.session_update` reads the client's
``session.update`` into a :class:`SessionConfig`, :mod:`.server_events` echoes it in
``session.created``/``session.updated``, and :mod:`.client_session` acts on it. They are the
audio format (with both dialects' names for it), the turn detection both as the core's
``TurnDetection`` and as echoed, the transcription fields, and :class:`WireError`: a client
event that cannot be followed, which becomes an ``error`` event naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gigaam_api.audio.g711 import G711_RATE
from gigaam_api.service.live_turns import TurnDetection

__all__ = ["AudioFormat", "Dialect", "SessionConfig", "WireError", "server_vad_wire"]

#: The protocol's two generations: OpenAI's GA event names, or the beta ones.
Dialect = Literal["ga", "beta"]


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


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """A session's configuration as the client set it (echoed in ``session.updated``)."""

    format: AudioFormat = AudioFormat()
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    #: The ``turn_detection`` object as echoed (``semantic_vad`` keeps its own shape).
    turn_detection_wire: dict[str, Any] | None = field(
        default_factory=lambda: server_vad_wire(TurnDetection())
    )
    model: str = "gpt-4o-transcribe"
    language: str | None = None
    prompt: str = ""
    keywords: tuple[str, ...] = ()
    noise_reduction: dict[str, Any] | None = None
    include: tuple[str, ...] = ()


def server_vad_wire(params: TurnDetection) -> dict[str, Any]:
    """``server_vad`` turn detection as a session event echoes it."""
    wire: dict[str, Any] = {
        "type": "server_vad",
        "threshold": params.threshold,
        "prefix_padding_ms": params.prefix_padding_ms,
        "silence_duration_ms": params.silence_duration_ms,
    }
    if params.idle_timeout_ms is not None:
        wire["idle_timeout_ms"] = params.idle_timeout_ms
    return wire
