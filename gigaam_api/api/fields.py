"""Reading form fields as real clients send them: the lenient rules every parameter module shares.

``docs/api.md``, "Request fields": a field may come under its bare name or with ``[]``
appended (the SDKs' array form), booleans as ``True``/``true``/``1``, numbers as ``0``,
``0.0`` or ``1e-05``, and an empty string means "not given". Each parameter module
(``api/params.py``, ``api/speaker_params.py``, ``api/keyword_params.py``) reads its fields
through these, so a client's spelling is accepted the same way everywhere, and a value that
cannot be read is a 400 naming the field.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Final

from gigaam_api.api.errors import ApiError, bad_request

#: The form fields of a request: every value each name was sent with, in order.
Fields = Mapping[str, Sequence[str]]

_TRUE: Final = {"true", "1", "yes", "on"}
_FALSE: Final = {"false", "0", "no", "off", ""}
#: Digits a whole number may have (int() of a huge string is slow, then fails).
_MAX_INT_CHARS: Final = 24


def values(fields: Fields, name: str) -> list[str]:
    """Every value of ``name``, under the bare name and the ``name[]`` array form."""
    return [*fields.get(name, ()), *fields.get(f"{name}[]", ())]


def last(fields: Fields, name: str) -> str | None:
    """The last value of ``name`` (trimmed), ``None`` when it was not sent."""
    found = values(fields, name)
    return found[-1].strip() if found else None


def given(found: Sequence[str]) -> bool:
    """Whether a list field holds anything: the SDKs leave empty lists out, and a lone empty
    part means "not given", like any field."""
    return any(v.strip() for v in found)


def invalid(message: str, param: str, code: str = "invalid_value") -> ApiError:
    """The 400 for a field that was given a value it cannot take."""
    return bad_request(message, param=param, code=code)


def parse_bool(value: str | None, param: str) -> bool:
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise invalid(f"Invalid value for '{param}': {value!r} (expected true or false)", param)


def parse_optional_bool(value: str | None, param: str) -> bool | None:
    """Like :func:`parse_bool`, but "not given" (absent or empty) is ``None``."""
    if value is None or value.strip() == "":
        return None
    return parse_bool(value, param)


def parse_float(value: str | None, param: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise invalid(f"Invalid value for '{param}': {value!r} (expected a number)", param)
    return number


def parse_int(value: str, param: str, what: str) -> int:
    """A whole number as clients write it: ``3``, or ``3.0`` (Python's ``str`` of a float)."""
    text = value.strip()
    number = math.nan
    if len(text) <= _MAX_INT_CHARS:
        with contextlib.suppress(ValueError):
            number = float(text)
    if not math.isfinite(number) or not number.is_integer():
        raise invalid(f"Invalid value for '{param}': {value[:40]!r} (expected {what})", param)
    return int(number)
