"""Keywords through ``AsrModel``: greedy untouched without them, beam search per wave with them.

On the four golden fixtures (real checkpoints, real ONNX Runtime sessions) and the
multilingual fixture: ``keywords=None`` (or ``None`` for a wave) is the greedy decode the
reference produced, token for token; a wave with a graph gets exactly what the beam search
module gives over the same model outputs; a language restriction still holds under beam
search; compiling is cached and refuses what the model cannot write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gigaam_api.model import AsrModel, ContextGraph, Keyword, KeywordError, load_model
from gigaam_api.model.ctc_beam import ctc_beam_search
from gigaam_api.model.language import LANGUAGES
from gigaam_api.model.rnnt_beam import rnnt_beam_search
from gigaam_api.model.spec import ModelError
from tests.conftest import MODELS

FIXTURES = Path(__file__).parent / "fixtures" / "generations"
KEYWORDS = [Keyword("Иван Петров"), Keyword("сбербанк", 3.0), Keyword("осос")]


@pytest.fixture(scope="module")
def models(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, AsrModel]:
    cache = tmp_path_factory.mktemp("graphs")
    return {
        name: load_model(golden_dir / name / f"{name}.ckpt", num_threads=1, cache_dir=cache)
        for name in MODELS
    }


def _golden(golden_dir: Path, name: str) -> tuple[np.ndarray, dict[str, Any]]:
    wave = np.load(golden_dir / name / "waveform.npy")
    return wave, json.loads((golden_dir / name / "result.json").read_text(encoding="utf-8"))


def _direct(model: AsrModel, wave: np.ndarray, graph: ContextGraph) -> tuple[list[int], list[int]]:
    """The beam search module called by hand over the model's own outputs."""
    features, lengths = model.features([wave])
    if model.kind == "ctc":
        log_probs, enc_lengths = model.ctc_log_probs(features, lengths)
        return ctc_beam_search(log_probs[0], int(enc_lengths[0]), model.blank_id, graph)
    step = model.step
    assert step is not None
    enc, enc_lengths = model.encoder.run(features, lengths, ["enc_proj", "encoded_lengths"])
    return rnnt_beam_search(
        enc[0], int(enc_lengths[0]), step, model.blank_id, graph, hidden_size=step.hidden_size
    )


@pytest.mark.parametrize("name", MODELS)
def test_without_keywords_decoding_is_the_reference_greedy(
    models: dict[str, AsrModel], golden_dir: Path, name: str
) -> None:
    model = models[name]
    wave, expected = _golden(golden_dir, name)
    for keywords in (None, [None]):
        (result,) = model.transcribe([wave], keywords=keywords)
        assert result.token_ids == expected["token_ids"]
        assert result.token_frames == expected["token_frames"]
        assert result.text == expected["text"]


@pytest.mark.parametrize("name", MODELS)
def test_a_wave_with_keywords_is_beam_searched_and_its_batch_mates_stay_greedy(
    models: dict[str, AsrModel], golden_dir: Path, name: str
) -> None:
    model = models[name]
    wave, expected = _golden(golden_dir, name)
    graph = model.compile_keywords(KEYWORDS, 4.0)
    short = wave[: wave.size * 3 // 5]
    (alone_short,) = model.transcribe([short])
    searched, greedy = model.transcribe([wave, short], keywords=[graph, None])
    assert (greedy.token_ids, greedy.token_frames) == (
        alone_short.token_ids,
        alone_short.token_frames,
    )
    assert (searched.token_ids, searched.token_frames) == _direct(model, wave, graph)
    (again,) = model.transcribe([wave], keywords=graph)  # one graph for every wave
    assert again == searched
    # words and times are built as for greedy
    assert searched.words == model.tokenizer.words(
        searched.token_ids, searched.token_frames, searched.frame_shift
    )
    assert searched.frame_shift == pytest.approx(expected["frame_shift_s"], abs=1e-9)


def test_compile_is_cached_and_refuses_what_the_model_cannot_write(
    models: dict[str, AsrModel],
) -> None:
    model = models["v3_ctc"]
    first = model.compile_keywords(KEYWORDS, 4.0)
    assert model.compile_keywords(list(KEYWORDS), 4.0) is first
    assert model.compile_keywords(KEYWORDS, 2.0) is not first
    with pytest.raises(KeywordError) as caught:
        model.compile_keywords([Keyword("кот"), Keyword("GitHub")], 4.0)
    assert caught.value.phrase == "GitHub"
    assert "GitHub" in str(caught.value)
    e2e = models["v3_e2e_rnnt"]
    assert isinstance(e2e.compile_keywords([Keyword("Сбер-Банк")], 4.0), ContextGraph)


def test_keywords_must_match_the_waves(models: dict[str, AsrModel], golden_dir: Path) -> None:
    model = models["v3_ctc"]
    wave, _ = _golden(golden_dir, "v3_ctc")
    graph = model.compile_keywords(KEYWORDS, 4.0)
    with pytest.raises(ModelError, match="2 keyword graphs for 1 waves"):
        model.transcribe([wave], keywords=[graph, None])
    with pytest.raises(ModelError, match="ContextGraph or None"):
        model.transcribe([wave], keywords=["Иван"])  # type: ignore[list-item]


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory: pytest.TempPathFactory) -> AsrModel:
    path = FIXTURES / "multilingual_ctc" / "multilingual_ctc.ckpt"
    return load_model(path, num_threads=1, cache_dir=tmp_path_factory.mktemp("ml"))


@pytest.mark.parametrize("language", ["en", "kk"])
def test_a_language_restriction_holds_under_beam_search(
    multilingual: AsrModel, language: str
) -> None:
    expected_json = json.loads((FIXTURES / "multilingual_ctc" / "expected.json").read_text())
    wave = np.load(FIXTURES / "waves.npy")[: expected_json["waves"][0][1]] / np.float32(32768)
    # a keyword in another script: boosted, it still cannot leave the alphabet
    graph = multilingual.compile_keywords(
        [Keyword("привет мир", 20.0), Keyword("hello world", 20.0)], 4.0
    )
    (result,) = multilingual.transcribe([wave], language=language, keywords=graph)
    assert set(result.text) <= LANGUAGES[language].letters | {" ", "'"}
    features, lengths = multilingual.features([wave])
    log_probs, enc_lengths = multilingual.ctc_log_probs(features, lengths)
    mask = multilingual.language_mask(language)
    assert mask is not None
    restricted = np.where(mask, log_probs[0], -np.inf)
    expected = ctc_beam_search(restricted, int(enc_lengths[0]), multilingual.blank_id, graph)
    assert (result.token_ids, result.token_frames) == expected
