"""RNN-T modified beam search with a keyword context graph (``keywords.py``).

Greedy RNN-T (``decoding.rnnt_greedy``) stays the default; this search runs only for a
request that gave keywords. It is the *modified* beam search of icefall and sherpa-onnx: at
most one symbol per encoder frame, so every frame costs exactly one batched step call (the
``beam`` hypotheses as its rows) whatever the hypotheses emit.

Per frame each hypothesis (its labels, the LSTM state before its last label, its score) is
stepped once; each may move to the next frame by blank (same labels, same state) or by one
label (labels + it, the state the step returned). The candidates are ranked by acoustic score
+ the context graph's running bonus; hypotheses that reach the same labels are merged (their
probabilities added, as icefall does); the ``beam`` best go on. At the end the open keyword
matches are refunded and the best hypothesis wins. With a beam wide enough to keep everything
this maximises ``log P(labels) + Σ boosts`` over the one-symbol-per-frame alignments (tested
against a brute-force enumeration).

The boost is applied once, here, on the graph; the step's scores are the model's own
log-probabilities (renormalised with ``log_softmax`` after a language restriction). sherpa-onnx
also biases the joint's logits for NeMo transducers, which counts a keyword twice.

Candidates per hypothesis are its ``beam`` best labels within ``prune`` nats of its best, plus
the labels that continue an open keyword match: a few dictionary operations each, never a loop
over the vocabulary.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from gigaam_api.model.decoding import Hypothesis, RnntStep, StepOutput, TokenChain, unwind
from gigaam_api.model.keywords import ContextGraph
from gigaam_api.model.tokenizer import DecodingError

__all__ = ["RNNT_BEAM", "rnnt_beam_search", "rnnt_beam_search_batch"]

#: Hypotheses kept per frame (icefall's and sherpa-onnx's default is 4).
RNNT_BEAM: Final = 4
#: Candidates further than this below their hypothesis's best label (nats) are not tried.
PRUNE: Final = 10.0

_NEG_INF: Final = -math.inf


class _Hyp:
    __slots__ = ("bonus", "chain", "key", "label", "row", "score", "state")

    def __init__(
        self,
        key: int,
        label: int,
        row: int,
        score: float,
        state: int,
        bonus: float,
        chain: TokenChain,
    ) -> None:
        self.key = key
        self.label = label  # the last label (blank: none yet)
        self.row = row  # where its LSTM state is in the state arrays
        self.score = score
        self.state = state
        self.bonus = bonus
        self.chain = chain


def _log_softmax(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    top = scores.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    shifted = scores - top
    with np.errstate(divide="ignore"):
        norm: NDArray[np.float64] = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted - norm


def rnnt_beam_search(
    enc_proj: NDArray[np.float32],
    length: int,
    step: RnntStep | Callable[..., StepOutput],
    blank_id: int,
    context: ContextGraph | None = None,
    *,
    beam: int = RNNT_BEAM,
    prune: float = PRUNE,
    hidden_size: int | None = None,
) -> Hypothesis:
    """The best (ids, frames) of one item's projected encoder output ``[T, J]``.

    ``step`` is the batched predictor + joint (``decoding.RnntStep``); ``prune`` = inf and a
    beam as wide as the vocabulary make the search exhaustive per frame (the exactness tests).
    """
    enc = np.asarray(enc_proj)
    if enc.ndim != 2:
        raise DecodingError(f"enc_proj must be [T, J] for one item, got shape {enc.shape}")
    (hyp,) = rnnt_beam_search_batch(
        enc[None],
        [length],
        step,
        blank_id,
        [context],
        beam=beam,
        prune=prune,
        hidden_size=hidden_size,
    )
    return hyp


def rnnt_beam_search_batch(
    enc_proj: NDArray[np.float32],
    lengths: Sequence[int] | NDArray[np.integer[Any]],
    step: RnntStep | Callable[..., StepOutput],
    blank_id: int,
    contexts: Sequence[ContextGraph | None],
    *,
    beam: int = RNNT_BEAM,
    prune: float = PRUNE,
    hidden_size: int | None = None,
) -> list[Hypothesis]:
    """The search for a batch ``[B, T, J]``, each row with its own graph, in lockstep: one
    step call per frame serves every row's hypotheses (a row drops out at its length), so a
    batch costs about what one row does."""
    enc = np.asarray(enc_proj)
    if enc.ndim != 3:
        raise DecodingError(f"enc_proj must be [B, T, J], got shape {enc.shape}")
    ends = [int(n) for n in lengths]
    if len(ends) != enc.shape[0] or len(contexts) != enc.shape[0]:
        raise DecodingError(f"{len(ends)} lengths and {len(contexts)} graphs for {enc.shape[0]}")
    if any(not 0 <= n <= enc.shape[1] for n in ends):
        raise DecodingError(f"lengths {ends} must lie within [0, {enc.shape[1]}]")
    if beam < 1:
        raise DecodingError(f"beam must be at least 1, got {beam}")
    if hidden_size is None:
        hidden_size = getattr(step, "hidden_size", None)
        if not isinstance(hidden_size, int):
            raise DecodingError("pass hidden_size (the LSTM state size) or give step .hidden_size")
    rows = [_Row(context, blank_id, hidden_size, beam, prune) for context in contexts]
    for t in range(max(ends, default=0)):
        live = [r for r in range(len(rows)) if t < ends[r]]
        inputs = [rows[r].inputs() for r in live]
        counts = [len(labels) for labels, _, _ in inputs]
        labels = np.concatenate([x[0] for x in inputs])
        h_in = np.concatenate([x[1] for x in inputs], axis=1)
        c_in = np.concatenate([x[2] for x in inputs], axis=1)
        frames = np.repeat(enc[live, t], counts, axis=0)
        scores, h_new, c_new = step(labels, h_in, c_in, frames)
        raw = np.asarray(scores, dtype=np.float64)
        n = labels.size
        if raw.ndim < 2 or raw.shape[0] != n or raw.shape[-1] <= blank_id:
            raise DecodingError(
                f"step returned scores of shape {raw.shape} for {n} rows (blank id {blank_id})"
            )
        lp = _log_softmax(raw.reshape(n, -1))
        h_out = np.asarray(h_new, dtype=np.float32)
        c_out = np.asarray(c_new, dtype=np.float32)
        offset = 0
        for r, count in zip(live, counts, strict=True):
            part = slice(offset, offset + count)
            rows[r].advance(
                t, lp[part], h_in[:, part], c_in[:, part], h_out[:, part], c_out[:, part]
            )
            offset += count
    return [row.best() for row in rows]


class _Row:
    """One item's hypotheses and their LSTM states between frames."""

    def __init__(
        self, context: ContextGraph | None, blank_id: int, hidden_size: int, beam: int, prune: float
    ) -> None:
        # no phrase: the plain search, without the graph's bookkeeping
        self.context = context if context is not None and context.phrase_count else None
        self.blank_id = blank_id
        self.beam = beam
        self.prune = prune
        start = 0 if self.context is None else self.context.start
        self.hyps = [_Hyp(0, blank_id, 0, 0.0, start, 0.0, None)]
        self.h = np.zeros((1, 1, hidden_size), dtype=np.float32)
        self.c = np.zeros((1, 1, hidden_size), dtype=np.float32)

    def inputs(self) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.float32]]:
        """Each hypothesis's last label and the state before it, for this frame's step."""
        labels = np.array([hyp.label for hyp in self.hyps], dtype=np.int64)
        where = np.array([hyp.row for hyp in self.hyps], dtype=np.int64)
        return labels, self.h[:, where], self.c[:, where]

    def advance(
        self,
        t: int,
        lp: NDArray[np.float64],
        h_in: NDArray[np.float32],
        c_in: NDArray[np.float32],
        h_new: NDArray[np.float32],
        c_new: NDArray[np.float32],
    ) -> None:
        """Move every hypothesis past frame ``t`` by blank or one label; keep the best."""
        blank_id, context, hyps = self.blank_id, self.context, self.hyps
        n = len(hyps)
        n_cand = min(self.beam, lp.shape[1] - 1)
        masked = lp.copy()
        masked[:, blank_id] = -np.inf
        top = np.argpartition(masked, -n_cand, axis=1)[:, -n_cand:]
        # the next frame's hypotheses by key; state rows < n are the old ones (a blank keeps
        # its state), rows n + i the ones the step returned for hypothesis i
        new: dict[int, _Hyp] = {}
        for i, hyp in enumerate(hyps):
            blank_score = hyp.score + float(lp[i, blank_id])
            if blank_score > _NEG_INF:
                _merge(
                    new, _Hyp(hyp.key, hyp.label, i, blank_score, hyp.state, hyp.bonus, hyp.chain)
                )
            floor = float(lp[i, top[i]].max()) - self.prune
            tried = [int(k) for k in top[i] if masked[i, k] >= floor and masked[i, k] > _NEG_INF]
            if context is not None and context.active(hyp.state):
                tried += [k for k in context.expected(hyp.state) if k not in tried]
            for k in tried:
                token_lp = float(lp[i, k])
                if token_lp == _NEG_INF or k == blank_id:
                    continue
                state, bonus = hyp.state, hyp.bonus
                if context is not None:
                    state, delta = context.step(hyp.state, k)
                    bonus += delta
                key = hash((hyp.key, k))
                _merge(
                    new, _Hyp(key, k, n + i, hyp.score + token_lp, state, bonus, (k, t, hyp.chain))
                )
        kept = _prune(list(new.values()), self.beam, context)
        if not kept:
            raise DecodingError(f"no hypothesis survives frame {t}: every class is excluded")
        self.h = np.concatenate([h_in, h_new], axis=1)
        self.c = np.concatenate([c_in, c_new], axis=1)
        self.hyps = kept

    def best(self) -> Hypothesis:
        """The best hypothesis once the audio has ended (open matches refunded)."""
        context = self.context
        best = max(
            self.hyps,
            key=lambda x: x.score + x.bonus + (0.0 if context is None else context.final(x.state)),
        )
        return unwind(best.chain)


def _merge(into: dict[int, _Hyp], hyp: _Hyp) -> None:
    """Add ``hyp`` to the next frame's set, adding its probability to an equal one's."""
    other = into.get(hyp.key)
    if other is None:
        into[hyp.key] = hyp
        return
    high, low = (other.score, hyp.score) if other.score >= hyp.score else (hyp.score, other.score)
    merged = high + math.log1p(math.exp(low - high))
    if hyp.score > other.score:  # the likelier alignment gives the labels' frames and state
        into[hyp.key] = hyp
    into[hyp.key].score = merged


def _prune(hyps: list[_Hyp], beam: int, context: ContextGraph | None) -> list[_Hyp]:
    """The ``beam`` best hypotheses, and with keywords also the ``beam`` best by committed
    bonus alone (an open match's potential must not crowd out what wins when it fails)."""
    kept = heapq.nlargest(beam, hyps, key=lambda x: x.score + x.bonus)
    if context is not None and len(hyps) > beam:
        chosen = {id(x) for x in kept}
        potential = context.potential
        for x in heapq.nlargest(beam, hyps, key=lambda x: x.score + x.bonus - potential(x.state)):
            if id(x) not in chosen:
                kept.append(x)
    return kept
