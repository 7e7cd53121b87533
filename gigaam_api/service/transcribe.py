"""Glue between a request and :func:`gigaam_api.pipeline.transcribe_file`.

Kept apart from the routes so the only knowledge of the pipeline's calling convention and of
the audio layer's error types lives here: the routes see a producer and ``ApiError``\\ s.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gigaam_api import audio, pipeline
from gigaam_api.api.errors import (
    ApiError,
    bad_request,
    cancelled,
    internal_error,
    shutting_down,
)
from gigaam_api.api.runner import Producer
from gigaam_api.cancellation import Cancelled
from gigaam_api.config import Settings, pipeline_options
from gigaam_api.scheduler import SchedulerClosed, Ticket
from gigaam_api.transcript import Segment

log = logging.getLogger(__name__)


def pipeline_producer(path: Path, ticket: Ticket[Any], settings: Settings) -> Producer:
    """A producer that runs the pipeline on ``path`` with the ticket as its model."""

    options = pipeline_options(settings)

    def produce(emit: Callable[[Segment], None], cancel: threading.Event) -> float:
        run = pipeline.transcribe_file(path, ticket.infer, options, cancel=cancel)
        try:
            for segment in run:
                emit(segment)
        finally:
            run.close()  # stops ffmpeg now, not at garbage collection
        return float(run.duration)

    return produce


def map_pipeline_error(error: BaseException, request_id: str) -> ApiError:
    """What the client is told when the pipeline fails.

    The client's fault (not audio, empty, too long) is 400 with the audio layer's message
    and code, so the SDKs do not retry; a missing ffmpeg is 500 saying so; anything else is
    logged with its traceback and answered with a generic 500 that carries the request id.
    """
    if isinstance(error, ApiError):
        return error
    if isinstance(error, audio.AudioError):
        if error.user_error:
            return bad_request(error.message, param="file", code=error.code)
        log.error("request %s: %s %s", request_id, error.message, error.detail)
        return internal_error(error.message, code=error.code)
    if isinstance(error, Cancelled):
        return cancelled()
    if isinstance(error, SchedulerClosed):
        return shutting_down()
    log.error("request %s: transcription failed", request_id, exc_info=error)
    return internal_error(f"Internal error while transcribing (request id {request_id})")
