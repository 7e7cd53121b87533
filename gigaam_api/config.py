"""Settings: every variable the README documents, read from the environment and `.env`, validated.

Invalid values stop start-up with a message that names the variable (see :func:`load_settings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gigaam_api.catalogue import CATALOGUE, OFFICIAL_WEIGHTS_URL, RUNNABLE_MODELS
from gigaam_api.formats import ResponseFormat
from gigaam_api.keyword_list import (
    BOOST_CEILING,
    KeywordListError,
    KeywordSpec,
    format_entry,
    parse_entries,
)
from gigaam_api.options import (
    ChunkingOptions,
    PipelineOptions,
    SegmentationOptions,
    VadOptions,
)

CsvList = Annotated[list[str], NoDecode]
#: ``KEYWORDS``: read by :meth:`Settings._keywords` into entries (``phrase`` / ``phrase:boost``).
KeywordList = Annotated[list[str], NoDecode]

#: ``KEYWORDS_BOOST`` by default: the engine's own default (``model.keywords.DEFAULT_BOOST``,
#: which this layer may not import; a test keeps the two equal), natural-log units a whole
#: phrase gains (4 ≈ an alternative up to e⁴ ≈ 55 times less likely may win).
DEFAULT_KEYWORDS_BOOST = 4.0
#: ``KEYWORDS_MAX_BOOST`` by default: the strongest boost a request may ask for.
DEFAULT_KEYWORDS_MAX_BOOST = 10.0

#: OpenAI's diarizing model id: accepted as ``model`` always, meaning "the loaded model, with
#: speaker diarization on" (``api/params.py``); listed by ``/v1/models`` as a default alias.
DIARIZE_MODEL_ALIAS = "gpt-4o-transcribe-diarize"


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the variable."""


#: URL schemes JOBS_DATABASE_URL accepts; all mean PostgreSQL through psycopg 3.
POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg", "postgres")


class Settings(BaseSettings):
    """Service configuration. Field names are the environment variable names, lower-cased."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    model: str = "v3_ctc"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    api_key: str = Field(default="", repr=False)
    models_dir: Path = Path("/data/models")
    weights_url: str = OFFICIAL_WEIGHTS_URL
    quantize_int8: bool = False
    batch_size: int = Field(default=4, ge=1, le=64)
    #: Let the worker combine concurrent requests' batches into one model call (up to the
    #: audio of one full batch, BATCH_SIZE × VAD_MAX_DURATION) and group waves by length.
    batch_combine: bool = True
    #: Let a short interactive call (≤ 25 s of padded audio) run beside the model call in
    #: flight, so a burst of short requests keeps both cores busy (scheduler.py).
    overlap_short_calls: bool = True
    num_threads: int = Field(default=4, ge=1, le=256)
    max_upload_mb: int = Field(default=2048, ge=1)
    #: Where uploads are spooled (each server in a folder of its own, see api/spool.py);
    #: empty: ``gigaam-uploads`` in the system temp folder.
    upload_dir: Path | None = None
    max_audio_seconds: float = Field(default=36000, ge=0)
    max_queue: int = Field(default=8, ge=1)
    vad_min_duration: float = Field(default=ChunkingOptions.min_duration, gt=0)
    vad_max_duration: float = Field(default=ChunkingOptions.max_duration, gt=0)
    vad_strict_limit: float = Field(default=ChunkingOptions.strict_limit, gt=0)
    vad_new_chunk_threshold: float = Field(default=ChunkingOptions.new_chunk_threshold, ge=0)
    vad_threshold: float = Field(default=VadOptions.threshold, gt=0, lt=1)
    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"
    log_json: bool = False
    default_response_format: ResponseFormat = "json"
    allowed_models: CsvList = list(RUNNABLE_MODELS)
    model_aliases: CsvList = [
        "whisper-1",
        "gpt-4o-transcribe",
        "gpt-4o-mini-transcribe",
        DIARIZE_MODEL_ALIAS,
    ]
    #: Use this local checkpoint instead of downloading `MODEL` (fine-tunes, air-gapped, tests).
    checkpoint_path: Path | None = None
    #: SentencePiece tokenizer for an e2e `CHECKPOINT_PATH` (default: `<stem>_tokenizer.model`).
    tokenizer_path: Path | None = None
    #: Wyoming (Home Assistant) server: ``tcp://HOST:PORT`` or ``unix:///path``; empty = off.
    wyoming_uri: str = ""
    wyoming_max_seconds: float = Field(default=60.0, gt=0)
    wyoming_max_clients: int = Field(default=16, ge=1)
    #: Seconds a Wyoming client may send nothing (mid-utterance or idle) before it is dropped.
    wyoming_timeout: float = Field(default=30.0, gt=0)
    wyoming_zeroconf: bool = False

    # -- live transcription (OpenAI Realtime, WebSocket /v1/realtime; gigaam_api/api/realtime) --
    #: Live sessions open at once; one more is answered with an error event and closed.
    realtime_max_sessions: int = Field(default=16, ge=0)
    #: Longest a live session may stay open (seconds; OpenAI's limit is 60 minutes).
    realtime_max_session_seconds: float = Field(default=3600, gt=0)
    #: Most uncommitted audio a session keeps when the client commits turns itself (seconds).
    realtime_max_buffer_seconds: float = Field(default=300, gt=0)
    #: Seconds a client may send nothing before its session is closed.
    realtime_idle_timeout: float = Field(default=60, gt=0)
    #: Least seconds between two interim recognitions of the turn being spoken; 0: none.
    realtime_interim_seconds: float = Field(default=1.0, ge=0)
    #: Largest WebSocket message taken (KiB; base64 audio is 4/3 of its bytes).
    realtime_max_message_kb: int = Field(default=15360, ge=1)
    #: Web origins (``https://host[:port]``) besides the server's own whose pages may open a
    #: live session in a visitor's browser; ``*``: any. Programs send no ``Origin``.
    allowed_origins: CsvList = []

    # -- speaker labelling (gigaam_api/speakers), loaded on the first request that asks --
    #: A speaker model name from the speaker catalogue (fetched into MODELS_DIR and verified)
    #: or a local file (.onnx, or Resemblyzer's pretrained.pt or wheel); empty: the default.
    diarization_model: str = ""
    #: ONNX Runtime threads of the speaker model (it runs on the request's own thread, beside
    #: the recogniser's worker).
    diarization_threads: int = Field(default=1, ge=1, le=64)
    #: Run an ONNX speaker model (CAM++, ResNet34) as an int8 copy made on first use from the
    #: real weights and checked against them (gigaam_api/speakers/int8.py); a copy that fails
    #: the check is not used. About a third less CPU per window than fp32.
    diarization_int8: bool = True

    # -- keywords (names and terms the decoder favours; gigaam_api/keyword_list.py) --
    #: Phrases favoured in every request, merged with the request's own: a list separated by
    #: commas or line breaks (``phrase`` or ``phrase:boost``), or the path of a UTF-8 file
    #: holding one (a value with a ``/`` in it; lines starting with ``#`` are comments).
    keywords: KeywordList = []
    #: The boost of a phrase that names none: how strongly the decoder favours it.
    keywords_boost: float = Field(default=DEFAULT_KEYWORDS_BOOST, gt=0, le=BOOST_CEILING)
    #: The largest boost a request (or KEYWORDS) may give a phrase; above it → 400.
    keywords_max_boost: float = Field(default=DEFAULT_KEYWORDS_MAX_BOOST, gt=0, le=BOOST_CEILING)

    # -- durable jobs (gigaam_api/jobs) --
    #: Job database (SQLite), uploads and per-job folders.
    jobs_dir: Path = Path("/data/jobs")
    #: Finished jobs (and their files) are deleted after this many hours; 0 keeps them.
    job_retention_hours: float = Field(default=168, ge=0)
    #: Queued + running jobs at most; more → 503 + Retry-After.
    max_jobs: int = Field(default=100, ge=1)
    #: New jobs are refused (507) when JOBS_DIR's disk has less free space than this.
    jobs_min_free_mb: int = Field(default=1024, ge=0)
    #: Jobs transcribed at the same time (oldest first); they share the one inference worker.
    job_concurrency: int = Field(default=1, ge=1, le=64)
    #: Empty: SQLite under JOBS_DIR (one server). ``postgresql://…``: the job store shared by
    #: several replicas (psycopg 3 driver), with JOBS_DIR on storage they all mount.
    jobs_database_url: str = ""
    #: Seconds a replica holds a running job without renewing it; a dead replica's job is
    #: resumed by another one after this. Renewed every third of it while the job runs.
    job_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    #: This replica's name in the job store (who ran a job); empty = hostname-pid-random.
    #: Must be unique among live replicas (a pod name is; a compose service name is not).
    replica_id: str = Field(default="", max_length=100)
    #: Serve the web page at `/` (drop files, watch jobs, read and download transcripts).
    web_ui: bool = True

    @field_validator("allowed_models", "model_aliases", "allowed_origins", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("keywords", mode="before")
    @classmethod
    def _keywords(cls, value: object) -> object:
        """A list or a file of one → its entries, each checked and written back canonically
        (``phrase`` or ``phrase:boost``); the boosts are checked against the maximum below."""
        if isinstance(value, str):
            value = _keywords_text(value.strip())
        if not isinstance(value, list | tuple):
            return value
        try:
            specs = parse_entries([str(item) for item in value])
        except KeywordListError as exc:
            raise ValueError(exc.message) from None
        return [format_entry(phrase, boost) for phrase, boost in specs]

    @field_validator("wyoming_uri")
    @classmethod
    def _wyoming_uri(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        parsed = urlparse(value)
        try:
            port = parsed.port
        except ValueError:
            port = None
        if parsed.scheme == "tcp" and parsed.hostname and port is not None:
            return value
        if parsed.scheme == "unix" and parsed.path:
            return value
        raise ValueError("must be tcp://HOST:PORT (e.g. tcp://0.0.0.0:10300) or unix:///path")

    @field_validator("jobs_database_url")
    @classmethod
    def _jobs_database_url(cls, value: str) -> str:
        value = value.strip()
        scheme = value.partition("://")[0]
        if value and scheme not in POSTGRES_SCHEMES:
            raise ValueError(
                "expected empty (SQLite under JOBS_DIR) or postgresql://USER:PASSWORD@HOST:PORT/DB"
                f", got a {scheme or 'malformed'!r} URL"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("checkpoint_path", "tokenizer_path", "upload_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        known = CATALOGUE.get(self.model)
        if known is not None and known.kind is None:
            raise ValueError(
                f"MODEL={self.model} is not a transcription model; "
                f"choose one of {', '.join(RUNNABLE_MODELS)}"
            )
        if self.checkpoint_path is None and known is not None and not known.runnable:
            raise ValueError(
                f"MODEL={self.model} is not supported by this engine; "
                f"choose one of {', '.join(RUNNABLE_MODELS)}"
            )
        if self.checkpoint_path is None and known is None:
            raise ValueError(
                f"MODEL={self.model} is unknown; choose one of {', '.join(RUNNABLE_MODELS)} "
                "or set CHECKPOINT_PATH to a local checkpoint"
            )
        if self.model not in self.allowed_models:
            raise ValueError(f"MODEL={self.model} must be listed in ALLOWED_MODELS")
        if not self.vad_min_duration <= self.vad_max_duration <= self.vad_strict_limit:
            raise ValueError(
                "VAD_MIN_DURATION <= VAD_MAX_DURATION <= VAD_STRICT_LIMIT must hold "
                f"(got {self.vad_min_duration}, {self.vad_max_duration}, {self.vad_strict_limit})"
            )
        if self.wyoming_zeroconf and not self.wyoming_uri.startswith("tcp://"):
            raise ValueError("WYOMING_ZEROCONF needs WYOMING_URI=tcp://HOST:PORT")
        if self.keywords_boost > self.keywords_max_boost:
            raise ValueError(
                f"KEYWORDS_BOOST ({self.keywords_boost:g}) must not be above "
                f"KEYWORDS_MAX_BOOST ({self.keywords_max_boost:g})"
            )
        try:
            parse_entries(self.keywords, max_boost=self.keywords_max_boost)
        except KeywordListError as exc:
            raise ValueError(f"KEYWORDS: {exc.message}") from None
        return self

    @property
    def keyword_specs(self) -> list[KeywordSpec]:
        """``KEYWORDS`` as (phrase, boost) pairs, checked when the settings were read."""
        return parse_entries(self.keywords)

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def _keywords_text(value: str) -> list[str]:
    """``KEYWORDS``' value as lines: the value itself, or the file it names (with a ``/``)."""
    if "/" not in value:
        return [value]
    try:
        text = Path(value).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(f"cannot read the keyword file {value!r}: {reason}") from None
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning pydantic's report into one line per offending variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            location = "_".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{location}: {message}" if location else message)
        raise SettingsError("invalid settings: " + "; ".join(lines)) from None


def pipeline_options(settings: Settings) -> PipelineOptions:
    """The one mapping from service settings to what a transcription run reads."""
    return PipelineOptions(
        vad=VadOptions(threshold=settings.vad_threshold),
        chunking=ChunkingOptions(
            min_duration=settings.vad_min_duration,
            max_duration=settings.vad_max_duration,
            strict_limit=settings.vad_strict_limit,
            new_chunk_threshold=settings.vad_new_chunk_threshold,
        ),
        segmentation=SegmentationOptions(),
        batch_size=settings.batch_size,
        max_audio_seconds=settings.max_audio_seconds,
    )
