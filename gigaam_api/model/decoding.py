"""Greedy CTC / RNN-T decoding, tokenizers and word timestamps, exactly as the reference.

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
* **Text**: character models join their vocabulary entries; SentencePiece models use
  ``sp.decode(ids)`` (drops control pieces such as ``</s>``, turns ``▁`` into spaces).
* **Words**: a new word starts at a ``" "`` token (dropped) or a piece beginning with ``▁``
  (the mark is dropped); pieces come from the vocabulary / ``IdToPiece`` (so a control piece
  such as ``</s>`` stays inside a word's text, as in the reference); word text is stripped and
  empty words skipped; ``start = first_frame * shift``, ``end = (last_frame + 1) * shift`` with
  ``shift = n_samples / 16000 / encoded_len``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from gigaam_api.constants import SAMPLE_RATE
from gigaam_api.transcript import Word

__all__ = [
    "CharTokenizer",
    "DecodingError",
    "Hypothesis",
    "Result",
    "RnntStep",
    "SentencePieceTokenizer",
    "Tokenizer",
    "TokenizerError",
    "ctc_greedy",
    "group_words",
    "load_tokenizer",
    "make_result",
    "rnnt_greedy",
]

_WORD_MARK = "▁"  # SentencePiece's word-start marker (U+2581)

#: One decoded item: token ids and the encoder frame at which each was emitted.
Hypothesis = tuple[list[int], list[int]]


class DecodingError(ValueError):
    """Model outputs or arguments that cannot be decoded (shapes, lengths, ids out of range)."""


class TokenizerError(DecodingError):
    """A tokenizer that cannot be built (missing or unreadable file, bad vocabulary)."""


@dataclass(frozen=True)
class Result:
    """One decoded wave; word times are seconds relative to the wave's start."""

    text: str
    token_ids: list[int]
    token_frames: list[int]
    words: list[Word]
    frame_shift: float


# --------------------------------------------------------------------------- tokenizers


@runtime_checkable
class Tokenizer(Protocol):
    """What decoding needs from a vocabulary: the blank id, text, and word grouping."""

    @property
    def blank_id(self) -> int:
        """Id of the blank class: the last class, ``vocabulary size``."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """The transcript text of a token sequence."""
        ...

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """Each token's surface piece, as the reference's word grouping sees it."""
        ...

    def words(self, ids: Sequence[int], frames: Sequence[int], frame_shift: float) -> list[Word]:
        """Words with times (seconds) from tokens and their encoder frames."""
        ...


class CharTokenizer:
    """Character vocabulary of v3_ctc / v3_rnnt: 33 symbols (space, а…я), blank = 33."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        if isinstance(vocabulary, str) or not all(isinstance(v, str) for v in vocabulary):
            raise TokenizerError("a character vocabulary must be a list of strings")
        if not vocabulary:
            raise TokenizerError("a character vocabulary must not be empty")
        self.vocabulary: tuple[str, ...] = tuple(vocabulary)

    @property
    def blank_id(self) -> int:
        return len(self.vocabulary)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        _check_ids(ids, len(self.vocabulary))
        return [self.vocabulary[i] for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.pieces(ids))

    def words(self, ids: Sequence[int], frames: Sequence[int], frame_shift: float) -> list[Word]:
        return group_words(self.pieces(ids), frames, frame_shift)


class SentencePieceTokenizer:
    """SentencePiece model of the e2e models (256 / 1024 pieces), blank = piece count."""

    def __init__(self, path: str | Path) -> None:
        import sentencepiece  # local: only e2e models pay for it

        path = Path(path)
        if not path.is_file():
            raise TokenizerError(f"SentencePiece tokenizer file not found: {path}")
        processor = sentencepiece.SentencePieceProcessor()
        try:
            processor.Load(str(path))
        except (OSError, RuntimeError) as exc:
            raise TokenizerError(f"cannot read SentencePiece tokenizer {path}: {exc}") from exc
        self.path = path
        self._sp = processor
        self._size = int(processor.GetPieceSize())
        if self._size <= 0:
            raise TokenizerError(f"SentencePiece tokenizer {path} has no pieces")

    @property
    def blank_id(self) -> int:
        return self._size

    def pieces(self, ids: Sequence[int]) -> list[str]:
        _check_ids(ids, self._size)
        return [self._sp.IdToPiece(int(i)) for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        _check_ids(ids, self._size)
        text = self._sp.Decode([int(i) for i in ids])
        return str(text)

    def words(self, ids: Sequence[int], frames: Sequence[int], frame_shift: float) -> list[Word]:
        return group_words(self.pieces(ids), frames, frame_shift)


def load_tokenizer(
    decoding_cfg: Mapping[str, Any], tokenizer_path: str | Path | None = None
) -> CharTokenizer | SentencePieceTokenizer:
    """The tokenizer a checkpoint's ``cfg["decoding"]`` describes.

    A ``vocabulary`` list means characters. Otherwise the model is SentencePiece and
    ``tokenizer_path`` must name its file (finding it next to the checkpoint is the loader's
    job: ``gigaam_api/catalogue.py`` holds that rule).
    """
    vocabulary = decoding_cfg.get("vocabulary")
    if vocabulary:
        return CharTokenizer(list(vocabulary))
    if tokenizer_path is None:
        raise TokenizerError("this model needs a SentencePiece tokenizer file: pass tokenizer_path")
    return SentencePieceTokenizer(tokenizer_path)


def _check_ids(ids: Sequence[int], size: int) -> None:
    for i in ids:
        if not 0 <= i < size:
            raise DecodingError(f"token id {i} is outside the vocabulary [0, {size})")


def group_words(pieces: Sequence[str], frames: Sequence[int], frame_shift: float) -> list[Word]:
    """Group token pieces into timed words the way the reference's ``chars_to_words`` does."""
    if len(pieces) != len(frames):
        raise DecodingError(f"{len(pieces)} tokens but {len(frames)} token frames")
    words: list[Word] = []
    chars: list[str] = []
    first = last = 0

    def commit() -> None:
        text = "".join(chars).strip()
        if text:
            words.append(Word(text=text, start=first * frame_shift, end=(last + 1) * frame_shift))
        chars.clear()

    for piece, frame in zip(pieces, frames, strict=True):
        if piece.startswith(_WORD_MARK):
            commit()
            piece = piece[len(_WORD_MARK) :]
        elif piece == " ":
            commit()
            continue
        if not chars:
            first = frame
        chars.append(piece)
        last = frame
    commit()
    return words


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
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]: ...


def rnnt_greedy(
    enc_proj: NDArray[np.float32],
    lengths: NDArray[np.integer[Any]] | Sequence[int],
    step: RnntStep | Callable[..., tuple[NDArray[Any], NDArray[Any], NDArray[Any]]],
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
    step: RnntStep | Callable[..., tuple[NDArray[Any], NDArray[Any], NDArray[Any]]],
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
