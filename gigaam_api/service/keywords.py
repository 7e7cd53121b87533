"""Keywords in the core: a request's phrases with the server's, compiled once per request.

Every door reads a keyword list with the one syntax (``keyword_list.py``) into (phrase, boost)
pairs; here they become the model's :class:`~gigaam_api.model.keywords.Keyword` values
(:func:`keywords_of`), the server-wide ``KEYWORDS`` is merged in (:func:`merged`: a request
may re-boost a server phrase), and the list is compiled into the model's context graph
(:func:`compile_for`) — once per request, before any audio is decoded, so a phrase the model
cannot write is the client's 400 naming it (``param="keywords"``) rather than a failure after
minutes of work. The graph then travels with every batch of the request
(``model_service.Decoding``), so requests with different keywords still share model calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gigaam_api.keyword_list import KeywordSpec
from gigaam_api.model import AsrModel
from gigaam_api.model.keywords import ContextGraph, Keyword, KeywordError
from gigaam_api.service.errors import invalid_keyword

__all__ = ["ContextGraph", "Keyword", "compile_for", "keywords_of", "merged", "specs_of"]


def keywords_of(specs: Iterable[KeywordSpec]) -> tuple[Keyword, ...]:
    """(phrase, boost) pairs as the doors read them → the model's keywords."""
    return tuple(Keyword(phrase, boost) for phrase, boost in specs)


def specs_of(keywords: Iterable[Keyword]) -> tuple[KeywordSpec, ...]:
    """The other way: what a durable job stores (``JobOptions.keywords``)."""
    return tuple((keyword.phrase, keyword.boost) for keyword in keywords)


def merged(server: Sequence[Keyword], request: Sequence[Keyword]) -> tuple[Keyword, ...]:
    """The server's keywords, then the request's; a phrase in both (whatever its case) is
    kept once, where the server put it, with the request's boost if it names one."""
    found: dict[str, Keyword] = {}
    for keyword in (*server, *request):
        key = keyword.phrase.casefold()
        first = found.get(key)
        if first is None:
            found[key] = keyword
        elif keyword.boost is not None:
            found[key] = Keyword(first.phrase, keyword.boost)
    return tuple(found.values())


def compile_for(
    model: AsrModel,
    server: Sequence[Keyword],
    request: Sequence[Keyword],
    default_boost: float,
) -> ContextGraph | None:
    """The context graph of ``server`` + ``request`` (``None`` when both are empty: plain
    greedy decoding), or a :class:`~gigaam_api.service.errors.ServiceError` naming the phrase
    the model cannot write. The model caches graphs, so compiling the same list again (the
    session after the door's check at admission) costs nothing."""
    keywords = merged(server, request)
    if not keywords:
        return None
    try:
        return model.compile_keywords(keywords, default_boost)
    except KeywordError as exc:
        raise invalid_keyword(exc) from None
