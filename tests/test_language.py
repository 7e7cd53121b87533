"""Languages: alphabets, what each model serves, the decode-time restriction, detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gigaam_api.model import AsrModel, LanguageError, ModelError, detect_language, load_model
from gigaam_api.model.checkpoint import read_checkpoint
from gigaam_api.model.decoding import ctc_greedy
from gigaam_api.model.language import (
    LANGUAGES,
    allowed_classes,
    normalize_language,
    supported_languages,
)
from tests.helpers import checkpoint_writer

FIXTURES = Path(__file__).parent / "fixtures" / "generations"
MULTILINGUAL = [" ", "'", *"abcdefghijklmnopqrstuvwxyz", *"абвгдежзийклмнопрстуфхцчшщъыьэюя"]
MULTILINGUAL += list("ёіғқңүұһәө")
V3_CHARS = [" ", *"абвгдежзийклмнопрстуфхцчшщъыьэюя"]


def _wave(index: int = 0) -> np.ndarray:
    expected = json.loads((FIXTURES / "multilingual_ctc" / "expected.json").read_text())
    pcm = np.load(FIXTURES / "waves.npy")
    start = sum(n for _s, n in expected["waves"][:index])
    n = expected["waves"][index][1]
    return pcm[start : start + n].astype(np.float32) / 32768.0


def test_alphabets() -> None:
    assert len(LANGUAGES["ru"].letters) == 33
    assert len(LANGUAGES["en"].letters) == 26
    assert len(LANGUAGES["kk"].letters) == 42
    assert len(LANGUAGES["ky"].letters) == 36
    assert "w" not in LANGUAGES["uz"].letters and "q" in LANGUAGES["uz"].letters
    # the multilingual vocabulary writes every letter of all five, and nothing else
    written = set("".join(MULTILINGUAL)) - {" ", "'"}
    assert written == set().union(*(lang.letters for lang in LANGUAGES.values()))


def test_which_languages_a_vocabulary_serves() -> None:
    assert supported_languages(MULTILINGUAL) == ("ru", "en", "kk", "ky", "uz")
    assert supported_languages(V3_CHARS) == ("ru",)  # no ё: optional for Russian
    assert supported_languages(["▁при", "вет", "<unk>", "!", "1"]) == ()


def test_allowed_classes_keep_blank_space_apostrophe_and_letterless_pieces() -> None:
    mask = allowed_classes(MULTILINGUAL, "kk")
    assert mask.shape == (71,) and mask[70]  # blank
    allowed = {MULTILINGUAL[i] for i in np.flatnonzero(mask[:70])}
    assert allowed == {" ", "'"} | LANGUAGES["kk"].letters
    pieces = ["▁hello", "▁привет", "!", "▁", "<unk>"]
    assert allowed_classes(pieces, "ru").tolist() == [False, True, True, True, False, True]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("привет как дела", "ru"),
        ("сәлеметсіз бе қалың қалай", "kk"),
        ("саламатсызбы кандайсың жакшы түн", "ky"),
        ("hello how are you", "en"),
        ("o'zbekiston qanday", "uz"),
        ("assalomu alaykum qalaysiz", "uz"),
        ("quick question", "en"),
        ("привет hello мир", "ru"),
        ("123 !", None),
        ("", None),
    ],
)
def test_detect_language_by_script(text: str, language: str | None) -> None:
    assert detect_language(text) == language


def test_detect_language_within_candidates() -> None:
    assert detect_language("сәлем", ["ru"]) == "ru"  # a Russian model's Kazakh-looking text
    assert detect_language("hello", ["ru"]) is None
    assert detect_language("hello", ["ru", "uz"]) == "uz"


def test_normalize_language() -> None:
    assert normalize_language(" KK ") == "kk"


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory: pytest.TempPathFactory) -> AsrModel:
    path = FIXTURES / "multilingual_ctc" / "multilingual_ctc.ckpt"
    return load_model(path, num_threads=1, cache_dir=tmp_path_factory.mktemp("g"))


def test_multilingual_serves_five_languages(multilingual: AsrModel) -> None:
    assert multilingual.languages == ("ru", "en", "kk", "ky", "uz")


@pytest.mark.parametrize("language", ["ru", "en", "kk", "ky", "uz"])
def test_restriction_keeps_the_output_in_the_alphabet(
    multilingual: AsrModel, language: str
) -> None:
    """Restricted greedy CTC: the argmax over the allowed classes of each frame, then the
    usual collapse; the text only has the language's letters."""
    wave = _wave()
    (free,) = multilingual.transcribe([wave])
    (result,) = multilingual.transcribe([wave], language=language)
    assert set(result.text) <= LANGUAGES[language].letters | {" ", "'"}
    feats, lens = multilingual.features([wave])
    log_probs, enc_len = multilingual.ctc_log_probs(feats, lens)
    mask = allowed_classes(multilingual.tokenizer.pieces(list(range(70))), language)
    ((ids, frames),) = ctc_greedy(np.where(mask, log_probs, -np.inf), enc_len, 70)
    assert (result.token_ids, result.token_frames) == (ids, frames)
    if set(free.text) <= LANGUAGES[language].letters | {" ", "'"}:
        assert result.token_ids == free.token_ids
    else:
        assert result.token_ids != free.token_ids


def test_unserved_language_is_a_typed_error(multilingual: AsrModel) -> None:
    with pytest.raises(LanguageError) as info:
        multilingual.transcribe([_wave()], language="de")
    assert info.value.language == "de" and info.value.supported == multilingual.languages
    assert "language 'de'" in str(info.value)
    v2 = load_model(FIXTURES / "v2_ctc" / "v2_ctc.ckpt", num_threads=1)
    assert v2.languages == ("ru",)
    with pytest.raises(LanguageError, match="supports: ru"):
        v2.transcribe([], language="kk")  # refused before any work, even for no waves
    (plain,) = v2.transcribe([_wave()])
    assert v2.transcribe([_wave()], language="RU")[0].token_ids == plain.token_ids


def test_rnnt_restriction(tmp_path: Path) -> None:
    """An RNN-T model whose vocabulary writes English: the step's scores lose the other
    classes, so the transcript stays Latin while the unrestricted one does not."""
    ckpt = read_checkpoint(FIXTURES / "v2_rnnt" / "v2_rnnt.ckpt")
    labels = [" ", "'", *"abcdefghijklmnopqrstuvwxyz", *"абвгд"]
    cfg = dict(ckpt.cfg, labels=labels, model_name="custom_rnnt")
    cfg["decoding"] = dict(cfg["decoding"], vocabulary=labels)
    path = tmp_path / "custom_rnnt.ckpt"
    checkpoint_writer().write_checkpoint(path, cfg, dict(ckpt.state_dict))
    model = load_model(path, num_threads=1)
    assert model.languages == ("en", "uz")
    (free,) = model.transcribe([_wave(1)])
    (latin,) = model.transcribe([_wave(1)], language="en")
    assert set(free.text) - LANGUAGES["en"].letters - {" ", "'"}
    assert latin.token_ids and set(latin.text) <= LANGUAGES["en"].letters | {" ", "'"}


def test_each_wave_may_have_its_own_language(multilingual: AsrModel, tmp_path: Path) -> None:
    """A combined call (several requests' waves) restricts each wave as asked."""
    waves = [_wave(0), _wave(1)]
    mixed = multilingual.transcribe(waves, language=["en", None])
    assert mixed[0].token_ids == multilingual.transcribe([waves[0]], language="en")[0].token_ids
    assert mixed[1].token_ids == multilingual.transcribe([waves[1]])[0].token_ids
    with pytest.raises(LanguageError):
        multilingual.transcribe(waves, language=["kk", "xx"])
    with pytest.raises(ModelError, match="1 languages for 2 waves"):
        multilingual.transcribe(waves, language=["kk"])
    ckpt = read_checkpoint(FIXTURES / "v2_rnnt" / "v2_rnnt.ckpt")
    labels = [" ", "'", *"abcdefghijklmnopqrstuvwxyz", *"абвгд"]
    cfg = dict(ckpt.cfg, labels=labels, model_name="custom_rnnt")
    cfg["decoding"] = dict(cfg["decoding"], vocabulary=labels)
    path = tmp_path / "custom_rnnt.ckpt"
    checkpoint_writer().write_checkpoint(path, cfg, dict(ckpt.state_dict))
    rnnt = load_model(path, num_threads=1)
    mixed = rnnt.transcribe(waves, language=[None, "en"])
    assert mixed[0].token_ids == rnnt.transcribe([waves[0]])[0].token_ids
    assert mixed[1].token_ids == rnnt.transcribe([waves[1]], language="en")[0].token_ids
