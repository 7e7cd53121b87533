"""``gigaam-api download``: official weights fetched and verified ahead, for an offline box.

The server and ``transcribe`` then start without the network (the compose file's and the
Kubernetes manifests' preparing step runs it). ``--speakers`` also fetches the speaker
model that labelling speakers uses, and makes its int8 copy (``DIARIZATION_INT8``). The
downloading itself is ``weights.py``'s; this module is only the command: its options, the
model names checked, the paths printed one per line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gigaam_api.catalogue import RUNNABLE_MODELS
from gigaam_api.cli_common import EXIT_OK, EXIT_USAGE, CliError, command_settings
from gigaam_api.weights import WeightsError, ensure_model


def add_download_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``download`` on the main parser's subparsers."""
    download = commands.add_parser(
        "download",
        help="download model weights into MODELS_DIR",
        description=(
            "Download and verify official weights into MODELS_DIR so the server starts "
            "offline later. Default: the MODEL setting."
        ),
    )
    download.add_argument(
        "models", nargs="*", metavar="MODEL", help=f"model names ({', '.join(RUNNABLE_MODELS)})"
    )
    download.add_argument("--models-dir", type=Path, help="target folder (default: MODELS_DIR)")
    download.add_argument(
        "--speakers",
        action="store_true",
        help="also the speaker model for labelling speakers (DIARIZATION_MODEL, or the default)",
    )


def run_download(args: argparse.Namespace) -> int:
    """Fetch the named models (default: ``MODEL``), print their files; raises :class:`CliError`."""
    unknown = [name for name in args.models if name not in RUNNABLE_MODELS]
    if unknown:
        raise CliError(
            f"unknown model {', '.join(unknown)}; choose from {', '.join(RUNNABLE_MODELS)}",
            EXIT_USAGE,
        )
    settings = command_settings(models_dir=args.models_dir)
    for name in args.models or [settings.model]:
        try:
            checkpoint, tokenizer = ensure_model(name, settings.models_dir, settings.weights_url)
        except WeightsError as exc:
            raise CliError(str(exc)) from None
        for path in (checkpoint, tokenizer):
            if path is not None:
                print(path)
    if args.speakers:
        from gigaam_api.speaker_int8 import speaker_model_to_run
        from gigaam_api.speaker_weights import speaker_model_path
        from gigaam_api.speakers import DEFAULT_SPEAKER_MODEL

        try:
            path = speaker_model_path(
                settings.diarization_model or DEFAULT_SPEAKER_MODEL, settings.models_dir
            )
        except WeightsError as exc:
            raise CliError(str(exc)) from None
        print(path)
        # The int8 copy is made here too, so that the first request does not wait for it.
        run = speaker_model_to_run(
            path,
            settings.models_dir,
            int8=settings.diarization_int8,
            threads=settings.diarization_threads,
        )
        if run != path:
            print(run)
    return EXIT_OK
