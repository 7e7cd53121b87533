"""Glue between a request and :func:`gigaam_api.pipeline.transcribe_file`.

Kept apart from the doors so the only knowledge of the pipeline's calling convention lives
here: the HTTP routes and the Wyoming transcriber see a producer for a
:class:`~gigaam_api.service.runner.PipelineRunner`, and a failed run is put into the core's
words by :func:`gigaam_api.service.errors.failure_of`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gigaam_api import pipeline
from gigaam_api.config import Settings, pipeline_options
from gigaam_api.scheduler import Ticket
from gigaam_api.service.runner import Producer
from gigaam_api.transcript import Segment


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
