"""Speaker labelling through the core session, with real weights and real voices.

The session feeds each recognised chunk's audio to the diarizer in the same pass as
recognition (the audio is decoded once); once the file is done it sends who spoke when. The
speaker model is Resemblyzer's trained GE2E encoder (fetched from PyPI into a cache), the
conversations are built from distinct real voices of the corpus (``tests/speakers_conversations``)
and scored with pyannote.metrics' DER, collar 0.25 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from gigaam_api.audio import FileSource
from gigaam_api.model import AsrModel, load_model
from gigaam_api.service.session import (
    DirectWorker,
    DoneEvent,
    FailedEvent,
    ProgressEvent,
    SegmentEvent,
    Session,
    SessionEvent,
    SessionOptions,
    SpeakersEvent,
)
from gigaam_api.service.speakers import KnownSpeaker, SpeakerOptions
from gigaam_api.speakers import Diarization, Diarizer, SpeakerEmbedder, load_embedder
from tests.speakers_conversations import Conversation, build_conversations, score
from tests.speakers_data import GatedEmbedder, resemblyzer_wheel, write_wav

SAMPLE_RATE = 16000


@pytest.fixture(scope="module")
def model(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsrModel:
    cache = tmp_path_factory.mktemp("graphs")
    return load_model(golden_dir / "v3_ctc" / "v3_ctc.ckpt", num_threads=2, cache_dir=cache)


@pytest.fixture(scope="module")
def embedder() -> SpeakerEmbedder:
    return load_embedder(resemblyzer_wheel())


@pytest.fixture(scope="module")
def conversations() -> list[Conversation]:
    return build_conversations()


def run(
    model: AsrModel, embedder: SpeakerEmbedder, path: Path, speakers: SpeakerOptions
) -> list[SessionEvent]:
    session = Session(
        FileSource(path),
        SessionOptions(speakers=speakers),
        DirectWorker(model.transcribe),
        path.stem,
        speaker_model=lambda: embedder,
    )
    return list(session.events())


def speakers_of(events: Sequence[SessionEvent]) -> SpeakersEvent:
    found = [e for e in events if isinstance(e, SpeakersEvent)]
    assert len(found) == 1, events[-1]
    assert isinstance(events[-1], DoneEvent) and events[-2] is found[0]
    return found[0]


@pytest.mark.parametrize("size", [2, 3, 4])
def test_real_voices_get_the_right_count_and_low_der(
    size: int,
    model: AsrModel,
    embedder: SpeakerEmbedder,
    conversations: list[Conversation],
    tmp_path: Path,
) -> None:
    chosen = [c for c in conversations if len(c.speakers) == size][:2]
    assert chosen
    for conversation in chosen:
        events = run(
            model,
            embedder,
            write_wav(tmp_path / f"{conversation.name}.wav", conversation.audio),
            SpeakerOptions(),
        )
        found = speakers_of(events)
        result = score(conversation, Diarization(list(found.turns), list(found.speakers), 0))
        assert result.speakers_found == size, result
        assert result.der_collar <= 0.15, result
        assert found.speakers == tuple("ABCD"[:size])  # letters in order of first appearance


def test_a_known_speaker_comes_out_under_their_name(
    model: AsrModel,
    embedder: SpeakerEmbedder,
    conversations: list[Conversation],
    tmp_path: Path,
) -> None:
    conversation = next(c for c in conversations if len(c.speakers) == 2)
    first = conversation.turns[0]
    # a reference clip of the first speaker: the rest of their turns, 2–10 s of it
    theirs = [t for t in conversation.turns if t.speaker == first.speaker][1:]
    clip = np.concatenate(
        [
            conversation.audio[round(t.start * SAMPLE_RATE) : round(t.end * SAMPLE_RATE)]
            for t in theirs
        ]
    )[: 8 * SAMPLE_RATE]
    assert clip.size >= 2 * SAMPLE_RATE
    reference = write_wav(tmp_path / "reference.wav", clip).read_bytes()
    known = (KnownSpeaker("Анна", reference),)
    events = run(
        model,
        embedder,
        write_wav(tmp_path / "c.wav", conversation.audio),
        SpeakerOptions(known=known),
    )
    found = speakers_of(events)
    assert "Анна" in found.speakers and len(found.speakers) == 2
    assert found.turns[0].speaker == "Анна"  # the first turn is theirs


@pytest.mark.parametrize(
    ("clip_seconds", "message"),
    [(1.0, "at least 2 s"), (12.0, "longer than 10 s"), (None, "not usable audio")],
)
def test_a_bad_reference_fails_naming_the_field(
    clip_seconds: float | None,
    message: str,
    model: AsrModel,
    embedder: SpeakerEmbedder,
    conversations: list[Conversation],
    tmp_path: Path,
) -> None:
    conversation = conversations[0]
    if clip_seconds is None:
        data = b"this is not audio" * 100
    else:
        data = write_wav(
            tmp_path / "r.wav", conversation.audio[: round(clip_seconds * SAMPLE_RATE)]
        ).read_bytes()
    events = run(
        model,
        embedder,
        write_wav(tmp_path / "c.wav", conversation.audio),
        SpeakerOptions(known=(KnownSpeaker("Борис", data),)),
    )
    assert len(events) == 1 and isinstance(events[0], FailedEvent)
    error = events[0].error
    assert error.kind == "invalid_audio" and error.param == "known_speaker_references"
    assert message in error.message and "Борис" in error.message


@pytest.mark.parametrize("model_behind", [False, True], ids=["caught-up", "model-behind"])
def test_a_job_resumes_from_the_committed_state_with_the_same_labels(
    model: AsrModel,
    embedder: SpeakerEmbedder,
    conversations: list[Conversation],
    tmp_path: Path,
    model_behind: bool,
) -> None:
    """Stopped after a progress event and resumed from its state: the same speakers, as a job
    killed mid-way and resumed after its last committed chunk gets. With the speaker model
    behind when the state was taken, the windows it had not embedded are read again from the
    file on resume."""
    conversation = next(c for c in conversations if len(c.speakers) == 3)
    path = write_wav(tmp_path / "c.wav", conversation.audio)
    whole = speakers_of(run(model, embedder, path, SpeakerOptions()))

    gated = GatedEmbedder(embedder)
    if not model_behind:
        gated.gate.set()
    first = Session(
        FileSource(path),
        SessionOptions(form="long", speakers=SpeakerOptions(keep_state=True)),
        DirectWorker(model.transcribe),
        "first",
        speaker_model=lambda: gated,  # type: ignore[arg-type,return-value]
    )
    progress: list[ProgressEvent] = []
    segments = 0
    events = first.events()
    for event in events:
        segments += isinstance(event, SegmentEvent)
        if isinstance(event, ProgressEvent):
            progress.append(event)
            if event.seconds > conversation.duration / 2:
                break
    events.close()  # stopped mid-way, after a commit
    gated.gate.set()
    stop = progress[-1]
    assert stop.speaker_state is not None and stop.seconds < conversation.duration - 5
    if model_behind:  # nothing was embedded: every window so far is to be read again
        with pytest.raises(ValueError, match="must be read"):
            Diarizer.restore(embedder, stop.speaker_state)
    resumed = Session(
        FileSource(path),
        SessionOptions(
            form="long",
            start_seconds=stop.seconds,
            first_segment_id=segments,
            speakers=SpeakerOptions(state=stop.speaker_state, keep_state=True),
        ),
        DirectWorker(model.transcribe),
        "resumed",
        speaker_model=lambda: embedder,
    )
    again = speakers_of(list(resumed.events()))
    assert again.speakers == whole.speakers

    # the same speakers over (nearly) the same time: the turns may differ only at the seam
    def spoken(event: SpeakersEvent, who: str) -> float:
        return sum(t.end - t.start for t in event.turns if t.speaker == who)

    for who in whole.speakers:
        assert spoken(again, who) == pytest.approx(spoken(whole, who), rel=0.15)
