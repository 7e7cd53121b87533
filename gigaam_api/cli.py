"""``gigaam-api`` command line: the entry point, its parser and the dispatch to each command.

One entry point for every way people run this: the server (``serve``, here: also what the
Docker image runs), pre-fetching weights for an offline box (``download_cli.py``),
transcribing files locally without a server (``transcribe_cli.py``: same pipeline and
formatters as the HTTP API, so the output is identical), and the clients of a running server
(``jobs_cli.py``, ``listen_cli.py``). Each command module registers its own subparser and
runs it; this module builds the top-level parser, calls the command and turns its error into
the message and exit code.

Exit codes (``cli_common.py``): 0 success, 1 a runtime failure (weights, audio, model), 2 a
usage or settings error (the message names the variable), 130 interrupted. Heavy modules (ONNX
Runtime, the HTTP stack) are imported only by the command that needs them, so ``--help`` and
``download`` start instantly.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import Callable, Sequence

from gigaam_api import __version__
from gigaam_api.cli_common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    command_settings,
)
from gigaam_api.download_cli import add_download_parser, run_download
from gigaam_api.jobs_cli import JobsCliError, add_jobs_parser, run_jobs
from gigaam_api.listen_cli import add_listen_parser, run_listen
from gigaam_api.transcribe_cli import add_transcribe_parser, run_transcribe

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate from :func:`main` so tests and docs can inspect it)."""
    parser = argparse.ArgumentParser(
        prog="gigaam-api",
        description=(
            "OpenAI-compatible Russian speech recognition on GigaAM models. Settings come "
            "from the environment and .env (see .env.example); flags override them."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="start the HTTP server",
        description="Start the OpenAI-compatible HTTP server (POST /v1/audio/transcriptions).",
    )
    serve.add_argument("--host", help="listen address (default: HOST setting, 0.0.0.0)")
    serve.add_argument("--port", type=int, help="listen port (default: PORT setting, 8000)")
    add_download_parser(commands)  # weights ahead, for an offline box (download_cli.py)
    add_transcribe_parser(commands)  # local files, no server (transcribe_cli.py)
    add_jobs_parser(commands)  # durable jobs on a running server (gigaam_api/jobs_cli.py)
    add_listen_parser(commands)  # live text from a server's /v1/realtime (listen_cli.py)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": _serve,
        "download": run_download,
        "transcribe": run_transcribe,
        "jobs": run_jobs,
        "listen": run_listen,
    }
    try:
        return handlers[args.command](args)
    except JobsCliError as exc:
        print(f"gigaam-api: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except CliError as exc:
        print(f"gigaam-api: error: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("gigaam-api: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def exposure_warning(host: str, api_key: str) -> str | None:
    """The warning for a server reachable from the network with no key, else ``None``.

    ``0.0.0.0`` (the default, right in a container) listens on every interface: without
    ``API_KEY`` anyone who can reach the port may use the service.
    """
    if api_key:
        return None
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return None
    try:
        if ipaddress.ip_address(name).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may well be reachable from outside
    return (
        f"API_KEY is empty and the server listens on {host or 'every interface'}: anyone who "
        "can reach this port can use it. Set API_KEY (clients then send it as a Bearer token) "
        "or listen/publish on 127.0.0.1 only (HOST=127.0.0.1, or in Docker "
        '"127.0.0.1:8000:8000")'
    )


def _serve(args: argparse.Namespace) -> int:
    """``serve``: the server under uvicorn (imported here: ``--help`` never loads it)."""
    settings = command_settings(host=args.host, port=args.port)
    import uvicorn

    from gigaam_api.server import create_app

    app = create_app(settings)
    warning = exposure_warning(settings.host, settings.api_key)
    if warning:
        log.warning("%s", warning)
    log.info("listening on http://%s:%d", settings.host, settings.port)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,  # our middleware logs each request once, with id and audio seconds
        timeout_graceful_shutdown=30,  # then cut long streams: Docker's stop waits no longer
    )
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
