"""Greedy CTC / RNN-T decoding into timed results, exactly as the reference.

Everything here is pure numpy + Python over model outputs, so it is tested without ONNX
Runtime: CTC from stored log-probs, RNN-T from a step function (see ``RnntStep``) that the
engine backs with an ONNX session and the tests back with a numpy predictor + joint.

Reference behaviour reproduced (upstream GigaAM's greedy decoders and word-timestamp helper):

* **CTC greedy**: frame-wise argmax; a token is emitted at frame ``t < length`` when it is not
  blank and differs from the argmax at ``t - 1``. Its frame is ``t`` (the first frame of the run).
* **RNN-T greedy**: per frame, up to ``max_symbols`` (10) predictor + joint evaluations; the
  search starts from the blank label (whose embedding row is zero, the reference's "no label
  yet") and a zero LSTM state; label and state change only when a non-blank token is emitted;
  a blank, or the 10th symbol at a frame, moves on to the next frame. Upstream's ONNX decoder caps
  at 3 symbols and really decodes differently; we follow the torch path.
* **Text and words**: the tokenizer's (``tokenizer.py``); a token's time is its frame times
  ``shift = n_samples / 16000 / encoded_len``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from gigaam_api.constants import SAMPLE_RATE
from gigaam_api.model.tokenizer import DecodingError, Tokenizer
from gigaam_api.transcript import Word

__all__ = [
    "DecodingError",
    "Hypothesis",
    "Result",
    "RnntStep",
    "StepOutput",
    "TokenChain",
    "ctc_greedy",
    "make_result",
    "rnnt_greedy",
    "unwind",
]


#: One decoded item: token ids and the encoder frame at which each was emitted.
Hypothesis = tuple[list[int], list[int]]
#: A beam search's emitted tokens as a linked chain, newest first: (token, frame, previous
#: link). Hypotheses with a common start share its links, so extending one copies nothing.
TokenChain = tuple[int, int, Any] | None
#: What one RNN-T step returns: log-probs [n, C] and the new LSTM state ``h``, ``c``.
StepOutput = tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]


@dataclass(frozen=True)
class Result:
    """One decoded wave; word times are seconds relative to the wave's start."""

    text: str
    token_ids: list[int]
    token_frames: list[int]
    words: list[Word]
    frame_shift: float


def make_result(
    ids: Sequence[int] | NDArray[np.integer[Any]],
    frames: Sequence[int] | NDArray[np.integer[Any]],
    tokenizer: Tokenizer,
    n_samples: int,
    encoded_len: int,
) -> Result:
    """Text, words and frame shift for one decoded wave.

    ``frame_shift = n_samples / 16000 / encoded_len`` (about 0.04 s, deliberately not exactly:
    that is the reference's definition). An empty encoding (``encoded_len == 0``, a wave
    shorter than one STFT window) has no tokens and frame shift 0.0.
    """
    if len(ids) != len(frames):
        raise DecodingError(f"{len(ids)} tokens but {len(frames)} token frames")
    if encoded_len < 0 or n_samples < 0:
        raise DecodingError("n_samples and encoded_len must not be negative")
    if encoded_len == 0 and len(ids):
        raise DecodingError("tokens cannot come from an empty encoding")
    frame_shift = n_samples / SAMPLE_RATE / encoded_len if encoded_len else 0.0
    token_ids = [int(i) for i in ids]
    token_frames = [int(f) for f in frames]
    return Result(
        text=tokenizer.decode(token_ids),
        token_ids=token_ids,
        token_frames=token_frames,
        words=tokenizer.words(token_ids, token_frames, frame_shift),
        frame_shift=frame_shift,
    )


# --------------------------------------------------------------------------- CTC


def ctc_greedy(
    log_probs_or_argmax: NDArray[Any],
    lengths: NDArray[np.integer[Any]] | Sequence[int],
    blank_id: int,
) -> list[Hypothesis]:
    """Greedy CTC over a batch: ``[B, T, C]`` scores (any monotone of the probabilities: logits,
    log-probs) or an already computed ``[B, T]`` integer argmax. Returns (ids, frames) per item.
    """
    scores = np.asarray(log_probs_or_argmax)
    if scores.ndim == 3:
        if not 0 <= blank_id < scores.shape[2]:
            raise DecodingError(f"blank id {blank_id} is not one of the {scores.shape[2]} classes")
        labels = scores.argmax(axis=2)
    elif scores.ndim == 2 and np.issubdtype(scores.dtype, np.integer):
        labels = scores
    else:
        raise DecodingError(
            f"expected [B, T, C] scores or a [B, T] integer argmax, got {scores.dtype} "
            f"{scores.shape}"
        )
    batch, n_frames = labels.shape
    valid = _check_lengths(lengths, batch, n_frames)
    emit = labels != blank_id
    emit[:, 1:] &= labels[:, 1:] != labels[:, :-1]
    emit &= np.arange(n_frames)[None, :] < valid[:, None]
    out: list[Hypothesis] = []
    for b in range(batch):
        frames = np.flatnonzero(emit[b])
        out.append((labels[b, frames].tolist(), frames.tolist()))
    return out


# --------------------------------------------------------------------------- RNN-T


class RnntStep(Protocol):
    """One batched predictor + joint evaluation.

    ``labels`` int64 [n] is each row's last emitted token (blank = none yet, zero embedding);
    ``h``, ``c`` float32 [1, n, H] its LSTM state; ``enc`` float32 [n, J] its current encoder
    frame already projected by the joint's encoder linear. Returns log-probs (or any scores with
    the same argmax) [n, C] and the new state, which the caller adopts only for rows that emit.
    The arguments may be views of the decoder's own arrays: a step must not modify them.
    """

    def __call__(
        self,
        labels: NDArray[np.int64],
        h: NDArray[np.float32],
        c: NDArray[np.float32],
        enc: NDArray[np.float32],
    ) -> StepOutput: ...


def rnnt_greedy(
    enc_proj: NDArray[np.float32],
    lengths: NDArray[np.integer[Any]] | Sequence[int],
    step: RnntStep | Callable[..., StepOutput],
    blank_id: int,
    max_symbols: int = 10,
    *,
    hidden_size: int | None = None,
) -> list[Hypothesis]:
    """Batched greedy RNN-T search, token for token the reference's per-sample torch loop.

    Every row advances on its own clock (its own frame ``t`` and symbol count), so each call of
    ``step`` serves all rows still decoding, whatever frame they are at: the number of calls is
    the longest row's ``frames + tokens`` rather than a per-frame maximum summed over frames.
    Only unfinished rows are passed to ``step``.

    ``hidden_size`` is the LSTM state size H; when omitted it is read from ``step.hidden_size``.
    """
    enc = np.asarray(enc_proj)
    if enc.ndim != 3:
        raise DecodingError(f"enc_proj must be [B, T, J], got shape {enc.shape}")
    if max_symbols < 1:
        raise DecodingError(f"max_symbols must be at least 1, got {max_symbols}")
    if hidden_size is None:
        hidden_size = getattr(step, "hidden_size", None)
        if not isinstance(hidden_size, int):
            raise DecodingError("pass hidden_size (the LSTM state size) or give step .hidden_size")
    batch, n_frames, _ = enc.shape
    valid = _check_lengths(lengths, batch, n_frames)
    if batch == 1:
        return [_rnnt_greedy_one(enc[0], int(valid[0]), step, blank_id, max_symbols, hidden_size)]

    ids: list[list[int]] = [[] for _ in range(batch)]
    frames: list[list[int]] = [[] for _ in range(batch)]
    # State of the rows still decoding only, compacted whenever rows finish (at most B times),
    # so each step needs no gather of labels / state and one gather of encoder frames.
    rows = np.flatnonzero(valid > 0)  # batch index of each live row
    ends = valid[rows]
    t = np.zeros(rows.size, dtype=np.int64)  # each row's current encoder frame
    emitted_here = np.zeros(rows.size, dtype=np.int64)  # symbols it emitted at that frame
    labels = np.full(rows.size, blank_id, dtype=np.int64)
    h = np.zeros((1, rows.size, hidden_size), dtype=np.float32)
    c = np.zeros((1, rows.size, hidden_size), dtype=np.float32)
    while rows.size:
        scores, h_new, c_new = step(labels, h, c, enc[rows, t])
        scores = np.asarray(scores)
        if scores.ndim < 2 or scores.shape[0] != rows.size or scores.shape[-1] <= blank_id:
            raise DecodingError(
                f"step returned scores of shape {scores.shape} for {rows.size} rows "
                f"(blank id {blank_id})"
            )
        best = scores.reshape(rows.size, -1).argmax(axis=1)
        emits = best != blank_id
        if emits.any():
            labels = np.where(emits, best, labels)
            keep_new = emits[None, :, None]
            h = np.where(keep_new, h_new, h)
            c = np.where(keep_new, c_new, c)
            emitted_here += emits
            where = np.flatnonzero(emits)
            for row, token, frame in zip(
                rows[where].tolist(), best[where].tolist(), t[where].tolist(), strict=True
            ):
                ids[row].append(token)
                frames[row].append(frame)
            # A blank, or the max_symbols-th symbol at a frame, moves a row to its next frame.
            advancing = ~emits | (emitted_here >= max_symbols)
        else:
            advancing = ~emits
        t += advancing
        emitted_here[advancing] = 0
        finished = t >= ends
        if finished.any():
            live = ~finished
            rows, ends, t, emitted_here, labels = (
                rows[live],
                ends[live],
                t[live],
                emitted_here[live],
                labels[live],
            )
            h, c = h[:, live], c[:, live]
    return list(zip(ids, frames, strict=True))


def _rnnt_greedy_one(
    enc: NDArray[np.float32],
    length: int,
    step: RnntStep | Callable[..., StepOutput],
    blank_id: int,
    max_symbols: int,
    hidden_size: int,
) -> Hypothesis:
    """The same search for a single row with scalar bookkeeping.

    A lone chunk is the common case for short requests; without the batch's index gathers and
    scatters the loop costs a few microseconds per step instead of tens.
    """
    label = np.full(1, blank_id, dtype=np.int64)
    h = np.zeros((1, 1, hidden_size), dtype=np.float32)
    c = np.zeros((1, 1, hidden_size), dtype=np.float32)
    ids: list[int] = []
    frames: list[int] = []
    t = emitted_here = 0
    while t < length:
        scores, h_new, c_new = step(label, h, c, enc[t : t + 1])
        scores = np.asarray(scores)
        if scores.ndim == 0 or scores.shape[0] != 1 or scores.shape[-1] <= blank_id:
            raise DecodingError(
                f"step returned scores of shape {scores.shape} for 1 row (blank id {blank_id})"
            )
        token = int(scores.argmax())
        if token == blank_id:
            t += 1
            emitted_here = 0
            continue
        ids.append(token)
        frames.append(t)
        label = np.full(1, token, dtype=np.int64)
        # copies: a step may hand out buffers it reuses on its next call
        h, c = np.array(h_new, dtype=np.float32), np.array(c_new, dtype=np.float32)
        emitted_here += 1
        if emitted_here == max_symbols:
            t += 1
            emitted_here = 0
    return ids, frames


def _check_lengths(
    lengths: NDArray[np.integer[Any]] | Sequence[int], batch: int, n_frames: int
) -> NDArray[np.int64]:
    """Lengths as int64 [B], each within [0, T], or a ``DecodingError``."""
    array = np.asarray(lengths)
    if array.shape != (batch,) or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise DecodingError(f"lengths must be {batch} integers, got {array.dtype} {array.shape}")
    valid = array.astype(np.int64)
    if valid.size and (valid.min() < 0 or valid.max() > n_frames):
        raise DecodingError(f"lengths {valid.tolist()} must lie within [0, {n_frames}]")
    return valid


def unwind(chain: TokenChain) -> Hypothesis:
    """A beam search's winning :data:`TokenChain` as a :data:`Hypothesis`, oldest token first."""
    ids: list[int] = []
    frames: list[int] = []
    link = chain
    while link is not None:
        ids.append(link[0])
        frames.append(link[1])
        link = link[2]
    ids.reverse()
    frames.reverse()
    return ids, frames
