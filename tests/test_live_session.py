"""The live core (``service/live.py``, its listener and recogniser) without the WebSocket: a
real model service on the golden fixture, the real VAD, events collected from its callback.
What the door cannot show: the audio a session keeps stays bounded, and closing ends its
threads and releases its places.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gigaam_api.audio import RawFormat
from gigaam_api.service.live import LiveSession
from gigaam_api.service.live_events import (
    LiveError,
    LiveEvent,
    LiveOptions,
    TranscriptCompleted,
)
from gigaam_api.service.live_turns import TurnDetection
from gigaam_api.service.metrics import Metrics
from gigaam_api.service.model_service import ModelService
from tests.api_server import real_model_settings
from tests.conftest import CORPUS_DIR
from tests.helpers import wait_until
from tests.realtime_client import pcm_at, silence

RATE = 16000
FORMAT = RawFormat(RATE, 2, 1)


@pytest.fixture(scope="module")
def service(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelService]:
    settings = real_model_settings(
        golden_dir,
        tmp_path_factory.mktemp("models"),
        batch_size=1,
        realtime_interim_seconds=0,
        realtime_max_buffer_seconds=5,
    )
    svc = ModelService(settings, Metrics())
    svc.start()
    assert svc.wait_loaded(60), svc.error
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return pcm_at(CORPUS_DIR / "pisets" / "test_sound_ru.wav", RATE, tmp_path_factory.mktemp("a"))


class Collected:
    def __init__(self) -> None:
        self.events: list[LiveEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: LiveEvent) -> None:
        with self.lock:
            self.events.append(event)

    def of(self, kind: type) -> list[LiveEvent]:
        with self.lock:
            return [e for e in self.events if isinstance(e, kind)]


def open_session(service: ModelService, options: LiveOptions) -> tuple[LiveSession, Collected]:
    events = Collected()
    session = LiveSession(
        service, service.settings, FORMAT, options, events, session_id="sess_test"
    )
    return session, events


def test_kept_audio_stays_bounded_over_a_long_session(service: ModelService, speech: bytes) -> None:
    session, events = open_session(service, LiveOptions())
    try:
        for _ in range(10):  # 10 turns and 50 s of silence in 1 s appends
            for second in range(0, len(speech), RATE * 2):
                session.append(speech[second : second + RATE * 2])
            for _ in range(5):
                session.append(silence(1.0, RATE))
            wait_until(lambda: session.settled, "the session to settle")
            # between turns: the prefix padding (0.3 s), a window and what is not scored yet,
            # whatever the session's length
            assert session.kept_seconds <= 0.5
        assert len(events.of(TranscriptCompleted)) == 10
    finally:
        session.close()
    assert session.finished.wait(30)


def test_an_uncommitted_buffer_is_bounded(service: ModelService) -> None:
    session, events = open_session(service, LiveOptions(turn_detection=None))
    try:
        for _ in range(8):
            session.append(silence(1.0, RATE))
        wait_until(lambda: session.settled, "the session to settle")
        assert session.kept_seconds == 5.0
        codes = {e.code for e in events.of(LiveError)}  # type: ignore[attr-defined]
        assert codes == {"input_audio_buffer_full"}
    finally:
        session.close()
    assert session.finished.wait(30)


def test_closing_mid_final_ends_the_threads_and_frees_the_worker(
    service: ModelService, speech: bytes
) -> None:
    session, _ = open_session(service, LiveOptions(turn_detection=None))
    session.append(speech * 4)
    session.commit()
    session.close()
    assert session.finished.wait(30)
    scheduler = service.scheduler
    assert scheduler is not None
    wait_until(lambda: scheduler.active == 0 and scheduler.pending_batches == 0, "the worker")


def test_turn_detection_parameters_apply(service: ModelService, speech: bytes) -> None:
    quick = LiveOptions(turn_detection=TurnDetection(silence_duration_ms=200))
    session, events = open_session(service, quick)
    try:
        session.append(speech + silence(0.4, RATE) + speech + silence(1.0, RATE))
        wait_until(lambda: len(events.of(TranscriptCompleted)) >= 2, "two turns", timeout=60)
    finally:
        session.close()
    assert session.finished.wait(30)
