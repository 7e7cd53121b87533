"""The model and its inference worker, loaded in the background at start-up.

Loading can take minutes (the first run downloads ~880 MB of weights and builds the graph),
and the server must answer ``/health`` (503, ``loaded: false``) meanwhile so Docker's
HEALTHCHECK and clients can tell "starting" from "down". So the app starts at once and a
thread loads the model; work is refused until it is ready (``not_ready``: HTTP 503 +
``Retry-After``, a Wyoming ``error`` event).

A first start heals itself: a failure that time or the operator can fix (the network is down,
the mirror answers 5xx, the disk is full, ``MODELS_DIR`` is not writable) is retried here, with
a capped exponential backoff, for as long as the process runs. Exiting instead would leave the
fix to a restart policy, and Docker restarts only exited containers, not unhealthy ones; a
``restart: unless-stopped`` loop would also restart the download from scratch and lose the
``/health`` answer that says why. Meanwhile ``/health`` is 503 with the reason, and the log
has one line per try, without a traceback (the error is expected, not a bug). Errors that no
retry can fix (a device the runtime does not have, an unreadable graph) end in ``failed``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gigaam_api.catalogue import CATALOGUE
from gigaam_api.chunking import SHORT_AUDIO_LIMIT
from gigaam_api.config import Settings
from gigaam_api.constants import SAMPLE_RATE
from gigaam_api.loading import load_model_from_settings
from gigaam_api.model import AsrModel, Result
from gigaam_api.model.engine import DeviceError, EngineError, resolve_device
from gigaam_api.scheduler import InferFn, QueueFull, Scheduler, SchedulerClosed, Ticket
from gigaam_api.service.errors import ServiceError, not_ready, queue_full, shutting_down
from gigaam_api.service.keywords import ContextGraph, Keyword, compile_for, keywords_of
from gigaam_api.service.metrics import Metrics
from gigaam_api.service.speakers import SpeakerModel
from gigaam_api.weights import WeightsError

log = logging.getLogger(__name__)

State = Literal["loading", "ready", "failed", "stopped"]
#: Builds the model from settings; the default downloads/loads the real weights.
Loader = Callable[[Settings], AsrModel]


#: Failures retried until they go away: downloads, the network, the disk, permissions.
RETRIED: tuple[type[Exception], ...] = (WeightsError, OSError)
#: Failures no retry can fix: reported with their message (no traceback), not retried.
CONFIGURATION: tuple[type[Exception], ...] = (DeviceError, EngineError)


@dataclass(frozen=True, slots=True)
class Decoding:
    """How one request's waves are decoded: the tag its batches carry to the worker.

    Per request, not per server, so a model call that combines requests still decodes each
    wave as its own request asked: ``language`` restricts the output to that language's
    alphabet (``None``: the model chooses), ``keywords`` is the request's compiled keyword
    graph (``None``: plain greedy decoding).
    """

    language: str | None = None
    keywords: ContextGraph | None = None


#: A request that asked for nothing special.
PLAIN = Decoding()


def decode_waves(
    transcribe: Callable[..., Sequence[Result]],
    waves: list[np.ndarray],
    decodings: Sequence[Decoding],
) -> Sequence[Result]:
    """``transcribe(waves)`` with each wave's language and keywords, passed only when some
    wave has them (so a plain call stays the plain ``transcribe(waves)``)."""
    extra: dict[str, object] = {}
    if any(d.language is not None for d in decodings):
        extra["language"] = [d.language for d in decodings]
    if any(d.keywords is not None for d in decodings):
        extra["keywords"] = [d.keywords for d in decodings]
    return transcribe(waves, **extra)


def combine_samples(settings: Settings) -> int:
    """Padded samples one worker turn may combine: the audio of one full pipeline batch.

    That is what the activations of a single request's batch may already need, so combining
    short requests never makes a model call bigger than one long request's (0: combining off).
    """
    if not settings.batch_combine:
        return 0
    return round(settings.batch_size * settings.vad_max_duration * SAMPLE_RATE)


def combines_requests(settings: Settings) -> bool:
    """Whether concurrent requests may share a model call (fp32 only).

    The int8 graph quantizes each product's activations with one scale for the whole call, so
    a wave's int8 result depends on the other waves in it: measured on a full-size model, 4–5
    of 16 clips changed text when combined. A request's text must not depend on who else is
    being served, so with int8 each call holds one request's waves (length-aware splitting
    still applies). Per-frame scales would lift this but cost ~14 % of the int8 encoder's
    time (benchmarks/README.md, "Per-row int8 activations").
    """
    return settings.batch_combine and not settings.quantize_int8


def overlap_samples(settings: Settings) -> int:
    """Padded samples up to which a turn may run beside the call in flight (0: never).

    One short request (``SHORT_AUDIO_LIMIT``, recognised in one pass): enough for any voice
    command or dictated phrase, and small enough that two calls in flight never hold more
    activations than one long batch plus one clip.
    """
    if not settings.overlap_short_calls:
        return 0
    return round(SHORT_AUDIO_LIMIT * SAMPLE_RATE)


class ModelService:
    """Owns the loaded model and the :class:`Scheduler` that is its only user."""

    #: Seconds before the first retry of a failed load; doubled after each failure…
    retry_first_s: float = 5.0
    #: …up to this many (a host that stays offline is retried every five minutes).
    retry_max_s: float = 300.0

    def __init__(self, settings: Settings, metrics: Metrics, loader: Loader | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self._loader = loader or load_model_from_settings
        self._lock = threading.Lock()
        self.state: State = "loading"
        self.error: str | None = None
        #: Why the service is not ready yet (the last failure and the next try), for /health.
        self.reason: str | None = None
        #: Failed load attempts so far.
        self.attempts = 0
        self._stopping = threading.Event()
        self.model: AsrModel | None = None
        self.scheduler: Scheduler[Result] | None = None
        self.load_seconds: float | None = None
        self._thread: threading.Thread | None = None
        #: The speaker-embedding model, loaded on the first request that labels speakers.
        self.speakers = SpeakerModel(
            settings.diarization_model,
            settings.models_dir,
            threads=settings.diarization_threads,
            int8=settings.diarization_int8,
        )
        #: The server-wide ``KEYWORDS``, merged into every request's.
        self.keywords: tuple[Keyword, ...] = keywords_of(settings.keyword_specs)

    def start(self) -> None:
        """Begin loading on a background thread (returns immediately)."""
        self._thread = threading.Thread(target=self._load, name="model-loader", daemon=True)
        self._thread.start()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Block until loading ended (either way); True when ready. For the CLI and tests."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state == "ready"

    def _fail(self, message: str) -> None:
        with self._lock:
            if self.state == "loading":
                self.state = "failed"
                self.error = self.reason = message

    def _load_with_retries(self) -> AsrModel | None:
        """The model, retrying expected failures; ``None`` once failed or stopped."""
        wait = self.retry_first_s
        while not self._stopping.is_set():
            try:
                return self._loader(self.settings)
            except RETRIED as exc:
                self.attempts += 1
                message = str(exc) or type(exc).__name__
                if isinstance(exc, OSError) and not isinstance(exc, WeightsError):
                    message = f"{exc.strerror or type(exc).__name__}: {exc.filename or ''}"
                self.reason = f"{message} (attempt {self.attempts}; next try in {wait:.0f} s)"
                log.error(
                    "model %s could not be loaded (attempt %d): %s; retrying in %.0f s",
                    self.settings.model,
                    self.attempts,
                    message,
                    wait,
                )
            except CONFIGURATION as exc:
                log.error("model %s cannot be loaded: %s", self.settings.model, exc)
                self._fail(str(exc))
                return None
            except Exception as exc:  # a bug: keep the traceback
                log.exception("model %s failed to load", self.settings.model)
                self._fail(f"{type(exc).__name__}: {exc}")
                return None
            if self._stopping.wait(wait):
                return None
            wait = min(wait * 2, self.retry_max_s)
        return None

    def _load(self) -> None:
        started = time.perf_counter()
        log.info("loading model %s", self.settings.model)
        model = self._load_with_retries()
        if model is None:
            return
        try:  # KEYWORDS the model cannot write: a configuration error, said at once
            compile_for(model, self.keywords, (), self.settings.keywords_boost)
        except ServiceError as exc:
            log.error("KEYWORDS cannot be used with model %s: %s", model.name, exc.message)
            self._fail(f"KEYWORDS: {exc.message}")
            return
        scheduler: Scheduler[Result] = Scheduler(
            _per_wave(model),
            self.settings.max_queue,
            on_batch=self.metrics.observe_batch,
            combine_samples=combine_samples(self.settings),
            combine_requests=combines_requests(self.settings),
            overlap_samples=overlap_samples(self.settings),
        )
        with self._lock:
            if self.state != "loading":  # shut down while loading: never start the worker
                return
            self.model = model
            self.scheduler = scheduler.start()
            self.load_seconds = time.perf_counter() - started
            self.state = "ready"
            self.reason = None
        self.metrics.bind_queue(
            lambda: scheduler.active, lambda: scheduler.pending_batches, scheduler.max_active
        )
        self.metrics.model_loaded.set(1)
        log.info(
            "model %s ready on %s in %.1f s",
            model.name,
            self.device,
            self.load_seconds,
        )

    @property
    def device(self) -> str:
        """The device the model runs (or will run) on: resolved, never ``auto``."""
        if self.model is not None:
            return self.model.device
        try:
            return resolve_device(self.settings.device)[0]
        except DeviceError:
            return self.settings.device  # not available: /health says so in its reason

    @property
    def languages(self) -> tuple[str, ...] | None:
        """The languages a request may name (ISO 639-1): the loaded model's; before it is
        loaded, the catalogue's for ``MODEL`` (``None`` for a local checkpoint not loaded
        yet, whose vocabulary decides)."""
        model = self.model
        if model is not None:
            return model.languages
        known = CATALOGUE.get(self.settings.model)
        if known is None or self.settings.checkpoint_path is not None:
            return None
        return known.languages

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def compile_keywords(self, request: Sequence[Keyword]) -> ContextGraph | None:
        """``KEYWORDS`` + a request's keywords as the loaded model's graph (``None``: none at
        all), or a ``ServiceError`` naming a phrase it cannot write (param ``keywords``); the
        model must be loaded (:meth:`admit` saw to it)."""
        if self.model is None:
            raise not_ready()
        return compile_for(self.model, self.keywords, request, self.settings.keywords_boost)

    def check_keywords(self, request: Sequence[Keyword]) -> None:
        """Refuse now a keyword the loaded model cannot write (a job at submission); while the
        model still loads nothing can be checked, and the job's run says it instead."""
        if self.model is not None and request:
            self.compile_keywords(request)

    def admit(
        self,
        request_id: str,
        *,
        background: bool = False,
        interim: bool = False,
        bounded: bool = True,
    ) -> Ticket[Result]:
        """A scheduler ticket, or a :class:`~gigaam_api.service.errors.ServiceError` saying
        why not (loading or failed, queue full, shutting down). Doors admit through
        :func:`gigaam_api.service.session.admit`, which names the priority class."""
        scheduler = self.scheduler
        if self.state == "stopped":
            raise shutting_down()
        if self.state != "ready" or scheduler is None:
            raise not_ready(self.error if self.state == "failed" else None)
        try:
            return scheduler.admit(
                request_id, background=background, interim=interim, bounded=bounded
            )
        except QueueFull as exc:
            raise queue_full(exc.limit) from None
        except SchedulerClosed:
            raise shutting_down() from None

    def stop(self) -> None:
        self._stopping.set()  # ends a retry wait at once
        with self._lock:
            scheduler = self.scheduler
            self.state = "stopped"
        self.metrics.model_loaded.set(0)
        if scheduler is not None:
            scheduler.stop()


def _per_wave(model: AsrModel) -> InferFn[Result]:
    """The scheduler's model call: each wave's tag is its request's :class:`Decoding`
    (language and keywords), so one call may combine requests that asked for different
    ones; a call where none asked for anything is the plain ``transcribe(waves)``."""

    def infer(waves: list[np.ndarray], tags: list[object]) -> list[Result]:
        decodings = [tag if isinstance(tag, Decoding) else PLAIN for tag in tags]
        return list(decode_waves(model.transcribe, waves, decodings))

    return infer
