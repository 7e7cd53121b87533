"""Helpers shared by the durable-job tests: submitting, waiting, reading SSE streams."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
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


def is_stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped by a signal (state ``T`` in /proc)."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        states.append(stat.rsplit(")", 1)[-1].split()[0])
    return bool(states) and all(state in "Tt" for state in states)


def freeze_mid_job(
    pid: int, read: Callable[[], tuple[Any, Any]], at_least: float, timeout: float = TIMEOUT
) -> tuple[Any, Any]:
    """SIGSTOP the server process ``pid`` while its job is running with at least ``at_least``
    seconds committed; returns ``read()`` (the job and its segments) as the frozen process
    leaves them. The process stays stopped: the caller kills or continues it.

    Why stepping rather than polling and then stopping: the fixture model recognises a 900 s
    file in about a second on an idle machine, so a stop sent after a poll may land after the
    job's end. Here the process runs in 10 ms slices and is frozen between them, so it is
    caught within one slice of the threshold whatever the speed of the machine. What is read
    must be read twice alike: a commit already sent to a database server lands a moment after
    its client stops.
    """
    deadline = time.monotonic() + timeout
    while True:
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: is_stopped(pid), timeout=10, what="the process to stop")
        first = read()
        time.sleep(0.05)
        state = read()
        job = state[0]
        assert job is not None and job.status not in FINISHED, f"the job ended first: {job}"
        if state == first and job.status == "running" and job.processed_seconds >= at_least:
            return state
        assert time.monotonic() < deadline, "timed out waiting for the job to commit enough"
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.01)
