"""What one HTTP request learned about itself, for its access-log line and its status.

The middleware creates a :class:`RequestRecord` before the route runs and reads it when the
response has ended; the route fills it in. A typed record instead of loose keys on
``request.state`` means a misspelt field is a type error, not a silently missing log field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

__all__ = ["RequestRecord", "attach_record", "record_of"]

_STATE_KEY = "record"


@dataclass(slots=True)
class RequestRecord:
    """Per-request facts; every field but ``request_id`` stays ``None`` until known."""

    #: The ``x-request-id`` sent back (the client's own when sane, else a new one).
    request_id: str
    #: The requested ``response_format`` once the form was validated.
    response_format: str | None = None
    #: Whether the response is an SSE stream.
    stream: bool | None = None
    #: The OpenAI error ``code`` when the transcription failed.
    error_code: str | None = None
    #: Seconds of audio transcribed, once finished.
    audio_seconds: float | None = None
    #: The client left before the response was complete: logged and counted as 499.
    client_disconnected: bool = False

    def log_fields(self) -> dict[str, Any]:
        """The optional fields that are known, for the access-log line."""
        fields: dict[str, Any] = {}
        if self.audio_seconds is not None:
            fields["audio_seconds"] = round(float(self.audio_seconds), 3)
        known = {
            "response_format": self.response_format,
            "stream": self.stream,
            "error_code": self.error_code,
        }
        fields.update((key, value) for key, value in known.items() if value is not None)
        return fields


def attach_record(state: dict[str, Any], request_id: str) -> RequestRecord:
    """A fresh record stored in an ASGI scope's ``state`` (the middleware's side)."""
    record = RequestRecord(request_id)
    state[_STATE_KEY] = record
    return record


def record_of(request: Request) -> RequestRecord:
    """The record the middleware attached to ``request`` (the route's side)."""
    record: RequestRecord = getattr(request.state, _STATE_KEY)
    return record
