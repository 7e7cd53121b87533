"""Bearer-key check (``API_KEY``): constant-time, and before anything looks at the upload.

With ``API_KEY`` empty every request is accepted (any key or none: a server on a private network
needs no key). Checking the key before reading the body means a client with a wrong key gets
401, not a 400 about its audio (VoiceInk's connection test tells the two apart), and an
unauthenticated client cannot make the server decode anything. Azure-style clients send
``api-key:`` instead of a bearer token; both are accepted. The key is never logged or echoed."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from gigaam_api.api.errors import unauthorized


def supplied_key(headers: Mapping[str, str]) -> str | None:
    """The key the client sent: ``Authorization: Bearer <key>`` or ``api-key: <key>``."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    api_key = headers.get("api-key")
    if api_key and api_key.strip():
        return api_key.strip()
    return None


def check_api_key(headers: Mapping[str, str], api_key: str) -> None:
    """Raise 401 unless auth is off or the supplied key equals ``api_key``."""
    if not api_key:
        return
    key = supplied_key(headers)
    if key is None:
        raise unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <API_KEY>'."
        )
    if not hmac.compare_digest(key.encode("utf-8"), api_key.encode("utf-8")):
        raise unauthorized("Incorrect API key provided.")
