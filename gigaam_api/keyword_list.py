"""Keywords as people write them: one syntax and one set of limits for every way in.

A request's ``keywords[]`` (HTTP, jobs, the page), ``--keyword`` in the CLI and the server-wide
``KEYWORDS`` setting are all read here, so a list that works in one place works in every
other, and is refused everywhere with the same words:

* entries are separated by commas or line breaks (a list may be sent as one field);
* an entry is a phrase, optionally followed by ``:`` and its boost (``Сбербанк:3``, ``ВТБ: 1.5``):
  how strongly the decoder favours it, instead of the server's default (``KEYWORDS_BOOST``);
* a phrase is trimmed, its inner spaces collapsed and its letters NFC-composed here; whether
  the model can write it (its alphabet or tokens, case, ``ё``) is the model's to decide when
  the list is compiled (``model/keywords.py``), which names the phrase it cannot write;
* at most :data:`MAX_KEYWORDS` phrases of at most :data:`MAX_KEYWORD_CHARS` characters each,
  and a boost above 0 and at most the server's maximum (``KEYWORDS_MAX_BOOST``): a boost that
  is too strong makes the decoder write the phrase where it was not said.

Pure, and below everything: the settings (``config.py``) read ``KEYWORDS`` with it too.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from typing import Final

#: Phrases one list may hold (a request's; the server's ``KEYWORDS`` is a list of its own).
MAX_KEYWORDS: Final = 100
#: Characters of one phrase, after trimming (the boost suffix not counted).
MAX_KEYWORD_CHARS: Final = 64
#: The largest ``KEYWORDS_MAX_BOOST`` (and so any boost) a server may be set to.
BOOST_CEILING: Final = 100.0
#: What separates entries of a list.
_SEPARATORS: Final = re.compile(r"[,\n\r]+")
#: Longest boost text read as a number (``float`` of a huge string is slow, then fails).
_MAX_BOOST_CHARS: Final = 24

#: A phrase and its boost (``None``: the server's default), as written.
KeywordSpec = tuple[str, float | None]


class KeywordListError(ValueError):
    """A keyword list that cannot be read; the message names the entry (never the whole list)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def split_entries(values: Iterable[str]) -> list[str]:
    """The entries of a list given as any number of values, each of which may itself hold
    several entries separated by commas or line breaks; empty entries are dropped."""
    return [e.strip() for value in values for e in _SEPARATORS.split(value) if e.strip()]


def parse_entry(entry: str, *, max_boost: float | None = None) -> KeywordSpec:
    """``phrase`` or ``phrase:boost`` → (phrase, boost); :class:`KeywordListError` otherwise.

    The boost is the text after the last ``:``; it must be a number (``.`` as the decimal
    point) above 0 and, when ``max_boost`` is given, at most that.
    """
    text, colon, boost_text = entry.rpartition(":")
    if not colon:
        text, boost_text = entry, ""
    phrase = _phrase(text, entry)
    if not colon:
        return phrase, None
    return phrase, _boost(boost_text, phrase, max_boost)


def parse_entries(values: Iterable[str], *, max_boost: float | None = None) -> list[KeywordSpec]:
    """A whole list (see :func:`split_entries`) → phrases with their boosts, in order.

    A phrase given twice (whatever its case) is kept once, where it first stood, with the
    last boost it was given. More than :data:`MAX_KEYWORDS` phrases is an error.
    """
    found: dict[str, KeywordSpec] = {}
    for entry in split_entries(values):
        phrase, boost = parse_entry(entry, max_boost=max_boost)
        first, first_boost = found.get(phrase.casefold(), (phrase, None))
        found[phrase.casefold()] = (first, first_boost if boost is None else boost)
        if len(found) > MAX_KEYWORDS:
            raise KeywordListError(f"At most {MAX_KEYWORDS} keywords may be given")
    return list(found.values())


def format_entry(phrase: str, boost: float | None) -> str:
    """The entry that :func:`parse_entry` reads back as (phrase, boost)."""
    return phrase if boost is None else f"{phrase}:{boost:g}"


def _phrase(text: str, entry: str) -> str:
    phrase = " ".join(unicodedata.normalize("NFC", text).split())
    shown = entry.strip()[: MAX_KEYWORD_CHARS + 8]
    if not phrase:
        raise KeywordListError(f"Keyword {shown!r} has no phrase before its boost")
    if len(phrase) > MAX_KEYWORD_CHARS:
        raise KeywordListError(f"Keyword {shown!r}… is longer than {MAX_KEYWORD_CHARS} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in phrase):
        raise KeywordListError(f"Keyword {shown!r} contains a control or unassigned character")
    return phrase


def _boost(text: str, phrase: str, max_boost: float | None) -> float:
    stripped = text.strip()
    number = math.nan
    if len(stripped) <= _MAX_BOOST_CHARS:
        try:
            number = float(stripped)
        except ValueError:
            number = math.nan
    if not math.isfinite(number):
        raise KeywordListError(
            f"Keyword {phrase!r}: the boost after ':' must be a number (like {phrase}:2.5), "
            f"not {stripped[:_MAX_BOOST_CHARS]!r}"
        )
    if number <= 0:
        raise KeywordListError(f"Keyword {phrase!r}: the boost must be above 0, got {number:g}")
    if max_boost is not None and number > max_boost:
        raise KeywordListError(
            f"Keyword {phrase!r}: the boost {number:g} is above this server's maximum "
            f"{max_boost:g} (KEYWORDS_MAX_BOOST); a boost that strong writes the phrase where "
            "it was not said"
        )
    return number
