"""The core session: one run loop for every door, over a file or pushed audio.

Real pieces throughout: the decoder worker, Silero VAD, the golden fixture model (random
weights: the words are nonsense, but deterministic, so two runs over the same samples must
give the same segments).
"""

from __future__ import annotations

import threading
import wave
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from gigaam_api.audio import FileSource, PcmSource, PushedAudio, RawFormat
from gigaam_api.cancellation import Cancelled
from gigaam_api.constants import SAMPLE_RATE
from gigaam_api.model import AsrModel, load_model
from gigaam_api.model.decoding import Result
from gigaam_api.options import PipelineOptions
from gigaam_api.service.session import (
    DirectWorker,
    DoneEvent,
    FailedEvent,
    ProgressEvent,
    SegmentEvent,
    Session,
    SessionEvent,
    SessionOptions,
)
from gigaam_api.transcript import Segment

SPEECH = Path("pisets") / "test_sound_ru.wav"  # 3.2 s, 16 kHz mono
LONG = Path("longform") / "longform_espeak_ru.wav"


@pytest.fixture(scope="module")
def model(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsrModel:
    cache = tmp_path_factory.mktemp("graphs")
    return load_model(golden_dir / "v3_ctc" / "v3_ctc.ckpt", num_threads=2, cache_dir=cache)


class CountingWorker(DirectWorker):
    """The model called directly, counting what the session asks of it."""

    def __init__(self, model: AsrModel) -> None:
        super().__init__(model.transcribe)
        self.closed = 0
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()

    def close(self) -> None:
        self.closed += 1


def run(model: AsrModel, source: PcmSource, options: SessionOptions) -> list[SessionEvent]:
    session = Session(source, options, DirectWorker(model.transcribe), "test")
    return list(session.events())


def segments_of(events: Sequence[SessionEvent]) -> list[Segment]:
    return [e.segment for e in events if isinstance(e, SegmentEvent)]


def test_events_are_segments_and_progress_then_done(model: AsrModel, corpus_dir: Path) -> None:
    options = SessionOptions(pipeline=PipelineOptions(batch_size=2))
    events = run(model, FileSource(corpus_dir / LONG), options)
    assert isinstance(events[-1], DoneEvent) and events[-1].duration > 60
    progress = [e.seconds for e in events if isinstance(e, ProgressEvent)]
    assert len(progress) > 3 and progress == sorted(progress)
    # each progress point comes after the segments that end before it
    seen_end = 0.0
    for event in events:
        if isinstance(event, SegmentEvent):
            seen_end = max(seen_end, event.segment.end)
        elif isinstance(event, ProgressEvent):
            assert seen_end <= event.seconds + 1e-6
    ids = [s.id for s in segments_of(events)]
    assert ids == list(range(len(ids)))


def test_ids_continue_from_the_first_segment_id(model: AsrModel, corpus_dir: Path) -> None:
    base = run(model, FileSource(corpus_dir / LONG), SessionOptions(form="long"))
    moved = run(
        model, FileSource(corpus_dir / LONG), SessionOptions(form="long", first_segment_id=40)
    )
    assert [s.id for s in segments_of(moved)] == [s.id + 40 for s in segments_of(base)]
    assert [s.text for s in segments_of(moved)] == [s.text for s in segments_of(base)]


def test_form_is_an_explicit_option(model: AsrModel, corpus_dir: Path) -> None:
    """A short clip is one pass over its speech by default; ``long`` chunks it at pauses, as a
    resumed job or a live turn is, so the model hears different waves."""
    heard: dict[str, list[int]] = {}
    for form in ("auto", "long"):
        lengths = heard.setdefault(form, [])

        def counting(
            waves: list[NDArray[np.float32]], lengths: list[int] = lengths
        ) -> Sequence[Result]:
            lengths.extend(wave.size for wave in waves)
            return model.transcribe(waves)

        options = SessionOptions(form=form)  # type: ignore[arg-type]
        session = Session(FileSource(corpus_dir / SPEECH), options, DirectWorker(counting), form)
        assert isinstance(list(session.events())[-1], DoneEvent)
    assert heard["auto"] and heard["long"] and heard["auto"] != heard["long"]


def write_wav(path: Path, rate: int, channels: int, samples: NDArray[np.int16]) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


def stereo_44k(corpus_dir: Path, tmp_path: Path) -> tuple[Path, bytes]:
    from gigaam_api.audio import load_audio

    mono = load_audio(corpus_dir / SPEECH)
    positions = np.arange(0, mono.size, 16000 / 44100)
    resampled = np.interp(positions, np.arange(mono.size), mono).astype(np.int16)
    stereo = np.stack([resampled, (resampled * 0.5).astype(np.int16)], axis=1)
    return write_wav(tmp_path / "s.wav", 44100, 2, stereo), stereo.astype("<i2").tobytes()


def test_pushed_audio_gives_the_files_text(
    model: AsrModel, corpus_dir: Path, tmp_path: Path
) -> None:
    """The same audio as a file (decoder worker) and pushed (in-process): the same segments."""
    path, payload = stereo_44k(corpus_dir, tmp_path)
    from_file = run(model, FileSource(path), SessionOptions())
    pushed = PushedAudio(RawFormat(44100, 2, 2), max_seconds=60)
    for offset in range(0, len(payload), 4 * 2048):
        pushed.push(payload[offset : offset + 4 * 2048])
    pushed.end()
    from_push = run(model, pushed, SessionOptions())
    assert segments_of(from_push) == segments_of(from_file) and segments_of(from_file)
    assert from_push[-1] == from_file[-1]


def test_a_session_may_start_before_the_audio_ends(
    model: AsrModel, corpus_dir: Path, tmp_path: Path
) -> None:
    """Live audio: the pipeline reads blocks as they are pushed (long form, chunked at pauses)."""
    path, payload = stereo_44k(corpus_dir, tmp_path)
    reference = run(model, FileSource(path), SessionOptions(form="long"))
    pushed = PushedAudio(RawFormat(44100, 2, 2), max_seconds=60)
    session = Session(pushed, SessionOptions(form="long"), DirectWorker(model.transcribe), "live")
    events: list[SessionEvent] = []
    reader = threading.Thread(target=lambda: events.extend(session.events()))
    reader.start()
    for offset in range(0, len(payload), 4 * 4410):
        pushed.push(payload[offset : offset + 4 * 4410])
    pushed.end()
    reader.join(60)
    assert segments_of(events) == segments_of(reference)


def test_a_bad_file_is_a_failed_event_in_the_cores_words(model: AsrModel, tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not audio at all " * 50)
    worker = CountingWorker(model)
    released: list[str] = []
    session = Session(
        FileSource(junk), SessionOptions(), worker, "req_1", on_release=lambda: released.append("x")
    )
    events = list(session.events())
    assert len(events) == 1 and isinstance(events[0], FailedEvent)
    assert events[0].error.kind == "invalid_audio" and events[0].error.outcome == "client_error"
    assert worker.closed == 1 and released == ["x"]


def test_cancel_stops_the_run_and_releases_once(model: AsrModel, corpus_dir: Path) -> None:
    worker = CountingWorker(model)
    session = Session(FileSource(corpus_dir / LONG), SessionOptions(), worker, "req_2")
    events: Iterator[SessionEvent] = session.events()
    first = next(events)
    assert isinstance(first, SegmentEvent | ProgressEvent)
    session.cancel()
    rest = list(events)
    assert isinstance(rest[-1], FailedEvent)
    assert rest[-1].error.kind == "cancelled" and isinstance(rest[-1].cause, Cancelled)
    assert worker.cancelled.is_set() and worker.closed == 1
    session.cancel()  # idempotent, and nothing is released twice
    assert worker.closed == 1


class WatchedAudio(PushedAudio):
    """Pushed audio that says when its reader asks for more than was pushed."""

    def __init__(self, blocks: int) -> None:
        super().__init__(RawFormat(SAMPLE_RATE, 2, 1), max_seconds=60)
        self.push(b"\x00\x00" * self.block_samples * blocks)  # whole blocks: queued as they are
        self._takes_left = blocks + 1
        self.waiting = threading.Event()

    def take(self, closed: threading.Event) -> NDArray[np.int16] | None:
        self._takes_left -= 1
        if self._takes_left == 0:
            self.waiting.set()  # every pushed block was read: this take waits for more
        return super().take(closed)


@pytest.mark.parametrize("when", ["before the run", "while it waits for audio"])
def test_cancel_wakes_a_run_waiting_for_pushed_audio(model: AsrModel, when: str) -> None:
    """Pushed audio that never ends: the pipeline waits for more until the cancel aborts the
    source (``PcmSource.abort``). However early the cancel comes (before any audio was read,
    or once all of it was), the run ends ``cancelled``: not "no audio", not done."""
    pushed = WatchedAudio(blocks=2)
    worker = CountingWorker(model)
    session = Session(pushed, SessionOptions(form="long"), worker, "req_3")
    events: list[SessionEvent] = []
    reader = threading.Thread(target=lambda: events.extend(session.events()))
    if when == "before the run":
        session.cancel()
        reader.start()
    else:
        reader.start()
        assert pushed.waiting.wait(60)
        session.cancel()
    reader.join(60)
    assert not reader.is_alive()
    assert isinstance(events[-1], FailedEvent) and events[-1].error.kind == "cancelled"
    assert pushed.ended and worker.closed == 1
