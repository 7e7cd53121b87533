"""Helpers shared by the durable-job tests: submitting, waiting, reading SSE streams."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

TIMEOUT = 120.0
FINISHED = ("completed", "failed", "cancelled")


def submit(http: httpx.Client, path: Path, prefix: str = "/v1", **data: Any) -> httpx.Response:
    with path.open("rb") as fh:
        return http.post(f"{prefix}/jobs", files={"file": (path.name, fh)}, data=data)


def submit_ok(http: httpx.Client, path: Path, **data: Any) -> dict[str, Any]:
    response = submit(http, path, **data)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_job(
    http: httpx.Client, job_id: str, timeout: float = TIMEOUT, until: tuple[str, ...] = FINISHED
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
        if body["status"] in until:
            return body
        assert time.monotonic() < deadline, f"job {job_id} still {body['status']}"
        time.sleep(0.05)


def wait_for(predicate: Any, timeout: float = TIMEOUT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def read_events(
    http: httpx.Client, job_id: str, last_event_id: str | None = None
) -> list[dict[str, Any]]:
    """The whole SSE stream (until the server closes it) as ``{"id", "event", "data"}``."""
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line == "":
                if current:
                    events.append(current)
                current = {}
            elif line.startswith(":"):
                events.append({"event": "keep-alive"})
            else:
                field, _, value = line.partition(": ")
                current[field] = json.loads(value) if field == "data" else value
    return events
