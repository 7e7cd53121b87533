"""Every error the service returns, in OpenAI's envelope.

OpenAI clients read ``error.message`` (and ``type``/``param``/``code``) from
``{"error": {...}}``; FastAPI's default ``{"detail": ...}`` leaves them with a bare status
code, so every path out of the app — our own errors, unknown routes, wrong methods,
validation failures, the service core's own errors (:func:`from_service_error`) and unexpected
crashes — goes through :func:`error_response`.

Status matters as much as the body: the SDKs retry 5xx (three uploads of the same file), so
anything the client got wrong is 4xx and 5xx is kept for our own failures and overload.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, assert_never

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gigaam_api.service.errors import ServiceError, failure_of

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying when we are busy or still loading.
RETRY_AFTER_BUSY_S = 2
RETRY_AFTER_LOADING_S = 10
#: Seconds before retrying a job submission refused by MAX_JOBS (jobs take minutes).
RETRY_AFTER_JOBS_S = 30
#: Seconds a client should wait before retrying while the job database is unreachable.
RETRY_AFTER_DATABASE_S = 5

_DEFAULT_TYPE = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    """An error with its HTTP status and the four OpenAI envelope fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _DEFAULT_TYPE.get(status, "server_error")
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The envelope: all four keys always present (``param``/``code`` may be null)."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


# -- the errors the routes raise, named so call sites read as the contract ---------------


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def not_found(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(404, message, param=param, code=code)


def missing_file() -> ApiError:
    return bad_request(
        "Missing required parameter: 'file'", param="file", code="missing_required_parameter"
    )


def empty_upload() -> ApiError:
    return bad_request("The uploaded file is empty", param="file", code="empty_audio")


def too_large(limit_bytes: int) -> ApiError:
    mib = limit_bytes / (1024 * 1024)
    return ApiError(
        413,
        f"Maximum content size limit ({limit_bytes} bytes, MAX_UPLOAD_MB={mib:g}) exceeded",
        code="request_too_large",
    )


def range_not_satisfiable(size: int) -> ApiError:
    """416 in the OpenAI envelope, with the ``Content-Range`` RFC 9110 asks for."""
    return ApiError(
        416,
        f"Requested range not satisfiable: the file has {size} bytes",
        type="invalid_request_error",
        code="range_not_satisfiable",
        headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
    )


def upload_stalled(seconds: float) -> ApiError:
    return ApiError(
        408,
        f"No upload data received for {seconds:g} s; the request was abandoned",
        type="invalid_request_error",
        code="upload_timeout",
    )


# -- durable jobs (gigaam_api/api/job_routes.py) --


def job_not_found(job_id: str) -> ApiError:
    return ApiError(404, f"No job with id '{job_id}'", param="job_id", code="job_not_found")


def job_not_completed(job_id: str, status: str) -> ApiError:
    return ApiError(
        409,
        f"Job '{job_id}' is {status}, not completed; its result is not available "
        "(pass partial=true for what is done so far)",
        code="job_not_completed",
    )


def too_many_jobs(message: str) -> ApiError:
    return ApiError(
        503, message, code="too_many_jobs", headers={"Retry-After": str(RETRY_AFTER_JOBS_S)}
    )


def insufficient_storage(message: str) -> ApiError:
    return ApiError(507, message, code="insufficient_storage")


def database_unavailable(detail: str) -> ApiError:
    """503 while the shared job database cannot be reached; the client retries later."""
    return ApiError(
        503,
        f"The job database is unavailable: {detail}",
        code="database_unavailable",
        headers={"Retry-After": str(RETRY_AFTER_DATABASE_S)},
    )


def jobs_unavailable(detail: str) -> ApiError:
    return ApiError(
        503, f"Jobs are not available on this server: {detail}", code="jobs_unavailable"
    )


# -- end of durable jobs --


def internal_error(message: str = "Internal server error", *, code: str | None = None) -> ApiError:
    return ApiError(500, message, code=code)


# -- the service core's errors in the envelope ---------------------------------------------


def from_service_error(error: ServiceError) -> ApiError:
    """The HTTP face of a core failure: its kind picks the status and the retry advice.

    The message and code are the core's (the Wyoming door sends the same ones); a bad file is
    the ``file`` parameter's 400, so the SDKs do not retry it; cancelled work is 499.
    """
    message, code = error.message, error.code
    match error.kind:
        case "invalid_audio":
            return bad_request(message, param=error.param or "file", code=code)
        case "not_ready":
            retry = {"Retry-After": str(RETRY_AFTER_LOADING_S)}
            return ApiError(503, message, code=code, headers=retry)
        case "busy":
            retry = {"Retry-After": str(RETRY_AFTER_BUSY_S)}
            return ApiError(503, message, code=code, headers=retry)
        case "shutting_down":
            return ApiError(503, message, code=code)
        case "cancelled":
            return ApiError(499, message, type="cancelled", code=code)
        case "internal":
            return internal_error(message, code=code)
        case _:
            assert_never(error.kind)


def map_pipeline_error(error: BaseException, request_id: str) -> ApiError:
    """What the client is told when a transcription (or the probe of its upload) fails."""
    if isinstance(error, ApiError):
        return error
    return from_service_error(failure_of(error, request_id))


# -- handlers that replace FastAPI's {"detail": ...} ---------------------------------------


async def _api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _service_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(from_service_error(exc))


async def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        error = not_found(f"Unknown route: {request.method} {request.url.path}")
    elif exc.status_code == 405:
        allowed = headers.get("Allow", "")
        error = ApiError(
            405,
            f"Method {request.method} is not allowed on {request.url.path}"
            + (f" (allowed: {allowed})" if allowed else ""),
        )
    else:
        error = ApiError(exc.status_code, str(exc.detail))
    error.headers.update(headers)
    return error_response(error)


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
    message = str(first.get("msg", "invalid request"))
    return error_response(bad_request(message, param=".".join(location) or None))


def install_error_handlers(app: FastAPI) -> None:
    """Route every framework error through the envelope (crashes are handled in middleware)."""
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(ServiceError, _service_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
