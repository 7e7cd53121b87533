"""Exactness of the beam searches (``ctc_beam.py``, ``rnnt_beam.py``) against brute force.

On small random tables every alignment is enumerated: for CTC every frame-label sequence
(collapsed to its labels, probabilities summed per label sequence); for RNN-T every sequence
of one output per frame (blank, or one label: the modified search's topology) run through a
tiny deterministic step function (an embedding, a tanh recurrence and a joint, in numpy: a
pure function, the same kind of thing as the model's step). The reference answer is the label
sequence with the largest ``log P(labels) + keyword bonus``, the bonus being the sum of the
boosts of the phrases it contains (computed here by counting, not by the graph). With a beam
wide enough to keep everything, and the pruning shortcuts off, the searches must find exactly
that sequence, with keywords and without.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest
from numpy.typing import NDArray

from gigaam_api.model.ctc_beam import ctc_beam_search
from gigaam_api.model.decoding import StepOutput, ctc_greedy
from gigaam_api.model.keywords import ContextGraph, Keyword, KeywordVocabulary, compile_keywords
from gigaam_api.model.rnnt_beam import rnnt_beam_search, rnnt_beam_search_batch

#: Labels: space, three letters; blank is the last class.
PIECES = (" ", "а", "б", "в")
VOCAB = KeywordVocabulary(PIECES)
BLANK = len(PIECES)
WIDE = 100_000


def _log_softmax(x: NDArray[np.float64]) -> NDArray[np.float64]:
    x = x - x.max(axis=-1, keepdims=True)
    out: NDArray[np.float64] = x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
    return out


def _random_keywords(rng: np.random.Generator) -> list[Keyword]:
    words = ["".join(rng.choice(list("абв"), size=int(rng.integers(2, 4)))) for _ in range(3)]
    return [Keyword(w, float(rng.uniform(0.5, 4.0))) for w in words]


def _bonus(labels: tuple[int, ...], keywords: list[Keyword]) -> float:
    """Σ boost × whole-word occurrences: ' ' + phrase + ' ' in ' ' + the labels + ' '."""
    text = " " + "".join(PIECES[i] for i in labels) + " "
    best: dict[str, float] = {}
    for k in keywords:
        best[k.phrase] = max(best.get(k.phrase, 0.0), k.boost or 0.0)
    total = 0.0
    for phrase, boost in best.items():
        target = " " + phrase + " "
        total += boost * sum(text.startswith(target, i) for i in range(len(text)))
    return total


def _best(totals: dict[tuple[int, ...], float], keywords: list[Keyword]) -> tuple[int, ...]:
    return max(totals, key=lambda y: totals[y] + _bonus(y, keywords))


def _margin(totals: dict[tuple[int, ...], float], keywords: list[Keyword]) -> float:
    scores = sorted((totals[y] + _bonus(y, keywords) for y in totals), reverse=True)
    return scores[0] - scores[1] if len(scores) > 1 else math.inf


# --------------------------------------------------------------------------- CTC


def _ctc_brute_force(log_probs: NDArray[np.float64]) -> dict[tuple[int, ...], float]:
    """log P(labels) for every label sequence: all C^T frame paths, collapsed and summed."""
    totals: dict[tuple[int, ...], list[float]] = defaultdict(list)
    n_frames, n_classes = log_probs.shape
    for path in itertools.product(range(n_classes), repeat=n_frames):
        labels = tuple(c for t, c in enumerate(path) if c != BLANK and (t == 0 or path[t - 1] != c))
        totals[labels].append(float(sum(log_probs[t, c] for t, c in enumerate(path))))
    return {y: float(np.logaddexp.reduce(v)) for y, v in totals.items()}


@pytest.mark.parametrize("seed", range(40))
def test_ctc_prefix_beam_search_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_frames = int(rng.integers(3, 7))
    log_probs = _log_softmax(rng.normal(0, 1.5, size=(n_frames, BLANK + 1)))
    totals = _ctc_brute_force(log_probs)
    keywords = _random_keywords(rng)
    graph = compile_keywords(keywords, 1.0, VOCAB)
    for kws, context in (([], None), (keywords, graph)):
        if _margin(totals, kws) < 1e-9:
            continue  # a tie: either answer is right
        ids, frames = ctc_beam_search(
            log_probs, n_frames, BLANK, context, beam=WIDE, blank_skip=1.0, prune=math.inf
        )
        assert tuple(ids) == _best(totals, kws)
        assert frames == sorted(frames) and all(0 <= f < n_frames for f in frames)


def test_keywords_change_the_ctc_answer_on_some_tables() -> None:
    """Not vacuous: over the exactness tables, the bonus moves the argmax now and then."""
    changed = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        n_frames = int(rng.integers(3, 7))
        log_probs = _log_softmax(rng.normal(0, 1.5, size=(n_frames, BLANK + 1)))
        totals = _ctc_brute_force(log_probs)
        changed += _best(totals, []) != _best(totals, _random_keywords(rng))
    assert changed >= 5


def test_ctc_beam_without_keywords_matches_greedy_on_peaked_tables() -> None:
    """Where one alignment dominates, prefix beam search and greedy agree (pruning on)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, BLANK + 1, size=60)
        log_probs = _log_softmax(rng.normal(0, 0.3, size=(60, BLANK + 1)))
        log_probs[np.arange(60), labels] += 12.0
        log_probs = _log_softmax(log_probs)
        (greedy,) = ctc_greedy(log_probs[None], [60], BLANK)
        assert ctc_beam_search(log_probs, 60, BLANK) == greedy


def test_ctc_classes_at_minus_infinity_are_never_emitted() -> None:
    rng = np.random.default_rng(3)
    log_probs = _log_softmax(rng.normal(0, 2.0, size=(30, BLANK + 1)))
    log_probs[:, 2] = -np.inf  # "б" excluded, as a language restriction does
    graph = compile_keywords([Keyword("бб", 50.0), Keyword("аб", 50.0)], 1.0, VOCAB)
    ids, _ = ctc_beam_search(log_probs, 30, BLANK, graph)
    assert 2 not in ids


# --------------------------------------------------------------------------- RNN-T

HIDDEN = 3


class _TinyStep:
    """A deterministic predictor + joint: embedding → tanh recurrence → joint with the frame."""

    hidden_size = HIDDEN

    def __init__(self, rng: np.random.Generator) -> None:
        self.embed = rng.normal(0, 1.0, size=(BLANK + 1, HIDDEN))
        self.embed[BLANK] = 0.0  # the blank row is "no label yet", as in the model
        self.recur = rng.normal(0, 0.8, size=(HIDDEN, HIDDEN))
        self.out = rng.normal(0, 1.5, size=(HIDDEN, BLANK + 1))

    def __call__(
        self,
        labels: NDArray[np.int64],
        h: NDArray[np.float32],
        c: NDArray[np.float32],
        enc: NDArray[np.float32],
    ) -> StepOutput:
        h_new = np.tanh(self.embed[labels] + h[0] @ self.recur)
        c_new = c[0] + h_new
        logits = (h_new + 0.5 * c[0]) @ self.out + enc
        return (
            _log_softmax(logits).astype(np.float32),
            h_new[None].astype(np.float32),
            c_new[None].astype(np.float32),
        )


def _rnnt_brute_force(step: _TinyStep, enc: NDArray[np.float32]) -> dict[tuple[int, ...], float]:
    """log P(labels) over every one-output-per-frame path, the step run along each path."""
    totals: dict[tuple[int, ...], list[float]] = defaultdict(list)
    n_frames = enc.shape[0]
    for path in itertools.product(range(BLANK + 1), repeat=n_frames):
        label = np.array([BLANK])
        h = np.zeros((1, 1, HIDDEN), np.float32)
        c = np.zeros((1, 1, HIDDEN), np.float32)
        score = 0.0
        for t, out in enumerate(path):
            lp, h_new, c_new = step(label, h, c, enc[t : t + 1])
            score += float(lp[0, out])
            if out != BLANK:
                label, h, c = np.array([out]), h_new, c_new
        totals[tuple(o for o in path if o != BLANK)].append(score)
    return {y: float(np.logaddexp.reduce(v)) for y, v in totals.items()}


@pytest.mark.parametrize("seed", range(25))
def test_rnnt_modified_beam_search_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    step = _TinyStep(rng)
    n_frames = int(rng.integers(3, 6))
    enc = rng.normal(0, 1.0, size=(n_frames, BLANK + 1)).astype(np.float32)
    totals = _rnnt_brute_force(step, enc)
    keywords = _random_keywords(rng)
    graph: ContextGraph = compile_keywords(keywords, 1.0, VOCAB)
    for kws, context in (([], None), (keywords, graph)):
        if _margin(totals, kws) < 1e-5:
            continue  # float32 steps: a near tie may go either way
        ids, frames = rnnt_beam_search(
            enc, n_frames, step, BLANK, context, beam=WIDE, prune=math.inf
        )
        assert tuple(ids) == _best(totals, kws)
        assert len(set(frames)) == len(frames)  # one symbol per frame


def test_rnnt_classes_at_minus_infinity_are_never_emitted() -> None:
    rng = np.random.default_rng(5)
    inner = _TinyStep(rng)

    def restricted(*args: NDArray[np.float32]) -> StepOutput:
        lp, h, c = inner(*args)  # type: ignore[arg-type]
        lp = lp.copy()
        lp[:, 2] = -np.inf
        return lp, h, c

    enc = rng.normal(0, 1.0, size=(20, BLANK + 1)).astype(np.float32)
    graph = compile_keywords([Keyword("бв", 50.0)], 1.0, VOCAB)
    ids, _ = rnnt_beam_search(enc, 20, restricted, BLANK, graph, hidden_size=HIDDEN)
    assert 2 not in ids


def test_keywords_change_the_rnnt_answer_on_some_tables() -> None:
    """Not vacuous: over the RNN-T exactness tables, the bonus moves the argmax now and then."""
    changed = 0
    for seed in range(25):
        rng = np.random.default_rng(100 + seed)
        step = _TinyStep(rng)
        n_frames = int(rng.integers(3, 6))
        enc = rng.normal(0, 1.0, size=(n_frames, BLANK + 1)).astype(np.float32)
        totals = _rnnt_brute_force(step, enc)
        changed += _best(totals, []) != _best(totals, _random_keywords(rng))
    assert changed >= 5


def test_rnnt_batch_in_lockstep_equals_each_row_alone() -> None:
    rng = np.random.default_rng(9)
    step = _TinyStep(rng)
    enc = rng.normal(0, 1.0, size=(3, 12, BLANK + 1)).astype(np.float32)
    lengths = [12, 5, 0]
    graphs = [compile_keywords(_random_keywords(rng), 2.0, VOCAB), None, None]
    together = rnnt_beam_search_batch(enc, lengths, step, BLANK, graphs)
    alone = [rnnt_beam_search(enc[i], lengths[i], step, BLANK, graphs[i]) for i in range(3)]
    assert together == alone
    assert together[2] == ([], [])
