"""The ``keywords`` form field → the phrases a request asks the decoder to favour (pure).

OpenAI's ``keywords`` (openai-python ≥ 2.50) is a list of phrases; the SDKs send one
``keywords[]`` part per phrase. Hand-written clients send the bare name, repeated, or one
field holding a JSON list (``keywords=["Сбербанк", "ВТБ"]``) or a comma/line separated list
(the page's field, curl). All of them are read here, then through the one keyword syntax
(``keyword_list.py``: ``phrase`` or ``phrase:boost``, the limits), so a list means the same
thing in a request, a job, the CLI and the ``KEYWORDS`` setting. What cannot be read is a 400
naming ``keywords``; whether the model can write each phrase is checked when the request is
admitted to the model (``service/keywords.py``), before any audio is decoded.
"""

from __future__ import annotations

import json
from typing import Final

from gigaam_api.api.fields import Fields, invalid, values
from gigaam_api.config import Settings
from gigaam_api.keyword_list import KeywordListError, KeywordSpec, parse_entries

#: The parameter errors name (as OpenAI's spec names the field).
KEYWORDS_PARAM: Final = "keywords"


def parse_keywords(fields: Fields, settings: Settings) -> tuple[KeywordSpec, ...]:
    """The request's keywords, in order (``()`` when none were given)."""
    entries: list[str] = []
    for value in values(fields, KEYWORDS_PARAM):
        if value.lstrip().startswith("["):
            entries.extend(_json_list(value))
        else:
            entries.append(value)
    try:
        return tuple(parse_entries(entries, max_boost=settings.keywords_max_boost))
    except KeywordListError as exc:
        raise invalid(exc.message, KEYWORDS_PARAM) from None


def _json_list(text: str) -> list[str]:
    """A field that is a JSON list of strings (a phrase may then hold no comma of its own:
    every way of writing a list splits at commas alike)."""
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
        raise invalid(
            "keywords must be phrases: repeated keywords[] fields, a comma-separated list or "
            'a JSON list of strings (["phrase", "phrase:2"])',
            KEYWORDS_PARAM,
        )
    return parsed
