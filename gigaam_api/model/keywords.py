"""Keywords: phrases the decoder should prefer, compiled into a context graph over token ids.

A keyword is a phrase (a name, a term) and an optional boost. The beam-search decoders
(``ctc_beam.py``, ``rnnt_beam.py``) add a *bonus* to every hypothesis that contains a
keyword; this module turns the phrases into the :class:`ContextGraph` they walk.

**The graph** is an Aho-Corasick automaton over the model's token ids (a trie of the phrases'
token sequences with failure links), as icefall and sherpa-onnx build theirs, with three
differences that come from the failures seen elsewhere (``../shared/docs/release3.md`` §4):

* **One boost per phrase.** A completed phrase earns exactly its boost, however many tokens it
  has (a per-token boost makes long phrases win whatever the audio says). The boost is paid
  as the phrase is being matched, spread evenly over its boosted tokens, so a partial match
  survives pruning; the decoder's running bonus is ``committed + potential(state)``.
* **Full refund.** A partial match that is abandoned (the next token leaves the trie) or that
  is still open when the audio ends gives back everything it was paid: the potential of a
  state is simply dropped. The final bonus of a hypothesis is therefore exactly the sum of the
  boosts of the phrase occurrences it contains, which is what the exactness tests check.
* **Word-boundary tokens are matched but not boosted** (the space of a character model,
  SentencePiece's lone ``▁``, punctuation): they carry no evidence that the phrase is being
  said, and boosting them is how greedy boosting inserts spurious word breaks.

Phrases are matched as **whole words**: a character model's phrase is preceded by the space
token and the search starts as if after a space; a SentencePiece phrase starts with a piece
that carries ``▁``. A phrase earns its boost only once the word after it starts (a space, a
``▁`` piece, punctuation) or the audio ends: ``Петров`` is not credited inside ``Петрова``
(give each form you expect), and ``кот`` does not pull every ``который`` towards it.

**Normalisation** writes a phrase the way the model can emit it (``normalize_phrase``):

* character models (v1-v3 ``ctc``/``rnnt``, multilingual): lower case; ``ё`` → ``е`` when the
  vocabulary has no ``ё``; hyphens, dashes and other punctuation → a space (these models write
  none); runs of spaces collapsed. A letter or digit the vocabulary lacks is an error.
* SentencePiece (e2e) models, which write capitals and punctuation: the phrase as written,
  plus its lower-case, Title Case and Sentence case forms, each one a variant of the same
  keyword (an occurrence of any earns the one boost); punctuation at either end is dropped
  (the model places it from context), punctuation the vocabulary lacks (a hyphen) becomes a
  space. A variant that the tokenizer can only write with the
  unknown piece is dropped; a phrase with no variant left is an error.

A phrase with fewer than ``MIN_LETTERS`` (2) letters is refused: a one-letter word is found
wherever an unsure model hesitates and gets inserted again and again.

:class:`KeywordError` names the phrase and the reason; the API turns it into a 400.
"""

from __future__ import annotations

import unicodedata
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_BOOST",
    "MIN_LETTERS",
    "ContextGraph",
    "Keyword",
    "KeywordError",
    "KeywordVocabulary",
    "compile_keywords",
    "normalize_phrase",
]

#: The boost (in natural-log units of probability) a keyword without its own boost gets: a
#: completed phrase may beat an alternative the model found up to about e^4 ≈ 55 times more
#: likely. Too strong a boost inserts the phrase where it was not said (docs/keywords.md).
DEFAULT_BOOST: Final = 4.0

#: Letters (or digits) a phrase needs at least: a one-letter word (a preposition) is matched
#: everywhere an unsure model hesitates, and boosting it inserts it again and again.
MIN_LETTERS: Final = 2

_WORD_MARK: Final = "▁"
_DASHES: Final = "-‐‑‒–—―"
#: Characters trimmed from both ends of a phrase for a model that writes punctuation.
_EDGE_PUNCTUATION: Final = ".,!?:;…\"'«»„“”()[]" + _DASHES


@dataclass(frozen=True, slots=True)
class Keyword:
    """One phrase to prefer, with its own boost (``None``: the default boost)."""

    phrase: str
    boost: float | None = None


class KeywordError(ValueError):
    """A keyword the model cannot use: ``phrase`` is what was given, ``reason`` why."""

    def __init__(self, phrase: str, reason: str) -> None:
        self.phrase = phrase
        self.reason = reason
        super().__init__(f"keyword {phrase!r}: {reason}")


class _SentencePiece(Protocol):
    def encode(self, text: str) -> list[int]: ...

    @property
    def unk_id(self) -> int: ...


@dataclass(frozen=True)
class KeywordVocabulary:
    """What the graph needs to know of a model's tokens.

    ``pieces`` are the token pieces without blank; ``encoder`` is ``None`` for a character
    vocabulary (each character is a token) or the SentencePiece model of an e2e vocabulary.
    """

    pieces: tuple[str, ...]
    encoder: _SentencePiece | None = None

    @property
    def characters(self) -> bool:
        return self.encoder is None

    def boundary(self, token: int) -> bool:
        """Whether a token is a word boundary (no letter or digit): matched, never boosted."""
        return not any(ch.isalnum() for ch in self.pieces[token])

    def separator(self, token: int) -> bool:
        """Whether a token ends the word before it: a character model's space; a piece that
        starts a word (``▁…``) or has no letter or digit (punctuation) in SentencePiece."""
        piece = self.pieces[token]
        if self.encoder is None:
            return piece == " "
        return piece.startswith(_WORD_MARK) or self.boundary(token)


def normalize_phrase(phrase: str, vocabulary: KeywordVocabulary) -> list[list[int]]:
    """The token sequences (variants) that write ``phrase`` in this vocabulary.

    Raises :class:`KeywordError` when there is none (see the module doc for the rules).
    """
    text = " ".join(unicodedata.normalize("NFC", phrase).split())
    if not text:
        raise KeywordError(phrase, "the phrase is empty")
    if 0 < sum(ch.isalnum() for ch in text) < MIN_LETTERS:
        raise KeywordError(phrase, f"a phrase needs at least {MIN_LETTERS} letters")
    if vocabulary.encoder is None:
        return [_char_tokens(phrase, text, vocabulary)]
    return _piece_variants(phrase, text, vocabulary, vocabulary.encoder)


def _char_tokens(phrase: str, text: str, vocabulary: KeywordVocabulary) -> list[int]:
    index = {piece: i for i, piece in enumerate(vocabulary.pieces)}
    text = text.lower()
    if "ё" not in index:
        text = text.replace("ё", "е")
    kept = [
        ch if ch in index or ch.isalnum() else " "  # punctuation the model never writes → space
        for ch in text
    ]
    words = "".join(kept).split()
    if not words:
        raise KeywordError(phrase, "the phrase has no letters")
    written = " ".join(words)
    missing = sorted({ch for ch in written if ch not in index})
    if missing:
        shown = "".join(missing)
        raise KeywordError(phrase, f"this model cannot write the characters {shown!r}")
    space = index.get(" ")
    if space is None:
        raise KeywordError(phrase, "this model's vocabulary has no space")
    return [space, *(index[ch] for ch in written)]


def _piece_variants(
    phrase: str, text: str, vocabulary: KeywordVocabulary, encoder: _SentencePiece
) -> list[list[int]]:
    letters = {ch for piece in vocabulary.pieces for ch in piece}
    if "ё" not in letters:
        text = text.replace("ё", "е")
    if "Ё" not in letters:
        text = text.replace("Ё", "Е")
    # punctuation the vocabulary lacks (a hyphen when it has only the dash) separates words
    text = "".join(ch if ch.isalnum() or ch in letters else " " for ch in text)
    text = " ".join(text.strip(_EDGE_PUNCTUATION + " ").split())
    if not any(ch.isalnum() for ch in text):
        raise KeywordError(phrase, "the phrase has no letters")
    forms = [text, text.lower(), " ".join(w[:1].upper() + w[1:] for w in text.split())]
    forms.append(text[:1].upper() + text[1:].lower())
    variants: list[list[int]] = []
    for form in dict.fromkeys(forms):
        ids = encoder.encode(form)
        if ids and encoder.unk_id not in ids and ids not in variants:
            variants.append(ids)
    if not variants:
        raise KeywordError(phrase, "this model cannot write it (characters outside its vocabulary)")
    return variants


class ContextGraph:
    """The compiled keywords: an Aho-Corasick automaton over token ids with a bonus per step.

    States are ints; :attr:`start` is where every hypothesis begins. :meth:`step` gives the
    state after a token and the change of the hypothesis's running bonus; :meth:`final` the
    change when the audio ends. Immutable once built, so one graph is shared by every request
    that uses the same keywords (the memo of transitions only grows, and computing an entry
    twice gives the same value).

    The running bonus of a hypothesis is ``committed + potential(state)``. The potential of a
    trie node is the share of a phrase's boost its matched tokens earn (the largest over the
    phrases through it); a phrase is *committed* (its boost kept for good) only when its last
    token is followed by a word separator or the audio ends, so ``Петров`` is not credited
    inside ``Петрова``. Leaving a node any other way drops its potential: the refund.
    """

    def __init__(
        self, phrases: Sequence[tuple[Sequence[Sequence[int]], float]], vocab: KeywordVocabulary
    ) -> None:
        children: list[dict[int, int]] = [{}]
        end_boost: list[float] = [0.0]
        potential: list[float] = [0.0]
        for variants, boost in phrases:
            for tokens in variants:
                boosted = [not vocab.boundary(t) for t in tokens]
                total = sum(boosted)
                node = done = 0
                for i, token in enumerate(tokens):
                    nxt = children[node].get(token)
                    if nxt is None:
                        nxt = len(children)
                        children[node][token] = nxt
                        children.append({})
                        end_boost.append(0.0)
                        potential.append(0.0)
                    node = nxt
                    done += boosted[i]
                    potential[node] = max(potential[node], boost * done / total)
                # The same tokens from two phrases (or two variants) earn one boost, the larger.
                end_boost[node] = max(end_boost[node], boost)
        fail = [0] * len(children)
        output = list(end_boost)
        queue = deque(children[0].values())
        while queue:
            node = queue.popleft()
            for token, child in children[node].items():
                back = fail[node]
                while back and token not in children[back]:
                    back = fail[back]
                fail[child] = children[back].get(token, 0)
                # a phrase that ends here as a suffix of a longer match is found too
                output[child] = end_boost[child] + output[fail[child]]
                queue.append(child)
        self._children = children
        self._fail = fail
        self._output = output
        self._potential = potential
        self._separators = frozenset(t for t in range(len(vocab.pieces)) if vocab.separator(t))
        self._memo: dict[tuple[int, int], tuple[int, float]] = {}
        self._dense: dict[int, NDArray[np.float64]] = {}
        self._n_tokens = len(vocab.pieces)
        self._separator_mask = np.zeros(self._n_tokens, dtype=np.bool_)
        self._separator_mask[list(self._separators)] = True
        self.size = len(children)
        self.phrase_count = len(phrases)
        space = vocab.pieces.index(" ") if vocab.characters and " " in vocab.pieces else None
        #: The state every hypothesis starts in: after a space for a character model, so a
        #: phrase can match the first word.
        self.start = 0 if space is None else children[0].get(space, 0)

    def step(self, state: int, token: int) -> tuple[int, float]:
        """The state after ``token`` and the change in the running bonus (may be negative)."""
        key = (state, token)
        found = self._memo.get(key)
        if found is None:
            node = state
            while node and token not in self._children[node]:
                node = self._fail[node]
            nxt = self._children[node].get(token, 0)
            delta = self._potential[nxt] - self._potential[state]
            if token in self._separators:
                delta += self._output[state]
            found = self._memo[key] = (nxt, delta)
        return found

    def deltas(self, state: int) -> NDArray[np.float64]:
        """:meth:`step`'s bonus change for every token at once (read-only, kept per state):
        the decoders rank all their candidates with it in one numpy operation."""
        found = self._dense.get(state)
        if found is None:
            found = np.full(self._n_tokens, -self._potential[state])
            found[self._separator_mask] += self._output[state]
            node = state
            while True:  # the tokens that lead somewhere other than the root
                for token in self._children[node]:
                    found[token] = self.step(state, token)[1]
                if not node:
                    break
                node = self._fail[node]
            found.setflags(write=False)
            self._dense[state] = found
        return found

    def committed_deltas(self, state: int) -> NDArray[np.float64]:
        """The change of the *committed* bonus for every token: what a separator commits."""
        return np.where(self._separator_mask, self._output[state], 0.0)

    def final(self, state: int) -> float:
        """The change in the running bonus when the audio ends in ``state``: the phrases that
        end there are committed, an open match is refunded."""
        return self._output[state] - self._potential[state]

    def potential(self, state: int) -> float:
        """The bonus held in ``state`` that is not committed yet (refunded if the match fails)."""
        return self._potential[state]

    def active(self, state: int) -> bool:
        """Whether a match is open in ``state`` (it holds a bonus not yet committed)."""
        return self._potential[state] > 0.0

    def expected(self, state: int) -> tuple[int, ...]:
        """The tokens that continue the phrases open in ``state``."""
        return tuple(self._children[state])


def compile_keywords(
    keywords: Sequence[Keyword], default_boost: float, vocabulary: KeywordVocabulary
) -> ContextGraph:
    """The context graph of ``keywords`` for a vocabulary; :class:`KeywordError` names the
    first phrase that cannot be used (empty, unwritable, or a boost that is not a positive
    finite number)."""
    phrases: list[tuple[list[list[int]], float]] = []
    for keyword in keywords:
        boost = default_boost if keyword.boost is None else keyword.boost
        if not (boost > 0.0 and boost < float("inf")):
            raise KeywordError(keyword.phrase, f"the boost must be a positive number, got {boost}")
        phrases.append((normalize_phrase(keyword.phrase, vocabulary), float(boost)))
    return ContextGraph(phrases, vocabulary)
