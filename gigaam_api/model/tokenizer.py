"""Tokenizers: token ids → text and timed words, for character and SentencePiece models.

Reference behaviour reproduced (upstream GigaAM's decoders and word-timestamp helper):

* **Text**: character models join their vocabulary entries; SentencePiece models use
  ``sp.decode(ids)`` (drops control pieces such as ``</s>``, turns ``▁`` into spaces).
* **Words**: a new word starts at a ``" "`` token (dropped) or a piece beginning with ``▁``
  (the mark is dropped); pieces come from the vocabulary / ``IdToPiece`` (so a control piece
  such as ``</s>`` stays inside a word's text, as in the reference); word text is stripped and
  empty words skipped; ``start = first_frame * shift``, ``end = (last_frame + 1) * shift`` with
  ``shift`` from ``decoding.make_result``.

A checkpoint's config says which kind it is; finding a SentencePiece file next to the
checkpoint is the loader's job, by the rule in ``gigaam_api/catalogue.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gigaam_api.transcript import Word

__all__ = [
    "CharTokenizer",
    "DecodingError",
    "SentencePieceTokenizer",
    "Tokenizer",
    "TokenizerError",
    "group_words",
    "load_tokenizer",
]

_WORD_MARK = "▁"  # SentencePiece's word-start marker (U+2581)


class DecodingError(ValueError):
    """Model outputs or arguments that cannot be decoded (shapes, lengths, ids out of range)."""


class TokenizerError(DecodingError):
    """A tokenizer that cannot be built (missing or unreadable file, bad vocabulary)."""


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

    def encode(self, text: str) -> list[int]:
        """The token ids SentencePiece writes ``text`` with (keywords, ``keywords.py``)."""
        return [int(i) for i in self._sp.EncodeAsIds(text)]

    @property
    def unk_id(self) -> int:
        """The id of the unknown piece: a text needing it cannot be written by the model."""
        return int(self._sp.unk_id())


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
