"""HTTP routes of durable jobs (``/v1/jobs``), thin over the job service core.

Mounted like every other route, under ``/v1`` and at the root, with the same bearer auth,
``x-request-id`` and error envelope. Submission checks in the order a client can act on:
key (401), capacity (503 ``MAX_JOBS`` / 507 disk) before the body is read, then the body
(413), the fields (400), and the audio itself: what the probe and the first decoded block can
already tell (not audio, empty, longer than ``MAX_AUDIO_SECONDS``) is a 400 now, anything
later fails the job with the same error object.

Events (``GET /v1/jobs/{id}/events``) are built from the store, not from the runner's memory,
so a subscriber sees what is committed whichever process committed it: every segment is one
``job.segment`` event whose SSE id is its sequence number + 1, so ``Last-Event-ID`` resumes
right after the last one received; a late joiner simply starts from 0.

A job's audio (``GET /v1/jobs/{id}/audio``, with ``Range``) is what the web page's player
streams. A player cannot send the bearer key, so an authenticated client may ask for a
short-lived signed link to it (``POST /v1/jobs/{id}/audio/link``, :mod:`audio_links`); the
audio route accepts the key or such a link, and no other route looks at links.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect

from gigaam_api import audio
from gigaam_api.api import audio_links, sse
from gigaam_api.api.auth import check_api_key, check_audio_access
from gigaam_api.api.context import AppContext
from gigaam_api.api.errors import (
    ApiError,
    bad_request,
    database_unavailable,
    insufficient_storage,
    job_not_completed,
    job_not_found,
    jobs_unavailable,
    map_pipeline_error,
    not_found,
    too_many_jobs,
)
from gigaam_api.api.fields import parse_bool
from gigaam_api.api.params import (
    TranscriptionParams,
    check_language,
    parse_granularities,
    parse_response_format,
    parse_transcription_params,
)
from gigaam_api.api.ranges import file_response, media_type_for
from gigaam_api.api.record import record_of
from gigaam_api.api.uploads import FormData, read_form
from gigaam_api.config import Settings
from gigaam_api.formats import render
from gigaam_api.jobs.database import describe_error, is_unavailable
from gigaam_api.jobs.lifecycle import JobsState
from gigaam_api.jobs.model import (
    FINISHED,
    Job,
    JobOptions,
    JobSpeakers,
    deleted_object,
    job_object,
    segment_payload,
)
from gigaam_api.jobs.service import JobLimit, JobService
from gigaam_api.model import transcript_language
from gigaam_api.service.keywords import keywords_of
from gigaam_api.service.model_service import ModelService
from gigaam_api.transcript import Segment

log = logging.getLogger(__name__)

#: How often an events stream looks at the store for new segments and progress.
EVENTS_POLL_S = 0.25
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100

job_router = APIRouter()
T = TypeVar("T")
Args = TypeVarTuple("Args")


async def _db(call: Callable[[*Args], T], *args: *Args) -> T:
    """A job-store call on a worker thread; an unreachable database is a 503, not a 500."""
    try:
        return await anyio.to_thread.run_sync(call, *args)
    except Exception as exc:
        if is_unavailable(exc):
            raise database_unavailable(describe_error(exc)) from None
        raise


def _jobs(request: Request) -> tuple[Settings, JobService]:
    """Settings and the job service, after the key check every job route but the audio has."""
    check_api_key(request.headers, request.app.state.ctx.settings.api_key)
    return _service(request)


def _service(request: Request) -> tuple[Settings, JobService]:
    settings: Settings = request.app.state.ctx.settings
    state: JobsState = request.app.state.jobs
    if state.service is None:
        if state.shared and state.error and state.error.startswith("job database"):
            raise database_unavailable(state.error)
        raise jobs_unavailable(state.error or "not started")
    return settings, state.service


async def _job(service: JobService, job_id: str) -> Job:
    job = await _db(service.get, job_id)
    if job is None:
        raise job_not_found(job_id)
    return job


def _model(request: Request) -> ModelService:
    """The served model's service (its languages, its keyword check)."""
    ctx: AppContext = request.app.state.ctx
    return ctx.service


def _languages(request: Request) -> tuple[str, ...] | None:
    """The languages a job may name: the served model's (``None``: not known yet)."""
    return _model(request).languages


def _audio_gone(job_id: str) -> ApiError:
    """404 for the audio of a job that no longer keeps it (cancelled, being deleted)."""
    return not_found(
        f"Job '{job_id}' has no audio any more", param="job_id", code="audio_not_found"
    )


def _limit_error(exc: JobLimit) -> ApiError:
    return (
        too_many_jobs(exc.message) if exc.kind == "max_jobs" else insufficient_storage(exc.message)
    )


def _check_upload(path: Path, settings: Settings) -> float | None:
    """Probe and decode the first block: what fails now is the client's 400 at submission."""
    info = audio.probe(path)
    with audio.decode_pcm(path, max_seconds=settings.max_audio_seconds, info=info):
        pass
    return info.duration


@job_router.post("/jobs")
async def submit_job(request: Request) -> Response:
    settings, service = _jobs(request)
    request_id = record_of(request).request_id
    try:
        await _db(service.check_capacity)
    except JobLimit as exc:
        raise _limit_error(exc) from None
    form: FormData | None = None
    try:
        form = await read_form(
            request, max_bytes=settings.max_upload_bytes, tmp_dir=service.files.tmp_dir
        )
        # the same checks as the synchronous endpoint; the format is chosen at /result, the
        # options that change the run are stored with the job
        params = parse_transcription_params(form.fields, settings)
        check_language(params.language, _languages(request), settings.model)
        keywords = keywords_of(params.keywords)  # checked off the loop, before the probe
        await anyio.to_thread.run_sync(_model(request).check_keywords, keywords)
        upload = form.audio_file()
        try:
            duration = await anyio.to_thread.run_sync(_check_upload, upload.path, settings)
        except Exception as exc:
            raise map_pipeline_error(exc, request_id) from None
        filename = upload.filename or "audio"
        try:
            options, references = _job_options(params)
            job = await _db(service.submit, upload.path, filename, duration, options, references)
        except JobLimit as exc:
            raise _limit_error(exc) from None
    except ClientDisconnect:
        record_of(request).client_disconnected = True  # logged as 499
        return Response(status_code=400)
    finally:
        if form is not None:
            form.cleanup()  # the upload was moved into the job folder, or is discarded
    log.info("job %s submitted (%s)", job.id, filename)
    return JSONResponse(job_object(job), status_code=202)


@job_router.get("/jobs")
async def list_jobs(request: Request) -> JSONResponse:
    _, service = _jobs(request)
    raw_limit = request.query_params.get("limit") or str(DEFAULT_LIST_LIMIT)
    try:
        limit = int(raw_limit)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise bad_request(
            f"Invalid value for 'limit': {raw_limit!r} (expected 1 to {MAX_LIST_LIMIT})",
            param="limit",
            code="invalid_value",
        )
    after = request.query_params.get("after") or None
    try:
        jobs, has_more = await _db(service.list_jobs, limit, after)
    except KeyError:
        raise job_not_found(after or "") from None
    return JSONResponse(
        {"object": "list", "data": [job_object(j) for j in jobs], "has_more": has_more}
    )


@job_router.get("/jobs/{job_id}")
async def retrieve_job(request: Request, job_id: str) -> JSONResponse:
    _, service = _jobs(request)
    return JSONResponse(job_object(await _job(service, job_id)))


@job_router.delete("/jobs/{job_id}")
async def delete_job(request: Request, job_id: str) -> JSONResponse:
    _, service = _jobs(request)
    if not await _db(service.delete, job_id):
        raise job_not_found(job_id)
    return JSONResponse(deleted_object(job_id))


def _query_fields(request: Request) -> Mapping[str, Sequence[str]]:
    fields: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        fields.setdefault(key, []).append(value)
    return fields


@job_router.get("/jobs/{job_id}/result")
async def job_result(request: Request, job_id: str) -> Response:
    settings, service = _jobs(request)
    fields = _query_fields(request)
    response_format = parse_response_format(request.query_params.get("response_format"), settings)
    granularities = parse_granularities(fields)
    partial = parse_bool(request.query_params.get("partial"), "partial")
    job = await _job(service, job_id)
    if job.status != "completed" and not (partial and job.status != "cancelled"):
        raise job_not_completed(job_id, job.status)
    transcript = await _db(service.transcript, job)
    languages = _languages(request) or ()
    transcript.language = transcript_language(job.options.language, transcript.text, languages)
    rendered = render(transcript, response_format, granularities, names=job.speaker_names)
    return Response(rendered.body, media_type=rendered.media_type)


#: Longest name a speaker may be given.
MAX_SPEAKER_NAME = 64


@job_router.patch("/jobs/{job_id}")
async def update_job(request: Request, job_id: str) -> JSONResponse:
    """Rename a job's speakers: ``{"speakers": {"A": "Анна", "B": "Борис"}}``.

    Names are a view: the stored labels do not change, every format and event shows the names
    (an empty name gives the label back). Unknown labels, a job without speaker labelling, or a
    body of another shape are 400s naming the field.
    """
    _, service = _jobs(request)
    job = await _job(service, job_id)
    try:
        body = await request.json()
    except ValueError:
        raise bad_request("The body must be a JSON object", code="invalid_json") from None
    names = _speaker_names(body, job)
    if not await _db(service.store.rename_speakers, job_id, names):
        raise job_not_found(job_id)
    return JSONResponse(job_object(await _job(service, job_id)))


def _speaker_names(body: object, job: Job) -> dict[str, str]:
    if not isinstance(body, dict) or set(body) != {"speakers"}:
        raise bad_request(
            'The body must be {"speakers": {"<label>": "<name>", ...}}', param="speakers"
        )
    given = body["speakers"]
    if not isinstance(given, dict) or not given:
        raise bad_request("'speakers' must be an object of label to name", param="speakers")
    if job.options.speakers is None:
        raise bad_request(
            f"Job '{job.id}' was not submitted with speaker labelling", param="speakers"
        )
    if not job.speakers:
        raise bad_request(
            f"Job '{job.id}' has no speaker labels yet (it is {job.status})", param="speakers"
        )
    names: dict[str, str] = {}
    for label, name in given.items():
        if label not in job.speakers:
            raise bad_request(
                f"Job '{job.id}' has no speaker {str(label)[:32]!r} "
                f"(its speakers: {', '.join(job.speakers)})",
                param=f"speakers.{str(label)[:32]}",
            )
        if not isinstance(name, str) or len(name.strip()) > MAX_SPEAKER_NAME:
            raise bad_request(
                f"A speaker's name must be a string of at most {MAX_SPEAKER_NAME} characters",
                param=f"speakers.{label}",
            )
        cleaned = " ".join(name.split())
        if any(not ch.isprintable() for ch in cleaned):
            raise bad_request("A speaker's name must be printable", param=f"speakers.{label}")
        names[label] = cleaned
    return names


def _job_options(params: TranscriptionParams) -> tuple[JobOptions, list[bytes]]:
    """What a job keeps of its request: the options, and the known speakers' clips (files)."""
    diarization = params.diarization
    if diarization is None:
        return JobOptions(language=params.language, keywords=params.keywords), []
    speakers = JobSpeakers(
        diarization.num_speakers,
        diarization.min_speakers,
        diarization.max_speakers,
        tuple(k.name for k in diarization.known_speakers),
    )
    clips = [k.audio for k in diarization.known_speakers]
    options = JobOptions(language=params.language, speakers=speakers, keywords=params.keywords)
    return options, clips


# -- events --------------------------------------------------------------------------------


def job_event(event_id: int, event_type: str, payload: Mapping[str, Any]) -> str:
    """One SSE block with an ``id`` (for ``Last-Event-ID``) and an ``event`` name; the data also
    carries ``type`` so clients that only read ``data`` can tell events apart."""
    return f"id: {event_id}\nevent: {event_type}\n" + sse.sse_event({"type": event_type, **payload})


def _progress(job: Job) -> dict[str, Any]:
    body = job_object(job)
    return {
        "job_id": job.id,
        "status": job.status,
        "processed_seconds": body["processed_seconds"],
        "duration": job.duration,
        "progress": body["progress"],
    }


def _terminal(job: Job | None, job_id: str) -> tuple[str, dict[str, Any]]:
    if job is None or job.status == "cancelled":
        return "job.cancelled", {"job_id": job_id}
    if job.status == "failed":
        return "job.failed", {"job": job_object(job), "error": job_object(job)["error"]}
    return "job.completed", {"job": job_object(job)}


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id", "").strip()
    try:
        return max(int(raw), 0) if raw else 0
    except ValueError:
        raise bad_request(
            f"Invalid Last-Event-ID header: {raw!r}", param="Last-Event-ID", code="invalid_value"
        ) from None


@job_router.get("/jobs/{job_id}/audio")
async def job_audio(request: Request, job_id: str) -> Response:
    """The uploaded audio, with Range support so a browser's player can seek (the web page).

    Opens with the key or with a signed link to this job (checked before the job is looked
    up, so a refused link learns nothing about which jobs exist)."""
    ctx: AppContext = request.app.state.ctx
    check_audio_access(
        request.headers,
        _query_fields(request),
        ctx.settings.api_key,
        job_id,
        now=time.time(),
        lifetime=ctx.link_seconds,
    )
    _, service = _service(request)
    job = await _job(service, job_id)
    path = service.files.audio(job_id)
    if not path.is_file():  # cancelled: the record stays until retention, the audio is gone
        raise _audio_gone(job_id)
    try:
        return file_response(
            path,
            media_type=media_type_for(job.filename),
            range_header=request.headers.get("range"),
            if_range=request.headers.get("if-range"),
            filename=job.filename,
        )
    except FileNotFoundError:  # deleted between the check and the stat
        raise _audio_gone(job_id) from None


@job_router.post("/jobs/{job_id}/audio/link")
async def job_audio_link(request: Request, job_id: str) -> JSONResponse:
    """A URL of the job's audio that a player can fetch without a header (see audio_links).

    ``url`` is a path on this server, with the same prefix (``/v1`` or none) as this call.
    Without ``API_KEY`` it is the plain audio path and never expires (``expires_at`` null)."""
    settings, service = _jobs(request)
    await _job(service, job_id)
    if not service.files.audio(job_id).is_file():
        raise _audio_gone(job_id)  # no link to nothing: the page says so at once
    path = quote(request.url.path.removesuffix("/link"))
    body: dict[str, Any] = {
        "object": "transcription.job.audio_link",
        "job_id": job_id,
        "url": path,
        "expires_at": None,
        "expires_in": None,
    }
    if settings.api_key:
        lifetime = request.app.state.ctx.link_seconds
        link = audio_links.sign(settings.api_key, job_id, now=time.time(), lifetime=lifetime)
        body.update(url=f"{path}?{link.query()}", expires_at=link.expires, expires_in=lifetime)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@job_router.get("/jobs/{job_id}/events")
async def job_events(request: Request, job_id: str) -> Response:
    _, service = _jobs(request)
    await _job(service, job_id)
    cursor = _last_event_id(request)
    keepalive: float = request.app.state.ctx.keepalive_seconds
    return StreamingResponse(
        _event_stream(request, service, job_id, cursor, keepalive),
        media_type=sse.SSE_MEDIA_TYPE,
        headers=sse.SSE_HEADERS,
    )


async def _event_stream(
    request: Request, service: JobService, job_id: str, cursor: int, keepalive: float
) -> AsyncIterator[str]:
    """Segments from ``cursor`` on, progress when it changes, then one terminal event.

    The job row is read *before* the segments: a job seen finished has all its segments
    committed already, so the terminal event can never overtake a segment.
    """
    last_progress: tuple[str, float] | None = None
    last_write = time.monotonic()
    while True:
        try:
            job = await anyio.to_thread.run_sync(service.get, job_id)
            segments: list[Segment] = []
            if job is not None and job.segment_count > cursor:
                segments = await anyio.to_thread.run_sync(service.store.segments, job_id, cursor)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # the database is away for a moment: keep the stream open (keep-alives), retry
            job, segments = None, []
            unavailable = True
        else:
            unavailable = False
        for segment in segments:
            cursor = segment.id + 1
            payload = segment_payload(segment, job.speaker_names if job else None)
            yield job_event(cursor, "job.segment", {"job_id": job_id, **payload})
            last_write = time.monotonic()
        if job is not None and (job.status, job.processed_seconds) != last_progress:
            last_progress = (job.status, job.processed_seconds)
            if job.status != "cancelled":
                yield job_event(cursor, "job.progress", _progress(job))
                last_write = time.monotonic()
        if not unavailable and (job is None or job.status in FINISHED):
            event_type, payload = _terminal(job, job_id)
            yield job_event(cursor + 1, event_type, payload)
            return
        if time.monotonic() - last_write >= keepalive:
            yield sse.SSE_KEEPALIVE
            last_write = time.monotonic()
        if await request.is_disconnected():
            return
        await asyncio.sleep(EVENTS_POLL_S)
