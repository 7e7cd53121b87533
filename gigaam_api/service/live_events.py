"""The typed values between a live session and its door: what it is told and what it reports.

A live session (:mod:`gigaam_api.service.live`) knows no wire shape: the door
(``api/realtime/``) reads the client's ``session.update`` into :class:`LiveOptions`, the server's
settings give :class:`LiveLimits`, and the session answers with the events of
:data:`LiveEvent` (a turn started or stopped, committed, cleared, timed out; interim and final
text; a request it could not follow), which the door writes as OpenAI's server events and the
recording (``api/realtime/recording.py``) notes. They live apart from the session's threads
so a reader of the protocol's meaning need not read the threads, and the door imports no more
than it consumes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from gigaam_api.config import Settings
from gigaam_api.service.errors import ServiceError
from gigaam_api.service.keywords import Keyword
from gigaam_api.service.live_turns import TurnDetection
from gigaam_api.transcript import Word

__all__ = [
    "Cleared",
    "Committed",
    "LiveError",
    "LiveEvent",
    "LiveLimits",
    "LiveOptions",
    "SessionBusy",
    "SpeechStarted",
    "SpeechStopped",
    "TimeoutTriggered",
    "TranscriptCompleted",
    "TranscriptDelta",
    "TranscriptFailed",
    "new_item_id",
]


class SessionBusy(Exception):
    """The session's backlog of calls not yet handled is full: the client sends too fast."""


# -- what a session is told --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """What the client chose (``session.update``); changeable between turns."""

    #: ``None``: the client commits turns itself.
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    #: ISO 639-1, already checked against the served model; ``None``: the model chooses.
    language: str | None = None
    #: Names and terms to listen for, already checked against the served model (``KEYWORDS``
    #: is merged in by each turn's session, as for an HTTP request).
    keywords: tuple[Keyword, ...] = ()


@dataclass(frozen=True, slots=True)
class LiveLimits:
    """The server's bounds on one session (settings)."""

    #: Longest turn: longer speech is cut at a pause into turns of at most this.
    max_turn_seconds: float = 22.0
    #: Most uncommitted audio kept with client commits (``REALTIME_MAX_BUFFER_SECONDS``).
    max_buffer_seconds: float = 300.0
    #: Least time between two interim recognitions of a turn; 0: no interim text.
    interim_seconds: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LiveLimits:
        return cls(
            max_turn_seconds=settings.vad_max_duration,
            max_buffer_seconds=settings.realtime_max_buffer_seconds,
            interim_seconds=settings.realtime_interim_seconds,
        )


# -- what a session reports --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    item_id: str
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class Committed:
    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class Cleared:
    pass


@dataclass(frozen=True, slots=True)
class TimeoutTriggered:
    item_id: str
    audio_start_ms: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class TranscriptCompleted:
    item_id: str
    transcript: str
    #: Seconds of audio in the turn (OpenAI's ``usage`` of type ``duration``).
    seconds: float
    audio_start_ms: int
    audio_end_ms: int
    #: The turn's timed words, seconds from the start of the session's audio (not on the wire:
    #: a saved recording's word timings, api/realtime/recording.py).
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class TranscriptFailed:
    item_id: str
    error: ServiceError


@dataclass(frozen=True, slots=True)
class LiveError:
    """A client's request the session could not follow (the door sends an ``error`` event)."""

    code: str
    message: str
    param: str | None = None


LiveEvent = (
    SpeechStarted
    | SpeechStopped
    | Committed
    | Cleared
    | TimeoutTriggered
    | TranscriptDelta
    | TranscriptCompleted
    | TranscriptFailed
    | LiveError
)


def new_item_id() -> str:
    """A new conversation item's id, shaped like OpenAI's."""
    return f"item_{uuid.uuid4().hex[:20]}"
