"""Keyword effect cases shared by ``tests/test_keyword_effect.py`` and ``benchmarks/keywords.py``.

* ``DISTRACTORS``: 100 Russian phrases (names, places, brands, terms) that the random-weight
  models never say; given as keywords they must not be inserted.
* ``planted_alternatives``: near-best alternatives of the words a model did say. For each
  emitted token, the best *other* token at the same place (the same CTC frame, the same RNN-T
  step along the one-symbol-per-frame path) and how much less likely it was (``margin``,
  nats); the word rewritten with it is a keyword that the audio nearly supports. A
  SentencePiece alternative is kept only when the tokenizer writes that word with exactly the
  planted pieces (a keyword is matched in the tokenizer's own segmentation).
* ``word_edits``: substitutions, deletions and insertions between two word lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gigaam_api.model import AsrModel
from gigaam_api.model.decoding import Hypothesis
from gigaam_api.model.tokenizer import SentencePieceTokenizer

DISTRACTORS: tuple[str, ...] = tuple(
    """
    Москва; Санкт-Петербург; Новосибирск; Екатеринбург; Казань; Нижний Новгород; Челябинск;
    Самара; Омск; Ростов-на-Дону; Уфа; Красноярск; Воронеж; Пермь; Волгоград; Краснодар;
    Саратов; Тюмень; Тольятти; Ижевск; Барнаул; Ульяновск; Иркутск; Хабаровск; Ярославль;
    Владивосток; Махачкала; Томск; Оренбург; Кемерово; Иван Петров; Мария Иванова;
    Алексей Смирнов; Ольга Кузнецова; Дмитрий Соколов; Анна Попова; Сергей Лебедев;
    Екатерина Козлова; Андрей Новиков; Наталья Морозова; Павел Волков; Татьяна Соловьёва;
    Михаил Васильев; Елена Зайцева; Николай Павлов; Ирина Семёнова; Владимир Голубев;
    Светлана Виноградова; Юрий Богданов; Людмила Воробьёва; Сбербанк; Газпром; Роснефть;
    Лукойл; Яндекс; Аэрофлот; Ростелеком; Магнит; Пятёрочка; Тинькофф; Мегафон; Билайн;
    Авито; Озон; Вайлдберриз; Касперский; Росатом; Норникель; Северсталь; Татнефть;
    трансформатор; электрокардиограмма; амортизатор; гидроизоляция; фотосинтез; интеграл;
    дифференциал; катализатор; полупроводник; антибиотик; иммуноглобулин; стоматология;
    бухгалтерия; логистика; маркетплейс; криптовалюта; нейросеть; микроконтроллер;
    синхрофазотрон; палеонтология; экскаватор; вертолёт; космодром; обсерватория;
    электричка; метрополитен; капитализация; дивиденды; ипотека; амортизация
    """.replace("\n", " ").split(";")
)
DISTRACTORS = tuple(" ".join(p.split()) for p in DISTRACTORS)
assert len(DISTRACTORS) == 100 and len(set(DISTRACTORS)) == 100


@dataclass(frozen=True)
class Planted:
    """A near-best alternative of one word: the word's index, the new text, its margin."""

    word: int
    text: str
    margin: float


def word_edits(ref: list[str], hyp: list[str]) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of the cheapest edit from ``ref`` to ``hyp``."""
    n, m = len(ref), len(hyp)
    cost = np.zeros((n + 1, m + 1), dtype=np.int64)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(
                cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1])
            )
    subs = dels = ins = 0
    i, j = n, m
    while i or j:
        if i and j and cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            subs += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i and cost[i, j] == cost[i - 1, j] + 1:
            dels, i = dels + 1, i - 1
        else:
            ins, j = ins + 1, j - 1
    return subs, dels, ins


def token_alternatives(
    model: AsrModel, wave: NDArray[np.float32], hyp: Hypothesis
) -> list[tuple[int, float]]:
    """For each token of ``hyp``: the best other token at its place and the margin (nats)."""
    features, lengths = model.features([wave])
    blank = model.blank_id
    ids, frames = hyp
    rows: list[NDArray[np.float64]] = []
    if model.kind == "ctc":
        log_probs, _ = model.ctc_log_probs(features, lengths)
        rows = [log_probs[0, f].astype(np.float64) for f in frames]
    else:
        step = model.step
        assert step is not None
        enc, _ = model.encoder.run(features, lengths, ["enc_proj", "encoded_lengths"])
        label = np.array([blank], dtype=np.int64)
        h = np.zeros((1, 1, step.hidden_size), np.float32)
        c = np.zeros((1, 1, step.hidden_size), np.float32)
        at = dict(zip(frames, ids, strict=True))
        for t in range(max(frames, default=-1) + 1):
            lp, h_new, c_new = step(label, h, c, enc[0, t : t + 1])
            if t in at:
                rows.append(np.asarray(lp[0], dtype=np.float64))
                label, h, c = np.array([at[t]], dtype=np.int64), h_new, c_new
    out: list[tuple[int, float]] = []
    for i, (token, row) in enumerate(zip(ids, rows, strict=True)):
        masked = row.copy()
        masked[blank] = -np.inf
        for j in (i - 1, i, i + 1):  # the token itself, and neighbours a CTC run would merge
            if 0 <= j < len(ids):
                masked[ids[j]] = -np.inf
        other = int(masked.argmax())
        out.append((other, float(row[token] - row[other])))
    return out


def planted_alternatives(
    model: AsrModel, wave: NDArray[np.float32], hyp: Hypothesis
) -> list[Planted]:
    """The nearest alternative of each word of ``hyp`` (by its token of smallest margin)."""
    tokenizer = model.tokenizer
    ids, frames = hyp
    pieces = tokenizer.pieces(ids)
    words = [w.text for w in tokenizer.words(ids, frames, 1.0)]
    # the word each token belongs to, as tokenizer.words groups them
    owner: list[int] = []
    index = -1
    started = False
    for piece in pieces:
        if piece.startswith("▁") or piece == " ":
            started = False
        letters = piece.lstrip("▁").strip()
        if letters and not started:
            index += 1
            started = True
        owner.append(index if letters else -1)
    sp = tokenizer if isinstance(tokenizer, SentencePieceTokenizer) else None
    best: dict[int, Planted] = {}
    alternatives = token_alternatives(model, wave, hyp)
    for i, (other, margin) in enumerate(alternatives):
        word = owner[i]
        if word < 0:
            continue
        piece = tokenizer.pieces([other])[0]
        if piece.startswith("▁") != pieces[i].startswith("▁") or not piece.strip("▁ ").isalpha():
            continue
        changed = [*ids[:i], other, *ids[i + 1 :]]
        new_words = [w.text for w in tokenizer.words(changed, frames, 1.0)]
        if len(new_words) != len(words) or new_words[word] == words[word]:
            continue
        text = new_words[word]
        if sp is not None:
            first = next(k for k in range(len(changed)) if owner[k] == word)
            last = max(k for k in range(len(changed)) if owner[k] == word)
            if sp.encode(text) != changed[first : last + 1]:
                continue
        if word not in best or margin < best[word].margin:
            best[word] = Planted(word, text, margin)
    return sorted(best.values(), key=lambda p: p.margin)


def as_words(text: Any) -> list[str]:
    """A transcript's words, as the tokenizer groups them (``Result.words`` texts)."""
    return [w.text for w in text.words]
