"""Languages of the GigaAM models: alphabets, the decode-time restriction, detection by script.

GigaAM-Multilingual has no language token: it recognises Russian, English, Kazakh, Kyrgyz and
Uzbek with one 70-character vocabulary and picks the language from the audio (upstream says
forcing a language is planned, GigaAM issue #83). What we can do without changing the model
is what other apps do: **restrict the output to a language's alphabet**. At every decoding
step the classes whose letters lie outside the alphabet are removed before the argmax (CTC:
per frame; RNN-T: per step); blank, space, the apostrophe and pieces without letters (digits,
punctuation, SentencePiece's word mark) always stay. It does not make the model understand the
language better: it keeps a Kazakh transcript from drifting into Russian spelling, an English
one out of Cyrillic.

The alphabets, lower case, as the multilingual vocabulary writes them (it has no Uzbek ў/ҳ
and no Kazakh Latin letters, so Kazakh is Cyrillic and Uzbek is Latin here):

* ``ru`` — the Russian alphabet, 33 letters а…я and ё. ё and ъ are optional for deciding
  whether a vocabulary serves the language (v1-v3 write е for ё; a SentencePiece vocabulary
  may drop the rare ъ); when present they are allowed like every other letter.
* ``en`` — the English alphabet, 26 letters a…z.
* ``kk`` — the Kazakh Cyrillic alphabet (in official use since 1940), 42 letters: the Russian
  33 and ә ғ қ ң ө ұ ү һ і.
* ``ky`` — the Kyrgyz Cyrillic alphabet (since 1940), 36 letters: the Russian 33 and ң ө ү.
* ``uz`` — the Uzbek Latin alphabet (1995 revision), written with a…z except w: oʻ, gʻ as
  o', g' (the apostrophe is always allowed), sh/ch/ng as two letters (so c is kept).

These are the standard published alphabets of each language (the national orthographies as
summarised in Wikipedia's "Russian alphabet", "English alphabet", "Kazakh alphabets",
"Kyrgyz alphabets" and "Uzbek alphabet" articles); ``docs/models.md`` lists them too.

A model serves a language when its vocabulary can write every letter of that alphabet (the
optional ones aside): the multilingual models all five, the Russian char models ``ru``. A
SentencePiece model is judged by the letters of its pieces. :class:`LanguageError` names the
language a model cannot serve, for a 400 on ``language``.

:func:`detect_language` reads a finished text's script when no language was requested;
:func:`transcript_language` names a transcript's language the way Whisper's ``verbose_json``
does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from gigaam_api.model.spec import ModelError

__all__ = [
    "ALWAYS_ALLOWED",
    "LANGUAGES",
    "Language",
    "LanguageError",
    "allowed_classes",
    "detect_language",
    "normalize_language",
    "supported_languages",
    "transcript_language",
]

_RU: Final = frozenset("абвгдеёжзийклмнопрстуфхцчшщъыьэюя")
_LATIN: Final = frozenset("abcdefghijklmnopqrstuvwxyz")
#: Letters only Kazakh has among the five (ң ө ү are Kazakh and Kyrgyz).
_KK_ONLY: Final = frozenset("әғқұһі")
_KK_KY: Final = frozenset("ңөү")
#: Apostrophes an Uzbek text may use for oʻ/gʻ (the vocabulary has the ASCII one).
_APOSTROPHES: Final = "'ʻ’`ʼ"
#: Characters every restriction keeps: the word separator and the apostrophe.
ALWAYS_ALLOWED: Final = frozenset(" '")


@dataclass(frozen=True)
class Language:
    """One language's alphabet as a GigaAM vocabulary writes it (lower case)."""

    code: str
    name: str
    letters: frozenset[str]
    #: Letters a vocabulary may lack and still serve the language (ё for Russian).
    optional: frozenset[str] = frozenset()


#: Cyrillic letters a vocabulary may lack and still write the language: ё (v1-v3 write е)
#: and ъ (rare enough that a SentencePiece vocabulary trained with the usual character
#: coverage can drop it).
_RARE_CYRILLIC: Final = frozenset("ёъ")

LANGUAGES: Final[dict[str, Language]] = {
    "ru": Language("ru", "Russian", _RU, optional=_RARE_CYRILLIC),
    "en": Language("en", "English", _LATIN),
    "kk": Language("kk", "Kazakh", _RU | _KK_ONLY | _KK_KY, optional=_RARE_CYRILLIC),
    "ky": Language("ky", "Kyrgyz", _RU | _KK_KY, optional=_RARE_CYRILLIC),
    "uz": Language("uz", "Uzbek", _LATIN - {"w"}),
}


class LanguageError(ModelError):
    """A ``language`` the loaded model cannot serve (unknown code, or not in its vocabulary).

    ``language`` is what was asked, ``supported`` what this model offers: enough for the API
    to answer 400 naming the ``language`` parameter.
    """

    def __init__(self, language: str, supported: Sequence[str], model: str) -> None:
        self.language = language
        self.supported = tuple(supported)
        known = "" if language in LANGUAGES else " (not an ISO 639-1 code GigaAM knows)"
        offered = ", ".join(self.supported) or "none"
        super().__init__(
            f"language {language!r}{known} is not supported by {model}; it supports: {offered}"
        )


def normalize_language(language: str) -> str:
    """``" KK "`` → ``"kk"``: codes are compared in lower case without surrounding spaces."""
    return language.strip().lower()


def _letters(piece: str) -> set[str]:
    return {ch for ch in piece.lower() if ch.isalpha()}


def supported_languages(pieces: Sequence[str]) -> tuple[str, ...]:
    """The languages a vocabulary (its pieces, without blank) can write, in table order."""
    have: set[str] = set()
    for piece in pieces:
        have |= _letters(piece)
    return tuple(code for code, lang in LANGUAGES.items() if lang.letters - lang.optional <= have)


def allowed_classes(pieces: Sequence[str], language: str) -> NDArray[np.bool_]:
    """Mask over the classes (``len(pieces)`` tokens, then blank): ``True`` where a token may
    be emitted under ``language``'s alphabet. The caller checks the language is supported."""
    letters = LANGUAGES[language].letters
    mask = np.ones(len(pieces) + 1, dtype=np.bool_)
    for i, piece in enumerate(pieces):
        mask[i] = _letters(piece) <= letters
    return mask


def detect_language(text: str, candidates: Iterable[str] | None = None) -> str | None:
    """The language a transcript is written in, judged by its script alone (``None``: no
    letters, or no candidate fits).

    Cyrillic text is Kazakh when it has a letter only Kazakh uses (ә ғ қ ұ һ і), Kyrgyz when
    it has ң ө ү but none of those, else Russian. Latin text is Uzbek when it has oʻ/gʻ (any
    apostrophe) or a q not followed by u, else English. Mixed text goes by the script with more
    letters. ``candidates`` (say, a model's languages) limits the answer; a detected language
    outside them gives the first candidate of the same script, or ``None``.
    """
    lowered = text.lower()
    cyrillic = sum(1 for ch in lowered if ch in _RU or ch in _KK_ONLY or ch in _KK_KY)
    latin = sum(1 for ch in lowered if ch in _LATIN)
    if not cyrillic and not latin:
        return None
    script: tuple[str, ...]
    if cyrillic >= latin:
        letters = set(lowered)
        if letters & _KK_ONLY:
            found, script = "kk", ("kk", "ky", "ru")
        elif letters & _KK_KY:
            found, script = "ky", ("ky", "kk", "ru")
        else:
            found, script = "ru", ("ru", "kk", "ky")
    else:
        uzbek = any(f"{c}{a}" in lowered for c in "og" for a in _APOSTROPHES) or any(
            ch == "q" and lowered[i + 1 : i + 2] != "u" for i, ch in enumerate(lowered)
        )
        found, script = ("uz", ("uz", "en")) if uzbek else ("en", ("en", "uz"))
    if candidates is None:
        return found
    allowed = set(candidates)
    return next((code for code in script if code in allowed), None)


def transcript_language(requested: str | None, text: str, supported: Sequence[str]) -> str:
    """The language a transcript reports, as Whisper's ``verbose_json`` names it: the English
    name in lower case (``"russian"``, ``"kazakh"``).

    The requested language when there was one (the output was restricted to its alphabet);
    otherwise the one the text's script shows among ``supported`` (:func:`detect_language`);
    otherwise (no letters, or nothing fits) the model's first language — ``russian`` for
    every Russian model, as before languages were offered.
    """
    code = requested or detect_language(text, supported or None) or (supported or ("ru",))[0]
    return LANGUAGES[code].name.lower() if code in LANGUAGES else code
