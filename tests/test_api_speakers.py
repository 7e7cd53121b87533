"""Who spoke when, through the OpenAI contract, on the real server, with the official SDK.

The server labels speakers with Resemblyzer's trained GE2E encoder (``DIARIZATION_MODEL``
pointing at the wheel from PyPI); the audio is a conversation of distinct real voices from the
corpus. Checked the way clients use it: ``openai`` 3.x parsing ``diarized_json`` into its own
``TranscriptionDiarized``, the stream's ``transcript.text.segment`` events, known speakers by
data URL, the extension on the other formats, and every bad input answered with a 400 naming
its parameter.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai.types.audio import TranscriptionDiarized

from gigaam_api.server import create_app
from tests.api_server import real_model_settings, serve
from tests.speakers_conversations import Conversation, build_conversations
from tests.speakers_data import resemblyzer_wheel, write_wav

SAMPLE_RATE = 16000
DIARIZE = "gpt-4o-transcribe-diarize"


@pytest.fixture(scope="module")
def conversation() -> Conversation:
    return next(c for c in build_conversations() if len(c.speakers) == 2)


@pytest.fixture(scope="module")
def audio_path(conversation: Conversation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wav(tmp_path_factory.mktemp("conv") / "meeting.wav", conversation.audio)


@pytest.fixture(scope="module")
def url(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = real_model_settings(
        golden_dir,
        tmp_path_factory.mktemp("models"),
        diarization_model=str(resemblyzer_wheel()),
        jobs_dir=tmp_path_factory.mktemp("jobs"),
    )
    app = create_app(settings, keepalive_seconds=0.5, tmp_dir=tmp_path_factory.mktemp("up"))
    with serve(app) as base:
        yield base


@pytest.fixture
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)


def data_url(path: Path) -> str:
    return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()


def first_speaker_clip(conversation: Conversation, tmp: Path) -> Path:
    first = conversation.turns[0].speaker
    theirs = [t for t in conversation.turns if t.speaker == first][1:]
    clip = np.concatenate(
        [
            conversation.audio[round(t.start * SAMPLE_RATE) : round(t.end * SAMPLE_RATE)]
            for t in theirs
        ]
    )[: 8 * SAMPLE_RATE]
    return write_wav(tmp / "ref.wav", clip)


def test_diarized_json_parses_into_the_sdks_own_type(
    client: openai.OpenAI, audio_path: Path, conversation: Conversation
) -> None:
    with audio_path.open("rb") as f:
        result = client.audio.transcriptions.create(
            model=DIARIZE, file=f, response_format="diarized_json"
        )
    assert isinstance(result, TranscriptionDiarized)
    assert result.task == "transcribe" and result.duration == pytest.approx(
        conversation.duration, abs=0.05
    )
    assert result.segments and {s.speaker for s in result.segments} == {"A", "B"}
    assert result.segments[0].speaker == "A"  # letters in order of first appearance
    assert [s.id for s in result.segments] == [
        f"seg_{i + 1:03d}" for i in range(len(result.segments))
    ]
    assert all(s.type == "transcript.text.segment" and s.end >= s.start for s in result.segments)
    assert result.usage is not None and result.usage.type == "duration"
    # the first speaker is labelled A over (most of) the first turn
    first = conversation.turns[0]
    inside = [s for s in result.segments if first.start <= (s.start + s.end) / 2 <= first.end]
    assert inside and all(s.speaker == "A" for s in inside)


def test_streamed_diarized_json_sends_segment_events_then_done(
    client: openai.OpenAI, audio_path: Path
) -> None:
    with audio_path.open("rb") as f:
        stream = client.audio.transcriptions.create(
            model=DIARIZE, file=f, response_format="diarized_json", stream=True
        )
        events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done"
    segments = [e for e in events if e.type == "transcript.text.segment"]
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    assert segments and {s.speaker for s in segments} == {"A", "B"}  # type: ignore[union-attr]
    # each delta names its segment, and the deltas add up to the done event's text
    assert [d.segment_id for d in deltas] == [s.id for s in segments]  # type: ignore[union-attr]
    assert "".join(d.delta for d in deltas) == events[-1].text  # type: ignore[union-attr]


def test_a_known_speaker_comes_back_under_their_name(
    client: openai.OpenAI, audio_path: Path, conversation: Conversation, tmp_path: Path
) -> None:
    reference = first_speaker_clip(conversation, tmp_path)
    with audio_path.open("rb") as f:
        result = client.audio.transcriptions.create(
            model=DIARIZE,
            file=f,
            response_format="diarized_json",
            known_speaker_names=["Анна"],
            known_speaker_references=[data_url(reference)],
        )
    assert isinstance(result, TranscriptionDiarized)
    speakers = {s.speaker for s in result.segments}
    assert "Анна" in speakers and len(speakers) == 2
    assert result.segments[0].speaker == "Анна"


def post(url: str, path: Path, **fields: Any) -> httpx.Response:
    with path.open("rb") as f:
        return httpx.post(
            f"{url}/v1/audio/transcriptions", files={"file": f}, data=fields, timeout=120
        )


def test_the_other_formats_carry_speakers_with_diarize_true(url: str, audio_path: Path) -> None:
    verbose = post(
        url,
        audio_path,
        diarize="true",
        response_format="verbose_json",
        **{"timestamp_granularities[]": ["segment", "word"]},
    ).json()
    assert {s["speaker"] for s in verbose["segments"]} == {"A", "B"}
    assert all("speaker" in w for w in verbose["words"])
    srt = post(url, audio_path, diarize="true", response_format="srt").text
    assert "A: " in srt and "B: " in srt
    vtt = post(url, audio_path, diarize="true", response_format="vtt").text
    assert "<v A>" in vtt and "<v B>" in vtt
    text = post(url, audio_path, diarize="true", response_format="text").text
    assert text.startswith("A: ") and "\nB: " in text
    # without diarization nothing changes: no speaker anywhere
    plain = post(url, audio_path, response_format="verbose_json").json()
    assert all("speaker" not in s for s in plain["segments"])


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        # names without references: the missing references are named, and the other way round
        ({"known_speaker_names[]": "Анна"}, "known_speaker_references"),
        ({"known_speaker_references[]": "data:audio/wav;base64,AAAA"}, "known_speaker_names"),
        (
            {"known_speaker_names[]": "Анна", "known_speaker_references[]": "not a data url"},
            "known_speaker_references",
        ),
        (
            {
                "known_speaker_names[]": "Анна",
                "known_speaker_references[]": "data:audio/wav;base64,@@@",
            },
            "known_speaker_references",
        ),
        ({"num_speakers": "0"}, "num_speakers"),
        ({"min_speakers": "3", "max_speakers": "2"}, "min_speakers"),
        ({"response_format": "diarized_json", "diarize": "false"}, "response_format"),
        ({"chunking_strategy": "sometimes"}, "chunking_strategy"),
    ],
)
def test_bad_diarization_input_is_a_400_naming_the_parameter(
    url: str, audio_path: Path, fields: dict[str, str], param: str
) -> None:
    base = {"model": DIARIZE, "response_format": "diarized_json"}
    response = post(url, audio_path, **{**base, **fields})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"].startswith(param)


@pytest.mark.parametrize("seconds", [1.0, 12.0])
def test_a_reference_of_the_wrong_length_is_a_400_naming_it(
    url: str, audio_path: Path, conversation: Conversation, tmp_path: Path, seconds: float
) -> None:
    clip = write_wav(
        tmp_path / "r.wav", np.resize(conversation.audio, round(seconds * SAMPLE_RATE))
    )
    response = post(
        url,
        audio_path,
        model=DIARIZE,
        response_format="diarized_json",
        **{"known_speaker_names[]": "Борис", "known_speaker_references[]": data_url(clip)},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "known_speaker_references" and "Борис" in error["message"]


def test_a_reference_that_is_not_audio_is_a_400(url: str, audio_path: Path) -> None:
    junk = "data:audio/wav;base64," + base64.b64encode(b"definitely not audio" * 200).decode()
    response = post(
        url,
        audio_path,
        model=DIARIZE,
        response_format="diarized_json",
        **{"known_speaker_names[]": "Вера", "known_speaker_references[]": junk},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "known_speaker_references"
