"""SSE blocks (``docs/api.md``, "Streaming") and the delta invariant."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from openai.types.audio import (
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
    TranscriptionTextSegmentEvent,
)

from gigaam_api.api.errors import error_body
from gigaam_api.api.sse import (
    SSE_DONE,
    SSE_HEADERS,
    SSE_KEEPALIVE,
    SSE_MEDIA_TYPE,
    DiarizedStream,
    sse_delta,
    sse_done,
    sse_error,
    sse_event,
    sse_segment,
)
from gigaam_api.formats import (
    DeltaJoiner,
    delta_text,
    render_diarized_json,
    render_json,
    transcript_text,
)
from gigaam_api.transcript import Segment, Transcript, Word, build_segments


def data_of(block: str) -> Any:
    """The JSON of one block, checking the framing: exactly one ``data:`` line, blank line."""
    assert block.startswith("data: ")
    assert block.endswith("\n\n")
    line = block[len("data: ") : -2]
    assert "\n" not in line and "\r" not in line
    return json.loads(line)


def test_constants() -> None:
    assert SSE_DONE == "data: [DONE]\n\n"
    assert SSE_KEEPALIVE == ": keep-alive\n\n"
    assert SSE_MEDIA_TYPE == "text/event-stream"
    assert SSE_HEADERS["Cache-Control"] == "no-cache"


def test_delta_block() -> None:
    block = sse_delta(" как дела")
    assert block == 'data: {"type":"transcript.text.delta","delta":" как дела"}\n\n'
    assert data_of(block) == {"type": "transcript.text.delta", "delta": " как дела"}


def test_a_newline_in_the_text_cannot_split_the_block() -> None:
    assert data_of(sse_delta("раз\n\nдва\r"))["delta"] == "раз\n\nдва\r"


def test_done_block_with_and_without_usage() -> None:
    assert data_of(sse_done("привет", 6.96)) == {
        "type": "transcript.text.done",
        "text": "привет",
        "usage": {"type": "duration", "seconds": 7},
    }
    assert data_of(sse_done("привет", None)) == {"type": "transcript.text.done", "text": "привет"}


def test_error_block_carries_the_envelope() -> None:
    envelope = error_body("Inference failed", "server_error")
    assert data_of(sse_error(envelope)) == {
        "type": "error",
        "error": {
            "message": "Inference failed",
            "type": "server_error",
            "param": None,
            "code": None,
        },
    }


@pytest.mark.parametrize("bad", [{}, {"error": "boom"}, {"error": {"type": "x"}}, {"message": "x"}])
def test_error_block_rejects_what_is_not_an_envelope(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="envelope"):
        sse_error(bad)


def test_non_finite_values_are_rejected_not_sent_as_invalid_json() -> None:
    with pytest.raises(ValueError):
        sse_event({"type": "x", "value": float("nan")})
    with pytest.raises(ValueError):
        sse_done("", float("inf"))


def test_delta_text_puts_the_separating_space_first() -> None:
    assert delta_text(" Привет. ", first=True) == "Привет."
    assert delta_text("Как дела?", first=False) == " Как дела?"
    assert delta_text("   ", first=False) == ""


def long_transcript() -> Transcript:
    words = []
    t = 0.0
    for i, token in enumerate(("Раз, два, три. Четыре пять " * 12).split()):
        words.append(Word(token, t, t + 0.3))
        t += 0.35 if i % 9 else 1.0
    return Transcript(segments=build_segments(words, start_id=0), duration=t + 1.0)


def test_joined_deltas_equal_done_text_and_the_non_streaming_text() -> None:
    transcript = long_transcript()
    assert len(transcript.segments) > 5
    joiner = DeltaJoiner()
    deltas = [d for d in (joiner.delta(s.text) for s in transcript.segments) if d]
    assert len(deltas) == len(transcript.segments)
    assert "".join(deltas) == joiner.text == transcript.text
    assert joiner.text == json.loads(render_json(transcript).body)["text"]
    assert deltas[0][0] != " " and all(d.startswith(" ") for d in deltas[1:])


def test_segments_without_text_send_nothing() -> None:
    joiner = DeltaJoiner()
    texts = ["", "Да.", "  ", "Нет."]
    deltas = [joiner.delta(t) for t in texts]
    assert deltas == ["", "Да.", "", " Нет."]
    transcript = Transcript(segments=[Segment(i, i, i + 1, t) for i, t in enumerate(texts)])
    assert joiner.text == "Да. Нет."
    # The non-streaming body agrees even for such a malformed transcript.
    assert json.loads(render_json(transcript).body)["text"] == joiner.text


# --- the official SDK iterates the stream ------------------------------------------------------


def stream_body(transcript: Transcript, *, usage: bool) -> Iterator[str]:
    joiner = DeltaJoiner()
    yield SSE_KEEPALIVE
    for segment in transcript.segments:
        delta = joiner.delta(segment.text)
        if delta:
            yield sse_delta(delta)
            yield SSE_KEEPALIVE
    yield sse_done(joiner.text, transcript.duration if usage else None)
    yield SSE_DONE


def sdk_stream(body: str, *, strict: bool, model: str = "whisper-1") -> Any:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200,
            content=body.encode("utf-8"),
            headers={"content-type": SSE_MEDIA_TYPE, **SSE_HEADERS},
        )

    client = openai.OpenAI(
        api_key="test",
        base_url="http://testserver/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
        max_retries=0,
        _strict_response_validation=strict,
    )
    return client.audio.transcriptions.create(
        file=("a.wav", b"RIFF", "audio/wav"), model=model, stream=True
    )


@pytest.mark.parametrize(("usage", "strict"), [(True, False), (False, True)])
def test_official_sdk_iterates_deltas_then_done(usage: bool, strict: bool) -> None:
    transcript = long_transcript()
    events = list(sdk_stream("".join(stream_body(transcript, usage=usage)), strict=strict))
    *deltas, done = events
    assert deltas and all(isinstance(e, TranscriptionTextDeltaEvent) for e in deltas)
    assert all(e.type == "transcript.text.delta" for e in deltas)
    assert isinstance(done, TranscriptionTextDoneEvent)
    assert "".join(e.delta for e in deltas) == done.text == transcript.text


def test_official_sdk_raises_on_a_mid_stream_error() -> None:
    body = sse_delta("Привет.") + sse_error(error_body("The model crashed", "server_error"))
    stream = sdk_stream(body, strict=False)
    received = []
    with pytest.raises(openai.APIError, match="The model crashed"):
        for event in stream:
            received.append(event)
    assert [e.delta for e in received] == ["Привет."]


# --- diarized streams ----------------------------------------------------------------------------


def diarized() -> Transcript:
    return Transcript(
        segments=[
            Segment(0, 0.0, 1.5, "Здравствуйте.", speaker="A"),
            Segment(1, 1.5, 1.6, "  ", speaker="A"),  # no text: no event, no id used
            Segment(2, 1.8, 3.25, "Добрый день!", speaker="B"),
            Segment(3, 3.3, 4.0, "Как дела?", speaker="A"),
        ],
        duration=4.2,
    )


def test_delta_with_segment_id_and_without_is_unchanged() -> None:
    assert data_of(sse_delta("Да.", segment_id="seg_002")) == {
        "type": "transcript.text.delta",
        "delta": "Да.",
        "segment_id": "seg_002",
    }
    assert sse_delta("Да.") == sse_delta("Да.", segment_id=None)
    assert "segment_id" not in data_of(sse_delta("Да."))


def test_segment_event_is_the_diarized_json_segment() -> None:
    segment = diarized().segments[2]
    assert sse_segment(1, segment) == (
        'data: {"type":"transcript.text.segment","id":"seg_002","start":1.8,"end":3.25,'
        '"text":"Добрый день!","speaker":"B"}\n\n'
    )
    assert data_of(sse_segment(1, segment, names={"B": "Борис"}))["speaker"] == "Борис"
    body = json.loads(render_diarized_json(diarized()).body)
    assert data_of(sse_segment(1, segment)) == body["segments"][1]


def diarized_stream(transcript: Transcript) -> Iterator[str]:
    stream = DiarizedStream()
    for segment in transcript.segments:
        yield from stream.blocks(segment)
        yield SSE_KEEPALIVE
    yield sse_done(stream.text, None)


def test_diarized_stream_sends_delta_then_segment_and_skips_blank_segments() -> None:
    stream = DiarizedStream(names={"A": "Анна"})
    blocks = [stream.blocks(s) for s in diarized().segments]
    assert [len(b) for b in blocks] == [2, 0, 2, 2]
    first_delta, first_segment = (data_of(b) for b in blocks[0])
    assert first_delta == {
        "type": "transcript.text.delta",
        "delta": "Здравствуйте.",
        "segment_id": "seg_001",
    }
    assert first_segment["id"] == "seg_001" and first_segment["speaker"] == "Анна"
    assert [data_of(b[0])["segment_id"] for b in blocks if b] == ["seg_001", "seg_002", "seg_003"]
    assert data_of(blocks[2][0])["delta"] == " Добрый день!"
    assert stream.text == transcript_text(diarized())


@pytest.mark.parametrize("strict", [False, True])
def test_official_sdk_parses_segment_events_and_segment_ids(strict: bool) -> None:
    transcript = diarized()
    events = list(
        sdk_stream(
            "".join(diarized_stream(transcript)), strict=strict, model="gpt-4o-transcribe-diarize"
        )
    )
    *pieces, done = events
    deltas = [e for e in pieces if isinstance(e, TranscriptionTextDeltaEvent)]
    segments = [e for e in pieces if isinstance(e, TranscriptionTextSegmentEvent)]
    assert len(deltas) == len(segments) == 3 == len(pieces) / 2
    assert [d.segment_id for d in deltas] == [s.id for s in segments]
    assert [(s.id, s.speaker, s.text) for s in segments] == [
        ("seg_001", "A", "Здравствуйте."),
        ("seg_002", "B", "Добрый день!"),
        ("seg_003", "A", "Как дела?"),
    ]
    assert (segments[1].start, segments[1].end) == (1.8, 3.25)
    assert isinstance(done, TranscriptionTextDoneEvent)
    assert "".join(d.delta for d in deltas) == done.text == transcript_text(transcript)
    # The streamed segments are the non-streaming diarized_json's, field for field.
    body = json.loads(render_diarized_json(transcript).body)
    assert [s.model_dump() for s in segments] == body["segments"]
