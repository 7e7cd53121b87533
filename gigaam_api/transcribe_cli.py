"""``gigaam-api transcribe``: audio files transcribed locally, without a server.

The local model is loaded once (``--model``, ``--checkpoint``, or the ``MODEL`` setting) and
each file runs as a core session with a ``DirectWorker`` (``infer = model.transcribe``, no
scheduler), rendered by the same ``formats.render`` as the HTTP API, so the output is the one
the API answers. The per-request options are read as every door reads them: ``--language`` as
``language``, ``--keyword`` as ``keywords[]`` (``keyword_list.py``, compiled with ``KEYWORDS``
through ``service/keywords.py``), ``--diarize``/``--num-speakers`` as ``diarize``/
``num_speakers``. Output goes to stdout or one ``<name>.<ext>`` file per input (``--output``);
a long file shows a progress bar on a terminal.

ONNX Runtime and the core are imported only when the command runs, so ``gigaam-api --help``
stays instant.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from gigaam_api.catalogue import RUNNABLE_MODELS
from gigaam_api.cli_common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CliError, command_settings
from gigaam_api.config import Settings
from gigaam_api.formats import FILE_EXTENSIONS, RESPONSE_FORMATS
from gigaam_api.weights import WeightsError

if TYPE_CHECKING:  # heavy at run time: imported there only when the command runs
    from gigaam_api.model import AsrModel, Result
    from gigaam_api.service.keywords import Keyword
    from gigaam_api.service.session import KeywordCompiler, SessionEvent, SpeakerModelGetter
    from gigaam_api.service.speakers import SpeakerOptions

    #: Speaker labelling for a run (:func:`_speakers`): the options and the model's getter.
    Speakers = tuple[SpeakerOptions, SpeakerModelGetter]
    #: Keywords for a run (:func:`_keywords`): the ``--keyword`` phrases and their compiler.
    Keywords = tuple[tuple[Keyword, ...], KeywordCompiler]

log = logging.getLogger(__name__)

#: Files at least this long get a progress bar (on a terminal); short ones finish at once.
PROGRESS_MIN_SECONDS = 30.0


def add_transcribe_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``transcribe`` on the main parser's subparsers."""
    transcribe = commands.add_parser(
        "transcribe",
        help="transcribe audio files locally, without a server",
        description=(
            "Transcribe audio/video files with the local model and print the result (or write "
            "<name>.<ext> files with --output). Any format FFmpeg decodes works."
        ),
    )
    transcribe.add_argument("files", nargs="+", type=Path, metavar="FILE")
    transcribe.add_argument(
        "-f",
        "--format",
        choices=RESPONSE_FORMATS,
        default="text",
        help="output format (default: text)",
    )
    transcribe.add_argument(
        "-o", "--output", type=Path, metavar="DIR", help="write one file per input into DIR"
    )
    transcribe.add_argument(
        "--words",
        action="store_true",
        help="include word timestamps (verbose_json)",
    )
    transcribe.add_argument(
        "--language",
        metavar="CODE",
        help=(
            "ISO 639-1 code (ru, en, kk, ky, uz) of a language the model serves: the output is "
            "restricted to its alphabet (multilingual models); default: the model chooses"
        ),
    )
    which = transcribe.add_mutually_exclusive_group()
    which.add_argument(
        "--model", choices=RUNNABLE_MODELS, help="model to use (default: MODEL setting)"
    )
    which.add_argument(
        "--checkpoint", type=Path, metavar="PATH", help="local .ckpt file (like CHECKPOINT_PATH)"
    )
    transcribe.add_argument(
        "--tokenizer", type=Path, metavar="PATH", help="tokenizer for an e2e --checkpoint"
    )
    transcribe.add_argument(
        "--diarize",
        action="store_true",
        help="label speakers (who spoke when): speaker names in every format "
        "(the speaker model is DIARIZATION_MODEL, fetched on first use)",
    )
    transcribe.add_argument(
        "--num-speakers",
        type=int,
        metavar="N",
        help="with --diarize: the number of speakers, when known (default: found automatically)",
    )
    transcribe.add_argument(
        "--keyword",
        action="append",
        default=[],
        metavar="PHRASE[:BOOST]",
        help="a name or term to favour (repeatable; also a comma-separated list); with "
        ":BOOST its own strength instead of KEYWORDS_BOOST. KEYWORDS is added to them",
    )


def run_transcribe(args: argparse.Namespace) -> int:
    """Transcribe every file; returns 1 if any failed (each failure said on stderr), else 0.

    Usage problems (settings, missing files, option combinations, a language or keyword the
    model cannot serve) raise :class:`CliError` before any file is read.
    """
    overrides: dict[str, object] = {}
    if args.model is not None:
        # This run only: the model need not be in ALLOWED_MODELS (an API setting), and a
        # CHECKPOINT_PATH from the environment must not shadow the explicit choice.
        overrides.update(model=args.model, allowed_models=[args.model], checkpoint_path="")
    if args.checkpoint is not None:
        overrides.update(checkpoint_path=args.checkpoint)
    if args.tokenizer is not None:
        overrides.update(tokenizer_path=args.tokenizer)
    settings = command_settings(**overrides)
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        raise CliError(f"no such file: {', '.join(missing)}", EXIT_USAGE)

    if args.num_speakers is not None and not args.diarize:
        raise CliError("--num-speakers needs --diarize", EXIT_USAGE)
    if args.num_speakers is not None and not 1 <= args.num_speakers <= 32:
        raise CliError("--num-speakers must be between 1 and 32", EXIT_USAGE)
    if args.format == "diarized_json" and not args.diarize:
        raise CliError("--format diarized_json needs --diarize", EXIT_USAGE)
    model = load_model(settings)
    language = _language(args.language, model)
    keywords = _keywords(args.keyword, settings, model)
    failures = 0
    written: set[Path] = set()
    speakers = _speakers(args, settings) if args.diarize else None
    for path in args.files:
        try:
            body = transcribe_to_text(
                path,
                model.transcribe,
                settings,
                args.format,
                args.words,
                speakers=speakers,
                language=language,
                languages=model.languages,
                keywords=keywords,
            )
        except CliError as exc:
            print(f"gigaam-api: error: {path}: {exc.message}", file=sys.stderr)
            failures += 1
            continue
        if args.output is None:
            _emit(body, sys.stdout)
        else:
            target = _output_path(args.output, path, args.format, written)
            target.write_text(body if body.endswith("\n") or not body else body + "\n", "utf-8")
            log.info("wrote %s", target)
    return EXIT_FAILURE if failures else EXIT_OK


def load_model(settings: Settings) -> AsrModel:
    """The recogniser the settings name, loaded now; a failure is a :class:`CliError` (exit 1)."""
    from gigaam_api.loading import load_model_from_settings  # ONNX Runtime: only when needed

    try:
        return load_model_from_settings(settings)
    except WeightsError as exc:
        raise CliError(str(exc)) from None
    except (OSError, ValueError) as exc:  # checkpoint/tokenizer/provider problems are typed
        raise CliError(f"cannot load the model: {exc}") from None


def _language(requested: str | None, model: AsrModel) -> str | None:
    """``--language`` as the API reads ``language`` (``ru-RU`` → ``ru``; ``auto``, empty: not
    given), checked against the loaded model's languages (a usage error otherwise)."""
    from gigaam_api.service.languages import normalise_language  # as every door reads it

    language = normalise_language(requested)
    if language is not None and language not in model.languages:
        served = ", ".join(model.languages)
        raise CliError(
            f"--language {requested!r}: the model {model.name} transcribes {served}", EXIT_USAGE
        )
    return language


def _keywords(entries: Sequence[str], settings: Settings, model: AsrModel) -> Keywords:
    """``--keyword`` as every door reads keywords (``keyword_list.py``), checked against the
    model now (a phrase it cannot write is a usage error naming it, before any file is read):
    the request's keywords and the compiler the session uses (``KEYWORDS`` merged in)."""
    from gigaam_api.keyword_list import KeywordListError, parse_entries
    from gigaam_api.service.errors import ServiceError
    from gigaam_api.service.keywords import ContextGraph, compile_for, keywords_of

    try:
        request = keywords_of(parse_entries(entries, max_boost=settings.keywords_max_boost))
    except KeywordListError as exc:
        raise CliError(f"--keyword: {exc.message}", EXIT_USAGE) from None
    server = keywords_of(settings.keyword_specs)

    def compile_keywords(wanted: Sequence[Keyword]) -> ContextGraph | None:
        return compile_for(model, server, wanted, settings.keywords_boost)

    try:
        compile_keywords(request)
    except ServiceError as exc:
        where = "--keyword" if request else "KEYWORDS"
        raise CliError(f"{where}: {exc.message}", EXIT_USAGE) from None
    return request, compile_keywords


def _speakers(args: argparse.Namespace, settings: Settings) -> Speakers:
    """Speaker labelling for this run: the options and the model (loaded now, once)."""
    from gigaam_api.service.errors import ServiceError
    from gigaam_api.service.speakers import SpeakerModel, SpeakerOptions
    from gigaam_api.speakers import SpeakerCount

    model = SpeakerModel(
        settings.diarization_model,
        settings.models_dir,
        threads=settings.diarization_threads,
        int8=settings.diarization_int8,
    )
    try:
        model.get()
    except ServiceError as exc:
        raise CliError(exc.message) from None
    return SpeakerOptions(count=SpeakerCount(num_speakers=args.num_speakers)), model.get


def transcribe_to_text(
    path: Path,
    infer: Callable[..., Sequence[Result]],
    settings: Settings,
    response_format: str,
    words: bool = False,
    *,
    progress: bool | None = None,
    speakers: Speakers | None = None,
    language: str | None = None,
    languages: Sequence[str] = (),
    keywords: Keywords | None = None,
) -> str:
    """Run one file through a core session and render it like the HTTP API would.

    ``infer`` is ``model.transcribe``, called directly (no scheduler: one file at a time).
    Audio problems (not audio, no stream, too long, decoder unavailable) come back as
    :class:`CliError` with the core's message — the one the HTTP API would answer.
    ``speakers`` (from :func:`_speakers`) labels speakers as ``diarize=true`` does over HTTP;
    ``keywords`` (from :func:`_keywords`) favours phrases as ``keywords[]`` does.
    """
    from gigaam_api import audio
    from gigaam_api.config import pipeline_options
    from gigaam_api.formats import render
    from gigaam_api.model.language import transcript_language
    from gigaam_api.service.session import (
        DirectWorker,
        DoneEvent,
        FailedEvent,
        SegmentEvent,
        Session,
        SessionOptions,
        SpeakersEvent,
    )
    from gigaam_api.speakers import split_segments
    from gigaam_api.transcript import Segment, Transcript

    source = audio.FileSource(path)
    try:
        total = source.duration or 0.0  # probes here: a bad file fails before the model runs
    except audio.AudioError as exc:
        raise CliError(exc.message) from None
    labelling, speaker_model = speakers if speakers is not None else (None, None)
    wanted, compiler = keywords if keywords is not None else ((), None)
    options = SessionOptions(
        pipeline=pipeline_options(settings),
        speakers=labelling,
        language=language,
        keywords=wanted,
    )
    session = Session(
        source,
        options,
        DirectWorker(infer),
        path.name,
        speaker_model=speaker_model,
        keywords=compiler,
    )
    segments: list[Segment] = []
    duration = 0.0
    for event in _with_progress(session.events(), total, path.name, progress):
        if isinstance(event, SegmentEvent):
            segments.append(event.segment)
        elif isinstance(event, SpeakersEvent):
            segments = split_segments(segments, event.turns, start_id=0)
        elif isinstance(event, DoneEvent):
            duration = event.duration  # exact decoded duration (the probe may not know it)
        elif isinstance(event, FailedEvent):
            raise CliError(event.error.message)
    transcript = Transcript(segments=segments, duration=duration)
    transcript.language = transcript_language(language, transcript.text, languages)
    granularities = ("segment", "word") if words else ("segment",)
    return render(transcript, response_format, granularities).body


def _with_progress(
    events: Iterator[SessionEvent], duration: float, name: str, progress: bool | None
) -> Iterator[SessionEvent]:
    """Pass session events through, advancing a bar over audio seconds on long files (TTY only)."""
    show = sys.stderr.isatty() if progress is None else progress
    if not show or duration < PROGRESS_MIN_SECONDS:
        yield from events
        return
    from tqdm import tqdm

    from gigaam_api.service.session import ProgressEvent

    total = round(duration, 1)
    with tqdm(total=total, unit="s", desc=name, file=sys.stderr, leave=False) as bar:
        for event in events:
            # Absolute positions, not increments: float steps would drift past the total.
            if isinstance(event, ProgressEvent):  # final up to here
                done = min(round(event.seconds, 1), total)
            else:
                done = bar.n
            if done > bar.n:
                bar.n = done
                bar.refresh()
            yield event
        bar.n = total  # trailing silence has no segment: the file is done, so is the bar
        bar.refresh()


def _emit(body: str, stream: TextIO) -> None:
    stream.write(body if body.endswith("\n") or not body else body + "\n")
    stream.flush()


def _output_path(folder: Path, source: Path, response_format: str, taken: set[Path]) -> Path:
    """``folder/<stem>.<ext>``, numbered when two inputs share a stem in one run."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create output folder {folder}: {exc.strerror}") from None
    ext = FILE_EXTENSIONS[response_format]
    target = folder / f"{source.stem}.{ext}"
    number = 2
    while target in taken:
        target = folder / f"{source.stem}-{number}.{ext}"
        number += 1
    taken.add(target)
    return target
