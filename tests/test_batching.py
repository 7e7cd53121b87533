"""Length-aware planning of model calls, and the engine property it relies on.

The planner is a pure function, so its groupings are asserted exactly. Splitting or combining
batches is only allowed because a wave's fp32 result does not depend on the batch it runs in
(the encoder masks padding): that is checked here on the fixture models with corpus clips of
different lengths, alone against all together.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from gigaam_api.batching import MAX_PADDING_SHARE, padding_share, plan_calls
from gigaam_api.model import AsrModel, load_model


def test_similar_lengths_share_a_call_and_a_short_wave_gets_its_own() -> None:
    # chunks of 20-22 s with a 3 s tail: the tail is not padded to 22 s
    lengths = [22, 21, 3, 20]
    assert plan_calls(lengths, max_padding=0.1) == [[0, 1, 3], [2]]
    assert padding_share([[22, 21, 3, 20]]) == pytest.approx(1 - 66 / 88)
    assert padding_share([[22, 21, 20], [3]]) == pytest.approx(3 / 69)


def test_groups_are_ordered_by_their_first_wave_and_cover_every_wave_once() -> None:
    lengths = [3, 30, 3, 29, 3, 31]
    groups = plan_calls(lengths, max_padding=0.1)
    assert groups == [[0, 2, 4], [1, 3, 5]]
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))


def test_the_padding_limit_decides_what_joins() -> None:
    lengths = [10, 9, 8, 7]
    assert plan_calls(lengths, max_padding=1.0) == [[0, 1, 2, 3]]  # no length awareness
    assert plan_calls(lengths, max_padding=0.0) == [[0], [1], [2], [3]]
    # 10+9 pads 1 of 20 (5 %); adding 8 pads 3 of 30 (10 %): within 10 %; adding 7 would not
    assert plan_calls(lengths, max_padding=MAX_PADDING_SHARE) == [[0, 1, 2], [3]]
    assert plan_calls([5, 5, 5], max_padding=0.0) == [[0, 1, 2]]  # equal lengths never split
    assert plan_calls([]) == []
    with pytest.raises(ValueError):
        plan_calls([1], max_padding=-0.1)


CLIPS = [
    "pisets/test_sound_ru.wav",
    "speech_to_phrase/stp_ru_gen_01.wav",
    "speech_to_phrase/stp_ru_gen_02.wav",
    "synthetic_espeak/wav16k/espeak_06_f3.wav",
    "golos/golos_001ce26c.wav",
    "silero_vad/silero_ru_num.wav",
    "voicekit/wav16k/stierlitz.wav",
]


def read_clip(path: Path) -> NDArray[np.float32]:
    with wave.open(str(path)) as handle:
        assert (handle.getframerate(), handle.getnchannels()) == (16000, 1)
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


@pytest.fixture(scope="module", params=["v3_ctc", "v3_rnnt"])
def fp32_model(
    request: pytest.FixtureRequest, golden_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsrModel:
    name = request.param
    cache = tmp_path_factory.mktemp("graphs")
    return load_model(golden_dir / name / f"{name}.ckpt", num_threads=1, cache_dir=cache)


def test_a_waves_fp32_result_is_the_same_alone_and_in_any_batch(
    fp32_model: AsrModel, corpus_dir: Path
) -> None:
    clips = [read_clip(corpus_dir / name) for name in CLIPS]
    assert len({len(c) for c in clips}) == len(clips)  # different lengths: padding happens
    alone = [fp32_model.transcribe([clip])[0] for clip in clips]
    together = fp32_model.transcribe(clips)
    reversed_batch = fp32_model.transcribe(clips[::-1])[::-1]
    for single, batched, other in zip(alone, together, reversed_batch, strict=True):
        assert batched.text == single.text == other.text
        assert batched.token_ids == single.token_ids
        assert [w.start for w in batched.words] == [w.start for w in single.words]
    # the encoder output itself agrees within float rounding, frame for frame
    features, lengths = fp32_model.features(clips)
    encoded, enc_lengths = fp32_model.encode(features, lengths)
    for i, clip in enumerate(clips):
        one_features, one_lengths = fp32_model.features([clip])
        one, one_length = fp32_model.encode(one_features, one_lengths)
        assert int(enc_lengths[i]) == int(one_length[0])
        frames = int(one_length[0])
        np.testing.assert_allclose(encoded[i, :, :frames], one[0, :, :frames], atol=1e-4)
