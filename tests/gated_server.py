"""The fixture model behind a gate, on the real server: several requests waiting at once,
made exact rather than timing-dependent.

The model's ``transcribe`` is wrapped in a :class:`Gate`: a test closes it, sends a first
request (the worker enters its call and waits at the gate), sends the others, waits until the
scheduler holds all their batches, and opens the gate. The model itself is the real one (the
fixture v3_ctc checkpoint); what was combined or overlapped is read from the scheduler's
served records. Used by ``tests/test_api_batching.py`` (combining) and
``tests/test_api_overlap.py`` (the second lane).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gigaam_api.config import Settings
from gigaam_api.loading import load_model_from_settings
from gigaam_api.model import AsrModel, Result
from gigaam_api.scheduler import Scheduler, ServedBatch
from gigaam_api.server import create_app
from tests.api_server import real_model_settings, scheduler, serve
from tests.conftest import CORPUS_DIR
from tests.helpers import records_of

#: Seconds any one wait may take (a load, a request, the gate): a guard against a hang.
TIMEOUT = 120.0
#: Short clips of about 3.2 s (16 kHz mono WAV), different recordings.
CLIPS = [
    CORPUS_DIR / "pisets" / "test_sound_ru.wav",
    CORPUS_DIR / "edge_cases" / "pisets_clipped_+20dB_16k.wav",
    CORPUS_DIR / "speech_to_phrase" / "stp_oov_4.wav",
    CORPUS_DIR / "synthetic_espeak" / "wav16k" / "espeak_05_m1.wav",
    CORPUS_DIR / "synthetic_espeak" / "wav16k" / "espeak_08_f4.wav",
    CORPUS_DIR / "voicekit" / "wav16k" / "sample_4.wav",
]


class Gate:
    """Holds the worker inside its model call while closed."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Semaphore(0)
        #: The ``language`` argument of every model call (per-wave lists when any was asked).
        self.languages: list[Any] = []
        #: The ``keywords`` argument of every model call (per-wave graphs when any was asked).
        self.keywords: list[Any] = []

    def loader(self) -> Callable[[Settings], AsrModel]:
        def load(settings: Settings) -> AsrModel:
            model = load_model_from_settings(settings)
            real = model.transcribe

            def transcribe(waves: Any, language: Any = None, keywords: Any = None) -> list[Result]:
                self.entered.release()
                assert self.open.wait(TIMEOUT), "the test never opened the gate"
                self.languages.append(language)
                self.keywords.append(keywords)
                return real(waves, language, keywords)

            model.transcribe = transcribe  # type: ignore[method-assign]
            return model

        return load


def gated_app(
    golden_dir: Path, tmp_path_factory: pytest.TempPathFactory, gate: Gate, **overrides: Any
) -> FastAPI:
    """The fixture-model app with ``gate`` around its model; ``overrides`` go to Settings."""
    settings = real_model_settings(
        golden_dir, tmp_path_factory.mktemp("models"), max_queue=8, **overrides
    )
    return create_app(settings, loader=gate.loader(), tmp_dir=tmp_path_factory.mktemp("uploads"))


def served(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` once its model is loaded; yields the base URL (for a module fixture)."""
    with serve(app) as base:
        assert app.state.ctx.service.wait_loaded(TIMEOUT), app.state.ctx.service.error
        scheduler(app).record_served()
        yield base


def post(url: str, path: Path, request_id: str) -> httpx.Response:
    """Transcribe ``path`` under ``request_id``, the name its served records carry."""
    with path.open("rb") as fh:
        return httpx.post(
            f"{url}/v1/audio/transcriptions",
            files={"file": (path.name, fh)},
            headers={"x-request-id": request_id},
            timeout=TIMEOUT,
        )


class Burst:
    """Posts requests on threads while the worker is held at the gate."""

    def __init__(self, app: FastAPI, url: str, gate: Gate) -> None:
        self.app, self.url, self.gate = app, url, gate
        self.responses: dict[str, httpx.Response] = {}
        self.threads: list[threading.Thread] = []
        while gate.entered.acquire(blocking=False):  # forget the calls made while it was open
            pass
        gate.open.clear()
        self.start("blocker", CLIPS[0])
        assert gate.entered.acquire(timeout=TIMEOUT), "the blocker never reached the model"

    def start(self, request_id: str, path: Path) -> None:
        def run() -> None:
            self.responses[request_id] = post(self.url, path, request_id)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def release(self) -> None:
        self.gate.open.set()
        for thread in self.threads:
            thread.join(TIMEOUT)


def records(app: FastAPI, prefix: str) -> list[ServedBatch]:
    """The batches ``app`` served for the requests whose id starts with ``prefix``."""
    return [r for r in records_of(scheduler(app)) if r.request_id.startswith(prefix)]


@contextmanager
def loaded_scheduler(
    golden_dir: Path, tmp_path: Path, **overrides: Any
) -> Iterator[Scheduler[Any]]:
    """The scheduler of an app (no HTTP server) built from ``overrides``, model loaded."""
    settings = real_model_settings(golden_dir, tmp_path, **overrides)
    app = create_app(settings, tmp_dir=tmp_path)
    service = app.state.ctx.service
    service.start()
    try:
        assert service.wait_loaded(TIMEOUT), service.error
        scheduler(app).record_served()
        yield scheduler(app)
    finally:
        service.stop()
