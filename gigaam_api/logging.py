"""Log setup for the service: human-readable text or one JSON object per line (``LOG_JSON``).

JSON lines let log shippers (Loki, ELK, Docker's json driver) index request fields without
regexes; the text form is for people reading ``docker logs``. Structured fields are passed
with ``extra=`` (e.g. ``request_id``, ``status``, ``audio_seconds``) and rendered by both
formatters, so call sites never format them by hand. Secrets are never passed in: the API key
and request headers are not logged anywhere.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

#: The loggers this module configures (our package; uvicorn keeps its own setup).
PACKAGE_LOGGER = "gigaam_api"

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(_extras(record))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` — the extras appended in a stable order."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if not extras:
            return line
        tail = " ".join(f"{key}={_text_value(value)}" for key, value in extras.items())
        head, sep, rest = line.partition("\n")  # keep tracebacks below the key=value line
        return f"{head} {tail}{sep}{rest}"


def _text_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of the record, not at set-up.

    A process that swaps stderr (a test harness capturing output, a daemon redirecting it)
    would otherwise leave the handler writing to a closed stream.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure_logging(level: str = "INFO", json_format: bool = False) -> None:
    """Send the package's logs to stderr in the chosen format; safe to call more than once."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, _StderrHandler):  # ours, from an earlier call
            logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    # our handler prints it; propagating would print it twice under a configured root
    logger.propagate = False
