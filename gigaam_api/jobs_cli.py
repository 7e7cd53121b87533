"""``gigaam-api jobs …``: durable jobs on a running server, so scripts need no curl loops.

``submit FILE…`` prints one job id per line (``--wait`` then waits and prints each result),
``status ID`` prints the job object, ``result ID -f srt`` prints the result, ``wait ID`` blocks
until the job is finished (exit 0 when completed, 1 when failed or cancelled), ``delete ID``
cancels/deletes. The server is ``--url`` (or ``GIGAAM_URL``, default ``http://127.0.0.1:8000``)
and the key ``--api-key`` (or ``GIGAAM_API_KEY``, else ``API_KEY``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gigaam_api.formats import RESPONSE_FORMATS
from gigaam_api.jobs.model import FINISHED

if TYPE_CHECKING:  # imported when a jobs command runs, so `gigaam-api --help` stays instant
    import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
#: Seconds between two looks at a job while waiting.
POLL_SECONDS = 1.0


class JobsCliError(Exception):
    """Reported as ``error: <message>`` with exit code 1 by the caller."""


def add_jobs_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``jobs`` and its subcommands on the main parser's subparsers."""
    jobs = commands.add_parser(
        "jobs",
        help="submit and follow durable jobs on a running server",
        description="Durable transcription jobs on a running server (/v1/jobs).",
    )
    jobs.add_argument(
        "--url", default=None, help=f"server URL (default: GIGAAM_URL or {DEFAULT_URL})"
    )
    jobs.add_argument(
        "--api-key", default=None, help="API key (default: GIGAAM_API_KEY or API_KEY)"
    )
    actions = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")

    submit = actions.add_parser("submit", help="upload files as jobs; print their ids")
    submit.add_argument("files", nargs="+", type=Path, metavar="FILE")
    submit.add_argument("--wait", action="store_true", help="wait and print each result")
    submit.add_argument("-f", "--format", choices=RESPONSE_FORMATS, default="text")
    submit.add_argument(
        "--language",
        metavar="CODE",
        help="ISO 639-1 language the server's model transcribes (restricts a multilingual "
        "model's output to its alphabet)",
    )
    submit.add_argument(
        "--keyword",
        action="append",
        default=[],
        metavar="PHRASE[:BOOST]",
        help="a name or term to favour, kept with the job (repeatable; sent as keywords[])",
    )

    status = actions.add_parser("status", help="print the job object")
    status.add_argument("job_id", metavar="ID")

    result = actions.add_parser("result", help="print the job's result")
    result.add_argument("job_id", metavar="ID")
    result.add_argument("-f", "--format", choices=RESPONSE_FORMATS, default="text")
    result.add_argument("--words", action="store_true", help="word timestamps (verbose_json)")
    result.add_argument("--partial", action="store_true", help="what is done so far")

    wait = actions.add_parser("wait", help="wait until the job is finished")
    wait.add_argument("job_id", metavar="ID")
    wait.add_argument("--timeout", type=float, default=0, help="seconds (default: no limit)")

    delete = actions.add_parser("delete", help="cancel and delete the job")
    delete.add_argument("job_id", metavar="ID")


def _client(args: argparse.Namespace) -> httpx.Client:
    import httpx

    url = args.url or os.environ.get("GIGAAM_URL") or DEFAULT_URL
    key = args.api_key or os.environ.get("GIGAAM_API_KEY") or os.environ.get("API_KEY") or ""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=600.0)


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code < 400:
        return response
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text.strip() or response.reason_phrase
    raise JobsCliError(f"{response.status_code}: {message}")


def _wait(http: httpx.Client, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout if timeout > 0 else None
    while True:
        job: dict[str, Any] = _check(http.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in FINISHED:
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise JobsCliError(f"job {job_id} is still {job['status']} after {timeout:g} s")
        time.sleep(POLL_SECONDS)


def _result(http: httpx.Client, job_id: str, fmt: str, words: bool, partial: bool) -> str:
    params: dict[str, str] = {"response_format": fmt}
    if words:
        params["timestamp_granularities[]"] = "word"
    if partial:
        params["partial"] = "true"
    return _check(http.get(f"/v1/jobs/{job_id}/result", params=params)).text


def _print(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def run_jobs(args: argparse.Namespace) -> int:
    """Run one ``jobs`` action; returns the exit code (raises :class:`JobsCliError`)."""
    import httpx

    try:
        with _client(args) as http:
            return _run(http, args)
    except httpx.HTTPError as exc:
        raise JobsCliError(f"cannot reach the server: {exc}") from None


def _run(http: httpx.Client, args: argparse.Namespace) -> int:
    action = args.jobs_command
    if action == "submit":
        ids = []
        for path in args.files:
            if not path.is_file():
                raise JobsCliError(f"{path}: no such file")
            with path.open("rb") as fh:
                fields: dict[str, str | list[str]] = {}
                if args.language:
                    fields["language"] = args.language
                if args.keyword:  # one part per phrase, as the openai SDKs send a list
                    fields["keywords[]"] = list(args.keyword)
                job = _check(
                    http.post("/v1/jobs", files={"file": (path.name, fh)}, data=fields)
                ).json()
            ids.append(job["id"])
            if not args.wait:
                _print(job["id"])
        if not args.wait:
            return 0
        failed = 0
        for job_id in ids:
            job = _wait(http, job_id, 0)
            if job["status"] != "completed":
                failed += 1
                print(
                    f"{job_id}: {job['status']}: {(job.get('error') or {}).get('message')}",
                    file=sys.stderr,
                )
                continue
            _print(_result(http, job_id, args.format, False, False))
        return 1 if failed else 0
    if action == "status":
        _print(json.dumps(_check(http.get(f"/v1/jobs/{args.job_id}")).json(), ensure_ascii=False))
        return 0
    if action == "result":
        _print(_result(http, args.job_id, args.format, args.words, args.partial))
        return 0
    if action == "wait":
        job = _wait(http, args.job_id, args.timeout)
        _print(json.dumps(job, ensure_ascii=False))
        return 0 if job["status"] == "completed" else 1
    if action == "delete":
        _check(http.delete(f"/v1/jobs/{args.job_id}"))
        return 0
    raise JobsCliError(f"unknown action {action!r}")
