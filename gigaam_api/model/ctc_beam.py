"""CTC prefix beam search with a keyword context graph (``keywords.py``).

Greedy CTC (``decoding.ctc_greedy``) stays the default; this search runs only for a request
that gave keywords. It keeps the ``beam`` best *prefixes* (label sequences), each with the
log-probability of all its alignments ending in blank (``pb``) and in its last label
(``pnb``), and ranks them by ``log(e^pb + e^pnb) + bonus``, the bonus being the context
graph's running keyword bonus (committed boosts plus the open match's potential). When the
audio ends the open matches are refunded and the best prefix wins. With a beam wide enough to
keep every prefix this is exact: it maximises ``log P(labels) + Σ boosts of the phrases the
labels contain`` (tested against a brute-force enumeration).

Kept small next to the encoder:

* **Blank frames are skipped**: a frame whose blank probability exceeds ``blank_skip``
  (0.999), while no hypothesis is inside a keyword, only extends every prefix by blank or by
  repeating its last label (no new prefixes); on real speech most frames are such.
* **Candidates per frame**: the ``beam`` most likely labels within ``prune`` nats of the best
  one, plus the labels that continue an open keyword match. The per-frame work is a handful
  of dictionary updates per (prefix, candidate), never a loop over the vocabulary.

A class excluded by a language restriction has log-probability −inf and is never a candidate.
Each token's frame is the frame its prefix was first extended by it (the first frame of its
run, as greedy reports), so ``decoding.make_result`` builds the words and times as for greedy.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from gigaam_api.model.decoding import Hypothesis, TokenChain, unwind
from gigaam_api.model.keywords import ContextGraph
from gigaam_api.model.tokenizer import DecodingError

__all__ = ["CTC_BEAM", "ctc_beam_search"]

#: Prefixes kept per frame.
CTC_BEAM: Final = 8
#: A frame more surely blank than this (and no open keyword match) adds no new prefixes.
BLANK_SKIP: Final = 0.999
#: Candidates further than this below the frame's best label (nats) are not tried.
PRUNE: Final = 10.0

_NEG_INF: Final = -math.inf


def _lse(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


class _Prefix:
    """One label sequence: its CTC probabilities (log), last label, graph state and bonus."""

    __slots__ = ("bonus", "chain", "last", "parent", "pb", "pnb", "state")

    def __init__(
        self,
        pb: float,
        pnb: float,
        last: int,
        state: int,
        bonus: float,
        chain: TokenChain,
        parent: int | None,
    ) -> None:
        self.parent = parent  # the key of the prefix one label shorter
        self.pb = pb
        self.pnb = pnb
        self.last = last
        self.state = state
        self.bonus = bonus
        self.chain = chain

    def score(self) -> float:
        return _lse(self.pb, self.pnb) + self.bonus


def ctc_beam_search(
    log_probs: NDArray[np.floating[Any]],
    length: int,
    blank_id: int,
    context: ContextGraph | None = None,
    *,
    beam: int = CTC_BEAM,
    blank_skip: float = BLANK_SKIP,
    prune: float = PRUNE,
) -> Hypothesis:
    """The best (ids, frames) of one item's ``[T, C]`` log-probabilities over ``length`` frames.

    ``blank_skip`` ≥ 1 and ``prune`` = inf turn the two shortcuts off (the exactness tests).
    """
    scores = np.asarray(log_probs)
    if scores.ndim != 2 or not 0 <= blank_id < scores.shape[1]:
        raise DecodingError(f"expected [T, C] log-probs with blank {blank_id}, got {scores.shape}")
    if not 0 <= length <= scores.shape[0]:
        raise DecodingError(f"length {length} must lie within [0, {scores.shape[0]}]")
    if beam < 1:
        raise DecodingError(f"beam must be at least 1, got {beam}")
    rows = scores[:length].astype(np.float64)
    if context is not None and not context.phrase_count:
        context = None  # no phrase: the plain search, without the graph's bookkeeping
    start = 0 if context is None else context.start
    # keys: prefixes are identified by a hash chain of their labels (ints hash stably)
    hyps: dict[int, _Prefix] = {0: _Prefix(0.0, _NEG_INF, -1, start, 0.0, None, None)}
    log_skip = math.log(blank_skip) if blank_skip < 1.0 else math.inf
    n_cand = min(beam, scores.shape[1] - 1)
    for t in range(length):
        row = rows[t]
        p_blank = float(row[blank_id])
        open_match = context is not None and any(context.active(h.state) for h in hyps.values())
        if p_blank > log_skip and not open_match:
            for h in hyps.values():
                total = _lse(h.pb, h.pnb)
                h.pnb = h.pnb + float(row[h.last]) if h.last >= 0 else _NEG_INF
                h.pb = total + p_blank
            continue
        masked = row.copy()
        masked[blank_id] = -np.inf
        top = np.argpartition(masked, -n_cand)[-n_cand:]
        best = masked[top].max()
        cands = top[(masked[top] >= best - prune) & (masked[top] > _NEG_INF)]
        prefixes = list(hyps.items())
        if context is not None and open_match:
            extra = [
                t for _, h in prefixes if context.active(h.state) for t in context.expected(h.state)
            ]
            cands = np.union1d(cands, np.asarray(extra, dtype=np.int64))
            cands = cands[row[cands] > _NEG_INF]
        new: dict[int, _Prefix] = {}
        # the prefixes themselves first (blank, or their last label repeated): their token
        # frames are older than any extension's
        for key, h in prefixes:
            total = _lse(h.pb, h.pnb)
            repeat = h.pnb + float(row[h.last]) if h.last >= 0 else _NEG_INF
            new[key] = _Prefix(total + p_blank, repeat, h.last, h.state, h.bonus, h.chain, h.parent)
        # a prefix whose parent is in the beam too also grows from it by its last label
        taken: list[tuple[int, int]] = []
        position = {key: i for i, (key, _) in enumerate(prefixes)}
        column = {int(c): j for j, c in enumerate(cands.tolist())}
        for key, h in prefixes:
            if h.parent is None or h.parent not in hyps:
                continue
            parent = hyps[h.parent]
            lp = float(row[h.last])
            base = parent.pb if h.last == parent.last else _lse(parent.pb, parent.pnb)
            if lp > _NEG_INF and base > _NEG_INF:
                new[key].pnb = _lse(new[key].pnb, base + lp)
            if h.last in column:
                taken.append((position[h.parent], column[h.last]))
        if cands.size:
            # every (prefix, candidate) extension ranked at once; only the best few are made
            pb = np.array([h.pb for _, h in prefixes])
            pnb = np.array([h.pnb for _, h in prefixes])
            last = np.array([h.last for _, h in prefixes])
            bases = np.where(
                cands[None, :] == last[:, None], pb[:, None], np.logaddexp(pb, pnb)[:, None]
            )
            acoustic = bases + row[cands][None, :]
            ranked = acoustic + np.array([h.bonus for _, h in prefixes])[:, None]
            if context is not None:
                ranked = ranked + np.stack([context.deltas(h.state)[cands] for _, h in prefixes])
            if taken:  # already added above
                rows_taken, cols_taken = zip(*taken, strict=True)
                ranked[list(rows_taken), list(cols_taken)] = _NEG_INF
            chosen = _best_cells(ranked, beam)
            if context is not None:
                # and the best by committed bonus alone (see ``_prune``)
                committed = (
                    acoustic
                    + np.array([h.bonus - context.potential(h.state) for _, h in prefixes])[:, None]
                )
                committed = committed + np.stack(
                    [context.committed_deltas(h.state)[cands] for _, h in prefixes]
                )
                if taken:
                    committed[list(rows_taken), list(cols_taken)] = _NEG_INF
                chosen = np.union1d(chosen, _best_cells(committed, beam))
            width = cands.size
            for cell in chosen.tolist():
                i, j = divmod(cell, width)
                score = float(acoustic[i, j])
                if score == _NEG_INF:
                    continue
                key, h = prefixes[i]
                c = int(cands[j])
                child_key = hash((key, c))
                child = new.get(child_key)
                if child is None:
                    state, bonus = h.state, h.bonus
                    if context is not None:
                        state, delta = context.step(h.state, c)
                        bonus += delta
                    new[child_key] = _Prefix(_NEG_INF, score, c, state, bonus, (c, t, h.chain), key)
                else:
                    child.pnb = _lse(child.pnb, score)
        hyps = new if len(new) <= beam else _prune(new, beam, context)
    best = max(
        hyps.values(),
        key=lambda h: h.score() + (0.0 if context is None else context.final(h.state)),
    )
    return unwind(best.chain)


def _prune(new: dict[int, _Prefix], beam: int, context: ContextGraph | None) -> dict[int, _Prefix]:
    """The ``beam`` best prefixes, and with keywords also the ``beam`` best by committed
    bonus alone: an open match's not-yet-earned bonus must not crowd out the prefixes that
    win when it fails (they are what the search without keywords would have kept)."""
    items = list(new.items())
    scores = np.array([h.score() for _, h in items])
    chosen = np.argpartition(scores, -beam)[-beam:]
    if context is not None:
        potential = np.array([context.potential(h.state) for _, h in items])
        if potential.any():
            committed = np.argpartition(scores - potential, -beam)[-beam:]
            chosen = np.union1d(chosen, committed)
    return dict(items[i] for i in sorted(chosen.tolist()))


def _best_cells(scores: NDArray[np.float64], count: int) -> NDArray[np.intp]:
    """Flat indices of the ``count`` largest finite cells of ``scores``."""
    flat = scores.ravel()
    flat_top = np.argpartition(flat, -count)[-count:] if flat.size > count else np.arange(flat.size)
    return flat_top[np.isfinite(flat[flat_top])]
