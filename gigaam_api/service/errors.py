"""Why the service core could not do what a door asked, in the core's own words.

The core (admission, a pipeline run) is reached through several doors — the HTTP API, the
Wyoming server — and each tells its client in its own shape: an OpenAI error envelope with an
HTTP status and ``Retry-After``, or a Wyoming ``error`` event. So the core raises one typed
error, :class:`ServiceError`, that carries what every door needs — whose fault it is
(``kind``), a stable ``code`` and a ``message`` for people — and nothing of any door's
shape; ``api/errors.py`` maps a kind to a status and headers, the Wyoming door sends code and
message as they are. The messages and codes live here once, so both doors say the same thing.
"""

from __future__ import annotations

import logging
from typing import Literal

from gigaam_api.audio.errors import AudioError
from gigaam_api.cancellation import Cancelled
from gigaam_api.model.language import LanguageError
from gigaam_api.scheduler import SchedulerClosed, Skipped

log = logging.getLogger(__name__)

#: Whose fault a failure is, which decides how a door answers it:
#:
#: * ``invalid_audio`` — the client's file cannot be transcribed (not audio, empty, too long);
#: * ``not_ready`` — the model is still loading, or failed to load; retry later;
#: * ``busy`` — ``MAX_QUEUE`` requests are already admitted; retry in a moment;
#: * ``shutting_down`` — the server is stopping;
#: * ``cancelled`` — the work was stopped before it finished (client gone, server stopping);
#: * ``internal`` — our failure (a misconfigured decoder, a bug).
Kind = Literal["invalid_audio", "not_ready", "busy", "shutting_down", "cancelled", "internal"]
#: How a finished piece of work is counted (the metrics' ``outcome`` label, every door alike).
Outcome = Literal["ok", "client_error", "error", "cancelled"]


class ServiceError(Exception):
    """A failure of the core, for a door to put in its own shape."""

    def __init__(
        self, kind: Kind, message: str, *, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.kind: Kind = kind
        self.message = message
        #: The stable machine-readable name (the OpenAI ``code``, the Wyoming error ``code``).
        self.code = code
        #: The request field at fault, when it is not the audio file (a speaker reference).
        self.param = param

    @property
    def client_error(self) -> bool:
        """The client's doing (its audio, or it went away), not the server's: a 4xx on HTTP."""
        return self.kind in ("invalid_audio", "cancelled")

    @property
    def outcome(self) -> Outcome:
        """The ``outcome`` label every door counts this failure under in its metrics."""
        if self.kind == "cancelled":
            return "cancelled"
        return "client_error" if self.client_error else "error"


# -- admission ---------------------------------------------------------------------------------


def not_ready(detail: str | None = None) -> ServiceError:
    """The model is not there yet (``detail``: why it failed to load, when it did)."""
    message = "The model is still loading; retry in a few seconds"
    if detail:
        message = f"The model is not available: {detail}"
    return ServiceError("not_ready", message, code="model_not_loaded")


def queue_full(limit: int) -> ServiceError:
    return ServiceError(
        "busy",
        f"The server is busy: {limit} requests are already queued or running "
        f"(MAX_QUEUE={limit}); retry in a few seconds",
        code="server_busy",
    )


def shutting_down() -> ServiceError:
    """For a request that arrives (or is still queued) while the server stops."""
    return ServiceError("shutting_down", "The server is shutting down", code="shutting_down")


def cancelled() -> ServiceError:
    """For work that was cancelled before it finished (client gone, server stopping)."""
    return ServiceError("cancelled", "The request was cancelled", code="cancelled")


# -- a failed run ------------------------------------------------------------------------------


def failure_of(error: BaseException, request_id: str, *, what: str = "request") -> ServiceError:
    """What a failed pipeline run (or a probe of its input) means for the client.

    The client's fault (not audio, empty, too long) keeps the audio layer's message and code;
    an audio failure that is the server's (the decoder cannot start, or was killed from
    outside) is internal with that message and code; anything else is logged with its
    traceback and reported as a generic internal error that carries the request id. ``what``
    names the work in the log and that message: a durable job says ``"job"`` (its id is the
    one the client holds).
    """
    if isinstance(error, ServiceError):
        return error
    if isinstance(error, AudioError):
        if error.user_error:
            return ServiceError("invalid_audio", error.message, code=error.code)
        log.error("%s %s: %s %s", what, request_id, error.message, error.detail)
        return ServiceError("internal", error.message, code=error.code)
    if isinstance(error, LanguageError):  # a stored job's language the model (now) lacks
        return ServiceError("invalid_audio", str(error), code="unsupported_value", param="language")
    if isinstance(error, Cancelled):
        return cancelled()
    if isinstance(error, Skipped):  # interim work yields to a person waiting: not a failure
        return ServiceError("cancelled", str(error), code="skipped")
    if isinstance(error, SchedulerClosed):
        return shutting_down()
    log.error("%s %s: transcription failed", what, request_id, exc_info=error)
    return ServiceError("internal", f"Internal error while transcribing ({what} id {request_id})")
