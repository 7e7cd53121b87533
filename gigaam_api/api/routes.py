"""The HTTP routes (``docs/api.md``). Mounted twice by the app: under ``/v1`` and at the root,
because clients disagree on whether the base URL includes ``/v1``.

Handlers stay thin: authenticate, admit, receive the upload, validate, then hand the file to
a core :class:`~gigaam_api.service.session.Session` and turn its events into one of the five
formats or an SSE stream. Order matters and is deliberate:

1. the API key is checked before the body is read (401 beats any complaint about the audio);
2. the request is admitted before the upload, so a busy server answers 503 at once instead
   of after receiving a large file;
3. the body is received (413 as soon as it passes ``MAX_UPLOAD_MB``), then the fields are
   validated, then the audio is decoded by the pipeline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from gigaam_api.api import sse
from gigaam_api.api.auth import check_api_key
from gigaam_api.api.context import AppContext
from gigaam_api.api.errors import ApiError, from_service_error, not_found
from gigaam_api.api.params import (
    TranscriptionParams,
    check_language,
    parse_transcription_params,
    translation_unsupported,
)
from gigaam_api.api.record import record_of
from gigaam_api.api.speaker_params import DiarizationParams
from gigaam_api.api.uploads import FormData, read_form
from gigaam_api.audio import FileSource
from gigaam_api.config import Settings, pipeline_options
from gigaam_api.formats import DeltaJoiner, render
from gigaam_api.jobs.lifecycle import JobsState
from gigaam_api.model import transcript_language
from gigaam_api.service.errors import ServiceError
from gigaam_api.service.keywords import keywords_of
from gigaam_api.service.session import (
    DoneEvent,
    FailedEvent,
    ProgressEvent,
    SegmentEvent,
    Session,
    SessionEvent,
    SessionOptions,
    SpeakersEvent,
    admit,
)
from gigaam_api.service.speakers import KnownSpeaker, SpeakerOptions
from gigaam_api.speakers import split_segments
from gigaam_api.transcript import Segment, Transcript

log = logging.getLogger(__name__)

#: How often a waiting request checks whether its client is still connected.
DISCONNECT_POLL_S = 0.5


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def _authenticate(request: Request) -> AppContext:
    ctx = _ctx(request)
    check_api_key(request.headers, ctx.settings.api_key)
    return ctx


router = APIRouter()


# -- models --------------------------------------------------------------------------------


def _model_ids(settings: Settings) -> list[str]:
    return list(dict.fromkeys([*settings.allowed_models, *settings.model_aliases]))


def _model_card(model_id: str, ctx: AppContext) -> dict[str, Any]:
    """OpenAI's model object, plus the ``language`` values a request may name (ISO 639-1):
    every id is served by the one loaded model, so all cards carry its languages."""
    card: dict[str, Any] = {
        "id": model_id,
        "object": "model",
        "created": ctx.created,
        "owned_by": "gigaam",
    }
    languages = ctx.service.languages
    if languages is not None:
        card["languages"] = list(languages)
    return card


@router.get("/models")
async def list_models(request: Request) -> JSONResponse:
    ctx = _authenticate(request)
    data = [_model_card(m, ctx) for m in _model_ids(ctx.settings)]
    return JSONResponse({"object": "list", "data": data})


@router.get("/models/{model_id:path}")
async def retrieve_model(request: Request, model_id: str) -> JSONResponse:
    ctx = _authenticate(request)
    if model_id not in _model_ids(ctx.settings):
        raise not_found(
            f"The model '{model_id}' does not exist", param="model", code="model_not_found"
        )
    return JSONResponse(_model_card(model_id, ctx))


# -- health and metrics (no auth: Docker HEALTHCHECK and Prometheus scrape them) -------------


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    ctx = _ctx(request)
    service = ctx.service
    loaded = service.state == "ready"
    body: dict[str, Any] = {
        "status": {"ready": "ok", "loading": "loading"}.get(service.state, "error"),
        "model": ctx.settings.model,
        "device": service.device,
        "loaded": loaded,
    }
    if service.error:
        body["error"] = service.error
    if not loaded and service.reason:
        body["reason"] = service.reason
    database_error = await _jobs_database_error(request)
    if database_error is not None:  # a shared job store that cannot be reached: not ready
        body["status"], body["jobs_database"] = "error", "unavailable"
        body["error"] = database_error
    return JSONResponse(body, status_code=200 if loaded and database_error is None else 503)


async def _jobs_database_error(request: Request) -> str | None:
    """Why the shared job database cannot be used (one ``SELECT 1``), or None.

    Only with ``JOBS_DATABASE_URL``: a replica that cannot reach the shared store should
    leave the load balancer's rotation. The embedded SQLite store is a local file whose
    problems are reported on the job routes instead.
    """
    jobs: JobsState = request.app.state.jobs
    if not jobs.shared:
        return None
    if jobs.service is None:
        return jobs.error or "the job store is not open yet"
    return await anyio.to_thread.run_sync(jobs.service.database_error)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    body, media_type = _ctx(request).metrics.render()
    return Response(body, media_type=media_type)


# -- translations: out of scope ----------------------------------------------------------------


@router.post("/audio/translations")
async def translations(request: Request) -> Response:
    _authenticate(request)
    raise translation_unsupported()


# -- transcriptions ----------------------------------------------------------------------------


@router.post("/audio/transcriptions")
async def transcriptions(request: Request) -> Response:
    ctx = _authenticate(request)
    record = record_of(request)
    request_id = record.request_id
    place = admit(ctx.service, request_id)
    form: FormData | None = None
    session: Session | None = None
    try:
        form = await read_form(
            request, max_bytes=ctx.settings.max_upload_bytes, tmp_dir=ctx.tmp_dir
        )
        params = parse_transcription_params(form.fields, ctx.settings)
        check_language(params.language, ctx.service.languages, ctx.settings.model)
        # before any audio is read; off the loop: a first compile can take a quarter second
        await anyio.to_thread.run_sync(ctx.service.check_keywords, keywords_of(params.keywords))
        record.response_format = params.response_format
        record.stream = params.wants_sse
        upload = form.audio_file()
        session = place.session(
            FileSource(upload.path), session_options(params, ctx.settings), on_release=form.cleanup
        )
        session.start()
    except ClientDisconnect:  # left during the upload: no transcription to count yet
        record.client_disconnected = True
        return Response(status_code=400)
    finally:
        if session is None:  # nothing was handed over: release here
            place.close()
            if form is not None:
                form.cleanup()

    started = time.perf_counter()
    try:
        if params.wants_sse:
            return await _stream(request, ctx, session, params, started)
        return await _respond(request, ctx, session, params, started)
    except BaseException:
        session.cancel()
        raise


def session_options(params: TranscriptionParams, settings: Settings) -> SessionOptions:
    """The core's options for one request: the server's pipeline settings + what it asked."""
    return SessionOptions(
        pipeline=pipeline_options(settings),
        language=params.language,
        speakers=speaker_options(params.diarization),
        keywords=keywords_of(params.keywords),
    )


def speaker_options(diarization: DiarizationParams | None) -> SpeakerOptions | None:
    """Speaker labelling as the core takes it (``None``: not asked for)."""
    if diarization is None:
        return None
    known = tuple(KnownSpeaker(k.name, k.audio) for k in diarization.known_speakers)
    return SpeakerOptions(count=diarization.count, known=known)


async def _next_event(request: Request, session: Session, timeout: float) -> SessionEvent | None:
    """Wait up to ``timeout`` for the session, checking the client before every wait.

    Returns None on timeout. A disconnected client cancels the session (which stops the
    pipeline and the decoder) and raises ``ClientDisconnect``. The check runs even while events
    keep coming, so a client that leaves a long transcription stops it within one segment.
    Progress events are only for durable jobs and are skipped here.
    """
    deadline = time.monotonic() + timeout
    while True:
        if await request.is_disconnected():
            session.cancel()
            raise ClientDisconnect()
        remaining = deadline - time.monotonic()
        event = await session.next(min(DISCONNECT_POLL_S, max(remaining, 0.0)))
        if isinstance(event, ProgressEvent):
            continue
        if event is not None or remaining <= DISCONNECT_POLL_S:
            return event


def _finish(request: Request, ctx: AppContext, duration: float, started: float) -> None:
    record_of(request).audio_seconds = duration
    ctx.metrics.observe_transcription(duration, time.perf_counter() - started)


def _client_left(request: Request, ctx: AppContext) -> Response:
    """The one place a transcription is counted as cancelled because its client went away.

    Marks the request for the access log (status 499) and answers with an empty 400 that
    nobody will read: the connection is already gone.
    """
    record = record_of(request)
    if not record.client_disconnected:
        record.client_disconnected = True
        ctx.metrics.transcriptions.labels(outcome="cancelled").inc()
    return Response(status_code=400)


def _failure(request: Request, ctx: AppContext, error: ServiceError) -> ApiError:
    record = record_of(request)
    api_error = from_service_error(error)
    record.error_code = api_error.code
    ctx.metrics.transcriptions.labels(outcome=error.outcome).inc()
    return api_error


async def _respond(
    request: Request,
    ctx: AppContext,
    session: Session,
    params: TranscriptionParams,
    started: float,
) -> Response:
    segments: list[Segment] = []
    try:
        while True:
            event = await _next_event(request, session, ctx.keepalive_seconds)
            if event is None:
                continue
            if isinstance(event, SegmentEvent):
                segments.append(event.segment)
            elif isinstance(event, SpeakersEvent):  # who spoke when: label and split
                segments = split_segments(segments, event.turns, start_id=0)
            elif isinstance(event, DoneEvent):
                duration = event.duration
                break
            elif isinstance(event, FailedEvent):
                raise _failure(request, ctx, event.error)
    except ClientDisconnect:
        return _client_left(request, ctx)
    transcript = Transcript(segments=segments, duration=duration)
    languages = ctx.service.languages or ()
    transcript.language = transcript_language(params.language, transcript.text, languages)
    rendered = render(transcript, params.response_format, params.granularities)
    _finish(request, ctx, duration, started)
    return Response(rendered.body, media_type=rendered.media_type)


async def _stream(
    request: Request,
    ctx: AppContext,
    session: Session,
    params: TranscriptionParams,
    started: float,
) -> Response:
    """SSE response. Waits (up to one keep-alive interval) for the first event first, so an
    input that fails at once (not audio, too long) still gets a plain 4xx envelope."""
    try:
        first = await _next_event(request, session, ctx.keepalive_seconds)
    except ClientDisconnect:
        return _client_left(request, ctx)
    if isinstance(first, FailedEvent):
        raise _failure(request, ctx, first.error)
    outcome = _SseOutcome()

    def close() -> None:
        if not outcome.ended:
            _client_left(request, ctx)
        session.cancel()

    return _ClosingStreamingResponse(
        _sse_events(request, ctx, session, first, started, outcome, params),
        on_close=close,
        media_type=sse.SSE_MEDIA_TYPE,
        headers=sse.SSE_HEADERS,
    )


@dataclass
class _SseOutcome:
    """Whether the stream reached its end (done or error event) rather than being cut off."""

    ended: bool = False


class _ClosingStreamingResponse(StreamingResponse):
    """A streaming response that runs ``on_close`` however it ends.

    Cleanup cannot live in the body generator's ``finally``: when the client leaves as the
    response starts, Starlette cancels the response before the generator ever ran, so its
    ``finally`` never runs and the transcription would go on to the end of the file.
    """

    def __init__(self, content: AsyncIterator[str], *, on_close: Callable[[], None], **kw: Any):
        super().__init__(content, **kw)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def _sse_events(
    request: Request,
    ctx: AppContext,
    session: Session,
    first: SessionEvent | None,
    started: float,
    outcome: _SseOutcome,
    params: TranscriptionParams,
) -> AsyncIterator[str]:
    """The SSE body; the response's ``on_close`` (not this generator) cancels the session.

    ``json``/``text``: a delta per recognised segment as it comes. ``diarized_json``: the
    speakers are known only once the audio is done, so the deltas (with their ``segment_id``)
    and the ``transcript.text.segment`` events all follow the labelling, keep-alives before.
    """
    joiner = DeltaJoiner()
    diarized = sse.DiarizedStream() if params.response_format == "diarized_json" else None
    held: list[Segment] = []
    sent_delta = False
    pending = first
    while True:
        event, pending = pending, None
        if event is None:
            event = await session.next(ctx.keepalive_seconds)
        if event is None:
            yield sse.SSE_KEEPALIVE
        elif isinstance(event, SegmentEvent):
            if diarized is not None:
                held.append(event.segment)
                continue
            delta = joiner.delta(event.segment.text)
            if delta:
                sent_delta = True
                yield sse.sse_delta(delta)
        elif isinstance(event, SpeakersEvent):
            if diarized is not None:
                for segment in split_segments(held, event.turns, start_id=0):
                    for block in diarized.blocks(segment):
                        sent_delta = True
                        yield block
        elif isinstance(event, DoneEvent):
            if not sent_delta:  # no speech: still one delta before done (some clients wait for one)
                yield sse.sse_delta("")
            text = diarized.text if diarized is not None else joiner.text
            yield sse.sse_done(text, event.duration)
            yield sse.SSE_DONE
            outcome.ended = True
            _finish(request, ctx, event.duration, started)
            return
        elif isinstance(event, FailedEvent):
            outcome.ended = True
            error = _failure(request, ctx, event.error)
            yield sse.sse_error(error.body())
            return
