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

from gigaam_api.model import AsrModel, Keyword
from gigaam_api.model.ctc_beam import ctc_beam_search
from gigaam_api.model.decoding import Hypothesis, Result, StepOutput, make_result
from gigaam_api.model.keywords import MIN_LETTERS, ContextGraph
from gigaam_api.model.rnnt_beam import rnnt_beam_search
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
    """A near-best alternative of one word: the word's index, the new text, and its margin:
    how much less likely (nats) the transcript with it is than the one decoded."""

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
                cost[i - 1, j] + 1,
                cost[i, j - 1] + 1,
                cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]),
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


def _log_softmax(x: NDArray[np.float64]) -> NDArray[np.float64]:
    top = np.max(x, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    shifted = x - top
    out: NDArray[np.float64] = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


class KeywordBench:
    """One model and one wave, decoded with any keyword graph at a chosen *sharpness*.

    A random-weight model is far less sure of itself than a trained one (on the golden
    fixtures the best class has 0.25-0.6 of the probability on average, where a trained
    model's is above 0.9), so every boost looks large to it. ``sharpness`` β scales the
    log-probabilities before renormalising (``log_softmax(β · log p)``: the same ranking, a
    peakier distribution); β = 1 is the model as it is. :meth:`sharpness_for` finds the β at
    which the mean best-class probability reaches a target.
    """

    def __init__(self, model: AsrModel, wave: NDArray[np.float32], sharpness: float = 1.0) -> None:
        self.model = model
        self.sharpness = sharpness
        features, lengths = model.features([wave])
        self.n_samples = int(wave.shape[0])
        if model.kind == "ctc":
            log_probs, enc_lengths = model.ctc_log_probs(features, lengths)
            self.length = int(enc_lengths[0])
            self._log_probs = log_probs[0, : self.length].astype(np.float64)
        else:
            enc, enc_lengths = model.encoder.run(features, lengths, ["enc_proj", "encoded_lengths"])
            self.length = int(enc_lengths[0])
            self._enc = np.asarray(enc[0], dtype=np.float32)

    def _step(self, *args: NDArray[Any]) -> StepOutput:
        step = self.model.step
        assert step is not None
        lp, h, c = step(*args)
        sharp = _log_softmax(self.sharpness * np.asarray(lp, dtype=np.float64))
        return sharp.astype(np.float32), h, c

    def search(self, graph: ContextGraph) -> Result:
        """Beam search with ``graph`` (an empty graph: beam search without keywords)."""
        blank = self.model.blank_id
        if self.model.kind == "ctc":
            ids, frames = ctc_beam_search(
                _log_softmax(self.sharpness * self._log_probs), self.length, blank, graph
            )
        else:
            step = self.model.step
            assert step is not None
            ids, frames = rnnt_beam_search(
                self._enc, self.length, self._step, blank, graph, hidden_size=step.hidden_size
            )
        return make_result(ids, frames, self.model.tokenizer, self.n_samples, self.length)

    def rows_along(self, hyp: Hypothesis) -> list[NDArray[np.float64]]:
        """The log-probabilities at each token of ``hyp`` (CTC: its frame; RNN-T: its step
        along the one-symbol-per-frame path)."""
        ids, frames = hyp
        if self.model.kind == "ctc":
            sharp = _log_softmax(self.sharpness * self._log_probs)
            return [sharp[f] for f in frames]
        step = self.model.step
        assert step is not None
        label = np.array([self.model.blank_id], dtype=np.int64)
        h = np.zeros((1, 1, step.hidden_size), np.float32)
        c = np.zeros((1, 1, step.hidden_size), np.float32)
        at = dict(zip(frames, ids, strict=True))
        rows: list[NDArray[np.float64]] = []
        for t in range(max(frames, default=-1) + 1):
            lp, h_new, c_new = self._step(label, h, c, self._enc[t : t + 1])
            if t in at:
                rows.append(np.asarray(lp[0], dtype=np.float64))
                label, h, c = np.array([at[t]], dtype=np.int64), h_new, c_new
        return rows

    def mean_top(self, hyp: Hypothesis) -> float:
        """Mean best-class probability (CTC: over all frames; RNN-T: over ``hyp``'s tokens)."""
        if self.model.kind == "ctc":
            rows = _log_softmax(self.sharpness * self._log_probs)
        else:
            rows = np.array(self.rows_along(hyp))
        return float(np.exp(rows.max(axis=1)).mean())

    def sharpness_for(self, target: float) -> float:
        """The β (1 to 64) at which :meth:`mean_top` of the greedy-like path reaches ``target``."""
        low, high = 1.0, 64.0
        for _ in range(20):
            self.sharpness = (low + high) / 2
            hyp = self.search(self.model.compile_keywords([], 1.0))
            if self.mean_top((hyp.token_ids, hyp.token_frames)) < target:
                low = self.sharpness
            else:
                high = self.sharpness
        self.sharpness = high
        return high

    def log_prob(self, ids: list[int]) -> float:
        """log P(ids) summed over every alignment the beam search considers (CTC: the CTC
        forward algorithm; RNN-T: one output per frame, as the modified beam search)."""
        blank = self.model.blank_id
        if self.model.kind == "ctc":
            lp = _log_softmax(self.sharpness * self._log_probs)
            ext = np.full(2 * len(ids) + 1, blank, dtype=np.int64)
            ext[1::2] = ids
            skip = np.zeros(ext.size, dtype=bool)
            skip[3::2] = ext[3::2] != ext[1:-2:2]
            alpha = np.full(ext.size, -np.inf)
            alpha[:2] = lp[0, ext[:2]]
            for t in range(1, self.length):
                prev1 = np.concatenate([[-np.inf], alpha[:-1]])
                prev2 = np.where(skip, np.concatenate([[-np.inf, -np.inf], alpha[:-2]]), -np.inf)
                alpha = np.logaddexp(np.logaddexp(alpha, prev1), prev2) + lp[t, ext]
            return float(np.logaddexp(alpha[-1], alpha[-2]) if len(ids) else alpha[-1])
        step = self.model.step
        assert step is not None
        n = len(ids)
        labels = np.array([blank, *ids], dtype=np.int64)
        hs = [np.zeros((1, 1, step.hidden_size), np.float32)]
        cs = [np.zeros((1, 1, step.hidden_size), np.float32)]
        for u in range(n):  # the state before each label is consumed (independent of the frame)
            _, h_new, c_new = self._step(labels[u : u + 1], hs[u], cs[u], self._enc[:1])
            hs.append(np.array(h_new))
            cs.append(np.array(c_new))
        h_all, c_all = np.concatenate(hs, axis=1), np.concatenate(cs, axis=1)
        alpha = np.full(n + 1, -np.inf)
        alpha[0] = 0.0
        for t in range(self.length):
            lp = np.asarray(
                self._step(labels, h_all, c_all, np.repeat(self._enc[t : t + 1], n + 1, axis=0))[0],
                dtype=np.float64,
            )
            stay = alpha + lp[:, blank]
            move = np.full(n + 1, -np.inf)
            move[1:] = alpha[:-1] + lp[np.arange(n), ids]
            alpha = np.logaddexp(stay, move)
        return float(alpha[-1])

    def token_alternatives(self, hyp: Hypothesis) -> list[tuple[int, float]]:
        """For each token of ``hyp``: the best other token at its place and the margin."""
        blank = self.model.blank_id
        ids = hyp[0]
        out: list[tuple[int, float]] = []
        for i, (token, row) in enumerate(zip(ids, self.rows_along(hyp), strict=True)):
            masked = row.copy()
            masked[blank] = -np.inf
            for j in (i - 1, i, i + 1):  # itself, and neighbours a CTC run would merge with
                if 0 <= j < len(ids):
                    masked[ids[j]] = -np.inf
            other = int(masked.argmax())
            out.append((other, float(row[token] - row[other])))
        return out


def planted_alternatives(bench: KeywordBench, hyp: Hypothesis) -> list[Planted]:
    """The nearest alternative of each word of ``hyp``: one token changed (to the best other
    token at its place), the word it makes, and how much less likely the whole changed
    transcript is (``margin`` = log P(hyp) - log P(changed), over all alignments)."""
    tokenizer = bench.model.tokenizer
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
    alternatives = bench.token_alternatives(hyp)
    base = bench.log_prob(ids)
    for i, (other, _margin) in enumerate(alternatives):
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
        if sum(ch.isalnum() for ch in text) < MIN_LETTERS:
            continue
        if sp is not None:
            first = next(k for k in range(len(changed)) if owner[k] == word)
            last = max(k for k in range(len(changed)) if owner[k] == word)
            if sp.encode(text) != changed[first : last + 1]:
                continue
        deficit = base - bench.log_prob(changed)
        if word not in best or deficit < best[word].margin:
            best[word] = Planted(word, text, deficit)
    return sorted(best.values(), key=lambda p: p.margin)


def as_words(text: Any) -> list[str]:
    """A transcript's words, as the tokenizer groups them (``Result.words`` texts)."""
    return [w.text for w in text.words]


@dataclass(frozen=True)
class PlantedOutcome:
    """What one planted keyword did: recovered at its word, and the other words' edits."""

    planted: Planted
    recovered: bool
    others: tuple[int, int, int]


@dataclass(frozen=True)
class Effect:
    """The keyword effect on one wave at one boost (see the module doc)."""

    words: int
    planted: list[PlantedOutcome]
    #: (substitutions, deletions, insertions) of the words with the 100 distractors given
    distractor_edits: tuple[int, int, int]
    #: distractor phrases found in the output that the output without keywords lacks
    distractors_inserted: int


def _spoken(words: list[str]) -> str:
    return " " + " ".join(w.lower().replace("ё", "е") for w in words) + " "


def evaluate(bench: KeywordBench, boost: float) -> Effect:
    """Plant each word's near-best alternative as the only keyword, then give the 100
    distractors; compare with beam search without keywords (same beam, same model)."""
    model = bench.model
    base = bench.search(model.compile_keywords([], boost))
    words = as_words(base)
    outcomes = []
    for planted in planted_alternatives(bench, (base.token_ids, base.token_frames)):
        got = as_words(bench.search(model.compile_keywords([Keyword(planted.text)], boost)))
        recovered = len(got) == len(words) and got[planted.word] == planted.text
        if recovered:
            others = word_edits(
                words[: planted.word] + words[planted.word + 1 :],
                got[: planted.word] + got[planted.word + 1 :],
            )
        else:
            others = word_edits(words, got)
        outcomes.append(PlantedOutcome(planted, recovered, others))
    graph = model.compile_keywords([Keyword(d) for d in DISTRACTORS], boost)
    got = as_words(bench.search(graph))
    before, after = _spoken(words), _spoken(got)
    inserted = 0
    for phrase in DISTRACTORS:
        target = _spoken(phrase.replace("-", " ").split())
        inserted += max(0, after.count(target) - before.count(target))
    return Effect(len(words), outcomes, word_edits(words, got), inserted)
