"""Server-Sent Events for ``stream=true``: pure builders of each block (``docs/api.md``).

Every block is one ``data: <compact JSON>`` line and a blank line, the only framing both SDKs
accept (a block without ``data`` makes the Python SDK raise). Keep-alives are SSE comments,
which clients skip. A delta goes out per finished segment; the space that separates two
segments starts the *next* delta, so the concatenated deltas equal the done event's text and
the non-streaming ``text`` exactly — :class:`gigaam_api.formats.DeltaJoiner` keeps that
bookkeeping in one place (beside the join it must equal, and shared with the Wyoming door).

Diarized streams (``response_format=diarized_json``) are OpenAI's: each delta also names its
segment (``segment_id``, openai-python ≥ 2.4), and each finished segment is a
``transcript.text.segment`` event whose body is exactly the ``diarized_json`` segment
(:func:`gigaam_api.formats.diarized_segment`), so streamed and non-streamed ids, times, texts
and speakers agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gigaam_api.formats import (
    DeltaJoiner,
    SpeakerNames,
    diarized_segment,
    diarized_segment_id,
    usage,
)
from gigaam_api.transcript import Segment

SSE_MEDIA_TYPE = "text/event-stream"
#: Headers for the streaming response: no caching, and no buffering by nginx-style proxies.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_DONE = "data: [DONE]\n\n"
SSE_KEEPALIVE = ": keep-alive\n\n"


def sse_event(payload: Mapping[str, Any]) -> str:
    """One ``data:`` block. JSON escapes newlines, so a payload can never split the block."""
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return f"data: {data}\n\n"


def sse_delta(text: str, *, segment_id: str | None = None) -> str:
    """``transcript.text.delta`` carrying one increment of the transcript.

    ``segment_id`` (a diarized stream) is the id of the segment the text belongs to, from
    :func:`gigaam_api.formats.diarized_segment_id`; without it the block is unchanged.
    """
    payload = {"type": "transcript.text.delta", "delta": text}
    if segment_id is not None:
        payload["segment_id"] = segment_id
    return sse_event(payload)


def sse_segment(index: int, segment: Segment, *, names: SpeakerNames | None = None) -> str:
    """``transcript.text.segment``: one finished segment with its speaker (diarized streams).

    ``index`` is the segment's place among the segments *with text* sent so far (from 0), as
    ``diarized_json`` numbers them; ``names`` maps speaker labels to display names.
    """
    return sse_event(diarized_segment(index, segment, names))


def sse_done(text: str, seconds: float | None) -> str:
    """``transcript.text.done`` with the full text and the duration usage (seconds, rounded up).

    ``usage`` is sent as in ``json``. The SDKs' done-event type only models *token* usage:
    default clients keep the object as is, but a client built with strict response
    validation rejects it, so ``seconds=None`` leaves ``usage`` out (always safe).
    """
    payload: dict[str, Any] = {"type": "transcript.text.done", "text": text}
    if seconds is not None:
        payload["usage"] = usage(seconds)
    return sse_event(payload)


def sse_error(envelope: Mapping[str, Any]) -> str:
    """An error after the stream started: ``{"type": "error", "error": {...}}``.

    ``envelope`` is the usual ``{"error": {"message", "type", "param", "code"}}``; the SDKs
    raise ``APIError`` on the truthy ``error`` key. The caller then closes the stream without
    :data:`SSE_DONE`.
    """
    inner = envelope.get("error") if isinstance(envelope, Mapping) else None
    if not isinstance(inner, Mapping) or not isinstance(inner.get("message"), str):
        raise ValueError(f"not an OpenAI error envelope: {envelope!r}")
    return sse_event({"type": "error", "error": dict(inner)})


class DiarizedStream:
    """The blocks of a diarized stream, one finished segment at a time.

    Per segment with text: its delta (carrying ``segment_id``), then its
    ``transcript.text.segment`` event; a segment without text sends nothing and uses no id,
    so the ids are the non-streaming ``diarized_json``'s. The deltas are
    :class:`DeltaJoiner`'s, so :attr:`text` (the done event's) is their concatenation and the
    ``json`` format's ``text``: the plain transcript, not the ``Speaker:`` lines.
    """

    def __init__(self, names: SpeakerNames | None = None) -> None:
        self._joiner = DeltaJoiner()
        self._names = names
        self._sent = 0

    def blocks(self, segment: Segment) -> list[str]:
        """The SSE blocks to send for this segment (none for a segment without text)."""
        delta = self._joiner.delta(segment.text)
        if not delta:
            return []
        index = self._sent
        self._sent += 1
        return [
            sse_delta(delta, segment_id=diarized_segment_id(index)),
            sse_segment(index, segment, names=self._names),
        ]

    @property
    def text(self) -> str:
        """Everything sent so far, joined: the final text (the done event's)."""
        return self._joiner.text
