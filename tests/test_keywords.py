"""The keyword context graph and phrase normalisation (``model/keywords.py``).

The graph's promise is checked against an independent definition: walked over any token
sequence and finalised, its bonus equals the sum of the boosts of the phrase occurrences the
sequence contains (word-start anchored), whatever partial matches were opened and abandoned on
the way. Normalisation is checked on the real vocabularies of the fixtures: v3 characters,
multilingual characters and the e2e SentencePiece models.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gigaam_api.catalogue import tokenizer_beside
from gigaam_api.model.checkpoint import read_checkpoint
from gigaam_api.model.keywords import (
    ContextGraph,
    Keyword,
    KeywordError,
    KeywordVocabulary,
    compile_keywords,
    normalize_phrase,
)
from gigaam_api.model.tokenizer import CharTokenizer, SentencePieceTokenizer, load_tokenizer

V3_CHARS = [" ", *"абвгдежзийклмнопрстуфхцчшщъыьэюя"]
SMALL = KeywordVocabulary((" ", "а", "б", "в", "-"))


def _bonus_by_definition(tokens: list[int], phrases: dict[tuple[int, ...], float]) -> float:
    """Σ boost × whole-word occurrences of each phrase in the sequence read after a space."""
    text = [0, *tokens, 0]  # the search starts as if after a space (token 0); the end ends a word
    total = 0.0
    for phrase, boost in phrases.items():
        target = (*phrase, 0)
        n = len(target)
        total += boost * sum(tuple(text[i : i + n]) == target for i in range(len(text) - n + 1))
    return total


def _walk(graph: ContextGraph, tokens: list[int]) -> tuple[float, list[float]]:
    state, bonus, running = graph.start, 0.0, []
    for token in tokens:
        state, delta = graph.step(state, token)
        bonus += delta
        running.append(bonus)
    return bonus + graph.final(state), running


def test_final_bonus_is_the_sum_of_the_boosts_of_the_phrases_found() -> None:
    rng = random.Random(7)
    for _ in range(300):
        phrases: dict[tuple[int, ...], float] = {}
        keywords = []
        for _ in range(rng.randint(1, 4)):
            words = [
                "".join(rng.choice("абв") for _ in range(rng.randint(2, 3)))
                for _ in range(rng.randint(1, 2))
            ]
            boost = round(rng.uniform(0.5, 5.0), 2)
            keywords.append(Keyword(" ".join(words), boost))
            tokens = tuple(normalize_phrase(" ".join(words), SMALL)[0])
            phrases[tokens] = max(boost, phrases.get(tokens, 0.0))
        graph = compile_keywords(keywords, 1.0, SMALL)
        sequence = [rng.choice([0, 1, 2, 3]) for _ in range(rng.randint(0, 14))]
        final, _ = _walk(graph, sequence)
        assert final == pytest.approx(_bonus_by_definition(sequence, phrases)), (
            keywords,
            sequence,
        )


def test_one_boost_per_phrase_spread_over_its_letters_and_refunded_when_abandoned() -> None:
    vocab = KeywordVocabulary(tuple(V3_CHARS))
    index = {ch: i for i, ch in enumerate(V3_CHARS)}
    graph = compile_keywords([Keyword("ан"), Keyword("иван петров", 3.0)], 2.0, vocab)
    # a two-letter and a ten-letter phrase each earn exactly their own boost
    assert _walk(graph, [index[c] for c in "ан"])[0] == pytest.approx(2.0)
    assert _walk(graph, [index[c] for c in "иван петров"])[0] == pytest.approx(3.0)
    final, running = _walk(graph, [index[c] for c in "иван петров"])
    # spread: 3.0 / 10 letters each, the inner space earning nothing
    assert running[0] == pytest.approx(0.3)
    assert running[4] == running[3]
    assert running[-1] == pytest.approx(3.0)
    # abandoned half-way ("иван пе" then "х"): everything paid is taken back at once
    final, running = _walk(graph, [index[c] for c in "иван пех"])
    assert running[-2] == pytest.approx(1.8)
    assert running[-1] == pytest.approx(0.0)
    assert final == 0.0
    # still open when the audio ends: refunded by final()
    assert _walk(graph, [index[c] for c in "ива"])[0] == 0.0
    # matched as whole words only
    assert _walk(graph, [index[c] for c in "диван"])[0] == 0.0
    assert _walk(graph, [index[c] for c in "иван петрова"])[0] == 0.0
    assert _walk(graph, [index[c] for c in "иван петров и"])[0] == pytest.approx(3.0)
    # repeated: each occurrence is one boost
    assert _walk(graph, [index[c] for c in "ан ан"])[0] == pytest.approx(4.0)


def test_the_same_tokens_from_two_keywords_earn_one_boost() -> None:
    vocab = KeywordVocabulary(tuple(V3_CHARS))
    graph = compile_keywords([Keyword("Ёлка", 1.0), Keyword("елка", 2.5)], 2.0, vocab)
    tokens = normalize_phrase("елка", vocab)[0][1:]
    assert _walk(graph, tokens)[0] == pytest.approx(2.5)


def test_char_models_normalise_case_yo_and_punctuation() -> None:
    vocab = KeywordVocabulary(tuple(V3_CHARS))
    tokens = normalize_phrase("  Нью-Йорк,  Пётр ", vocab)
    assert len(tokens) == 1
    assert "".join(V3_CHARS[t] for t in tokens[0]) == " нью йорк петр"
    for phrase, reason in [
        ("", "empty"),
        ("  ", "empty"),
        ("—!", "no letters"),
        ("в", "at least 2 letters"),
        (" Я! ", "at least 2 letters"),
        ("iPhone", "cannot write"),
        ("R2D2", "cannot write"),
        ("Москва 2024", "cannot write"),
    ]:
        with pytest.raises(KeywordError, match=reason) as caught:
            normalize_phrase(phrase, vocab)
        assert caught.value.phrase == phrase


def test_multilingual_vocabulary_keeps_yo_latin_and_apostrophe(golden_dir: Path) -> None:
    path = Path(__file__).parent / "fixtures/generations/multilingual_ctc/multilingual_ctc.ckpt"
    tokenizer = load_tokenizer(read_checkpoint(path).cfg["decoding"])
    assert isinstance(tokenizer, CharTokenizer)
    vocab = KeywordVocabulary(tokenizer.vocabulary)
    (tokens,) = normalize_phrase("Ёлка O'Reilly Қазақстан", vocab)
    assert "".join(tokenizer.vocabulary[t] for t in tokens) == " ёлка o'reilly қазақстан"
    with pytest.raises(KeywordError, match="cannot write"):
        normalize_phrase("Straße", vocab)


@pytest.mark.parametrize("name", ["v3_e2e_ctc", "v3_e2e_rnnt"])
def test_e2e_models_get_case_variants_and_lose_edge_punctuation(
    golden_dir: Path, name: str
) -> None:
    path = golden_dir / name / f"{name}.ckpt"
    tokenizer = load_tokenizer(read_checkpoint(path).cfg["decoding"], tokenizer_beside(path))
    assert isinstance(tokenizer, SentencePieceTokenizer)
    vocab = KeywordVocabulary(tuple(tokenizer.pieces(list(range(tokenizer.blank_id)))), tokenizer)
    variants = normalize_phrase("«иван петров».", vocab)
    texts = {tokenizer.decode(v) for v in variants}
    assert texts == {"иван петров", "Иван Петров", "Иван петров"}
    # a capital this vocabulary lacks ("Ж"): the lower-case variant is still written
    assert {tokenizer.decode(v) for v in normalize_phrase("Жуков", vocab)} == {"жуков"}
    with pytest.raises(KeywordError, match="cannot write") as caught:
        normalize_phrase("Wolf", vocab)
    assert caught.value.phrase == "Wolf"
    with pytest.raises(KeywordError, match="no letters"):
        normalize_phrase("«»", vocab)
    # lone word marks are boundaries: matched, never boosted
    graph = compile_keywords([Keyword("иван петров")], 2.0, vocab)
    for tokens in variants:
        boosted = [not vocab.boundary(t) for t in tokens]
        state, bonus = graph.start, 0.0
        for token, counts in zip(tokens, boosted, strict=True):
            state, delta = graph.step(state, token)
            if not counts:
                assert delta == 0.0
            bonus += delta
        assert bonus + graph.final(state) == pytest.approx(2.0)


def test_bad_boosts_are_refused_naming_the_phrase() -> None:
    vocab = KeywordVocabulary(tuple(V3_CHARS))
    for boost in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(KeywordError, match="boost") as caught:
            compile_keywords([Keyword("кот"), Keyword("пёс", boost)], 2.0, vocab)
        assert caught.value.phrase == "пёс"
