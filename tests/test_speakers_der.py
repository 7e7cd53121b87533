"""Diarization of real voices with real embeddings (Resemblyzer's GE2E), scored by DER.

The conversations are built from distinct voices of the corpus (``tests/speakers_conversations``,
fixed seed) and run through the chain the pipeline uses: Silero VAD regions → windows →
GE2E embeddings on ONNX Runtime → streaming clustering → turns. pyannote.metrics scores them
(collar 0.25 s, and none). The issue's accuracy targets are asserted here — accuracy, not
timing; ``benchmarks/diarization.py`` prints the full table with costs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from gigaam_api.speakers.clustering import SpeakerCount
from gigaam_api.speakers.diarizer import BACKLOG, Diarizer, reference_embedding
from gigaam_api.speakers.embedder import SpeakerEmbedder, load_embedder
from gigaam_api.vad.detector import speech_regions
from tests.helpers import wait_until
from tests.speakers_conversations import (
    Conversation,
    Score,
    build_conversations,
    diarize,
    score,
)
from tests.speakers_data import GatedEmbedder, WrappedEmbedder, corpus_wav, resemblyzer_wheel

pytest.importorskip("pyannote.metrics")


@pytest.fixture(scope="module")
def embedder() -> SpeakerEmbedder:
    try:
        return load_embedder(resemblyzer_wheel())
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def conversations(corpus_dir: Path) -> list[Conversation]:
    return build_conversations(corpus_dir)


@pytest.fixture(scope="module")
def scores(embedder: SpeakerEmbedder, conversations: list[Conversation]) -> list[Score]:
    return [score(c, diarize(c, embedder)) for c in conversations]


def test_two_to_four_speakers_meet_the_targets(scores: list[Score]) -> None:
    small = [s for s in scores if 2 <= s.speakers_true <= 4]
    assert len(small) == 9
    report = "\n".join(
        f"{s.name}: DER {s.der_collar:.3f} (no collar {s.der_no_collar:.3f}), "
        f"{s.speakers_found}/{s.speakers_true} speakers"
        for s in scores
    )
    assert all(s.der_collar <= 0.15 for s in small), report
    right_count = sum(s.speakers_found == s.speakers_true for s in small)
    assert right_count >= 0.75 * len(small), report


def test_five_speakers_and_the_scorer_sees_mistakes(
    scores: list[Score], embedder: SpeakerEmbedder, conversations: list[Conversation]
) -> None:
    five = [s for s in scores if s.speakers_true == 5]
    assert five and np.mean([s.der_collar for s in five]) <= 0.15
    # Forcing one speaker on a three-person conversation must cost DER: the scorer is live.
    three = next(c for c in conversations if len(c.speakers) == 3)
    forced = score(three, diarize(three, embedder, SpeakerCount(num_speakers=1)))
    assert forced.speakers_found == 1 and forced.der_collar > 0.2


def test_a_given_count_is_kept(
    embedder: SpeakerEmbedder, conversations: list[Conversation]
) -> None:
    for conversation in conversations[:6]:
        truth = len(conversation.speakers)
        result = score(
            conversation, diarize(conversation, embedder, SpeakerCount(num_speakers=truth))
        )
        assert result.speakers_found == truth
        assert result.der_collar <= 0.15


def test_known_speakers_come_out_under_their_names(
    embedder: SpeakerEmbedder, conversations: list[Conversation], corpus_dir: Path
) -> None:
    """References are *other* recordings of two of the voices (a prompt the conversations do
    not use; espeak sentences beside the long-form file): the matching clusters get those
    names, the other voices keep letters, from ``A`` in order of first appearance."""
    truth_of = {"Оператор": "ivr_female", "Робот": "espeak_f3"}
    conversation = next(
        c
        for c in conversations
        if set(truth_of.values()) <= set(c.speakers) and len(c.speakers) >= 3
    )
    references = [
        (
            "Оператор",
            reference_embedding(
                embedder,
                corpus_wav("asterisk_ru/wav16k/prompts/all-circuits-busy-now.wav", corpus_dir),
            ),
        ),
        (
            "Робот",
            reference_embedding(
                embedder, corpus_wav("synthetic_espeak/wav16k/espeak_06_f3.wav", corpus_dir)
            ),
        ),
    ]
    diarizer = Diarizer(embedder)
    for region in speech_regions([conversation.audio]):
        first, last = round(region.start * 16000), round(region.end * 16000)
        diarizer.add_region(region.start, region.end, conversation.audio[first:last])
    result = diarizer.finish(known=references)
    assert set(truth_of) <= set(result.speakers)
    checked = 0
    for turn in result.turns:
        middle = (turn.start + turn.end) / 2
        said = [t.speaker for t in conversation.turns if t.start <= middle <= t.end]
        if turn.speaker in truth_of and said:
            assert said == [truth_of[turn.speaker]]
            checked += 1
    assert checked >= 4
    others = [s for s in result.speakers if s not in truth_of]
    assert others[0] == "A" and len(others) == len(conversation.speakers) - 2


def _feed(diarizer: Diarizer, audio: np.ndarray, part: list[tuple[float, float]]) -> None:
    for start, end in part:
        diarizer.add_region(start, end, audio[round(start * 16000) : round(end * 16000)])


def test_a_resumed_diarization_equals_an_uninterrupted_one(
    embedder: SpeakerEmbedder, conversations: list[Conversation]
) -> None:
    """A job killed mid-way keeps a snapshot with its committed chunks; restored, it gives the
    same speakers and turns as if it had never stopped (so labels already written hold). The
    snapshot does not wait for the model: windows it had not embedded yet are read again."""
    conversation = max(conversations, key=lambda c: c.duration)
    audio = conversation.audio
    regions = list(speech_regions([audio]))
    half = len(regions) // 2

    whole = Diarizer(embedder)
    _feed(whole, audio, regions)
    expected = whole.finish()

    behind = GatedEmbedder(embedder)
    first = Diarizer(behind)  # type: ignore[arg-type]
    _feed(first, audio, regions[:half])
    snapshot = first.snapshot()  # nothing embedded yet: every window is to be read again
    behind.gate.set()
    del first
    with pytest.raises(ValueError, match="must be read"):
        Diarizer.restore(embedder, snapshot)
    asked: list[list[tuple[float, float]]] = []

    def read(spans: list[tuple[float, float]]) -> list[np.ndarray]:
        asked.append(spans)
        return [audio[round(start * 16000) : round(end * 16000)] for start, end in spans]

    resumed = Diarizer.restore(embedder, snapshot, read=read)
    assert len(asked) == 1  # every window fed before the snapshot, read again in one pass
    assert asked[0][0][0] >= regions[0][0] and asked[0][-1][1] <= regions[half - 1][1]
    _feed(resumed, audio, regions[half:])
    assert resumed.finish() == expected
    assert len(snapshot) < 200_000
    with pytest.raises(ValueError, match="not a diarization snapshot"):
        Diarizer.restore(embedder, b"garbage")
    with pytest.raises(ValueError, match="made with"):
        Diarizer.restore(_Renamed(embedder), snapshot)


def test_the_caller_waits_only_when_the_model_is_a_backlog_behind(
    embedder: SpeakerEmbedder, conversations: list[Conversation]
) -> None:
    """The windows' audio waiting for the model is bounded (memory): with the model stalled,
    the caller stops at :data:`BACKLOG` windows and goes on once the model does."""
    conversation = max(conversations, key=lambda c: c.duration)
    audio = conversation.audio
    regions = list(speech_regions([audio]))
    stalled = GatedEmbedder(embedder)
    diarizer = Diarizer(stalled)  # type: ignore[arg-type]
    repeats = 4

    def produce() -> None:
        for repeat in range(repeats):  # the conversation again and again, later in the file
            shift = repeat * conversation.duration
            for start, end in regions:
                piece = audio[round(start * 16000) : round(end * 16000)]
                diarizer.add_region(start + shift, end + shift, piece)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    wait_until(lambda: len(diarizer._waiting) + diarizer._embedding >= BACKLOG, "a full backlog")
    assert producer.is_alive()  # it has more to add and nothing can be embedded: it waits
    assert len(diarizer._waiting) + diarizer._embedding == BACKLOG
    stalled.gate.set()
    producer.join(120)
    assert not producer.is_alive()
    result = diarizer.finish()
    assert result.windows > BACKLOG


class _Renamed(WrappedEmbedder):
    """The same model under another name: a snapshot must not be resumed with it."""

    def __init__(self, inner: SpeakerEmbedder) -> None:
        super().__init__(inner)
        self.name = "other"


def test_int16_regions_equal_float_ones_and_order_is_checked(
    embedder: SpeakerEmbedder, conversations: list[Conversation]
) -> None:
    """The pipeline hands the decoder's int16 blocks; they are scaled like the float path."""
    audio = conversations[0].audio
    regions = list(speech_regions([audio]))
    results = []
    for as_int16 in (False, True):
        diarizer = Diarizer(embedder)
        for start, end in regions:
            piece = audio[round(start * 16000) : round(end * 16000)]
            if as_int16:
                piece = np.clip(np.round(piece * 32768), -32768, 32767).astype(np.int16)
            diarizer.add_region(start, end, piece)
        results.append(diarizer.finish())
    assert results[0].speakers == results[1].speakers
    assert results[0].turns == results[1].turns
    diarizer = Diarizer(embedder)
    diarizer.add_region(5.0, 6.0, audio[:16000])
    with pytest.raises(ValueError, match="time order"):
        diarizer.add_region(4.0, 4.5, audio[:8000])


def test_no_speech_long_enough_gives_no_speakers(embedder: SpeakerEmbedder) -> None:
    diarizer = Diarizer(embedder)
    diarizer.add_region(1.0, 1.3, np.zeros(4800, np.float32))  # shorter than any window
    result = diarizer.finish()
    assert (result.turns, result.speakers, result.windows) == ([], [], 0)


class _Failing(WrappedEmbedder):
    """The real model until its ``fail_at``-th batch, which raises (a model that breaks)."""

    def __init__(self, inner: SpeakerEmbedder, fail_at: int) -> None:
        super().__init__(inner)
        self.fail_at = fail_at
        self.batches = 0
        self.threads: set[str] = set()

    def embed(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        self.batches += 1
        if self.batches == self.fail_at:
            raise RuntimeError("the speaker model broke")
        return super().embed(windows)


def test_overlapped_embedding_equals_embedding_in_line_and_raises_on_the_caller(
    embedder: SpeakerEmbedder, conversations: list[Conversation]
) -> None:
    """Windows are embedded on a thread of their own while the caller goes on (the pipeline's
    next recogniser call): the result is the same as embedding each batch on the caller's
    thread, and an error in the speaker model reaches the caller, not a lost thread; the
    diarizer stays broken after it."""
    conversation = max(conversations, key=lambda c: c.duration)
    audio = conversation.audio
    regions = list(speech_regions([audio]))
    results = []
    for overlap in (False, True):
        watched = _Failing(embedder, fail_at=0)
        diarizer = Diarizer(watched, overlap=overlap)  # type: ignore[arg-type]
        for start, end in regions:
            diarizer.add_region(start, end, audio[round(start * 16000) : round(end * 16000)])
        results.append(diarizer.finish())
        assert watched.batches >= 2  # more than the last, partial batch: the path is exercised
        assert ("diarizer-embed" in watched.threads) is overlap
    assert results[0] == results[1]
    failing = _Failing(embedder, fail_at=1)
    diarizer = Diarizer(failing)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="broke"):
        for start, end in regions:
            diarizer.add_region(start, end, audio[round(start * 16000) : round(end * 16000)])
        diarizer.finish()
    with pytest.raises(RuntimeError, match="broke"):
        diarizer.finish()
    with pytest.raises(RuntimeError, match="broke"):
        diarizer.snapshot()
