"""Bearer-key check (``API_KEY``): constant-time, and before anything looks at the upload.

With ``API_KEY`` empty every request is accepted (any key or none: a server on a private network
needs no key). Checking the key before reading the body means a client with a wrong key gets
401, not a 400 about its audio (VoiceInk's connection test tells the two apart), and an
unauthenticated client cannot make the server decode anything. Azure-style clients send
``api-key:`` instead of a bearer token; both are accepted. The key is never logged or echoed.

One route also takes a second proof: a job's audio (``GET /v1/jobs/{id}/audio``) opens with a
short-lived signed link (:mod:`gigaam_api.api.audio_links`), because a browser's player cannot
send a header. A request that sends a key is judged by the key alone; the link's parameters
are looked at only when no key is sent, and a refused link is a 401 that never echoes them."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence

from gigaam_api.api import audio_links
from gigaam_api.api.errors import ApiError, unauthorized


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


_LINK_REFUSALS = {
    "malformed": ("This audio link is malformed.", "invalid_signature"),
    "invalid": ("This audio link is not valid.", "invalid_signature"),
    "expired": ("This audio link has expired; ask for a new one.", "signature_expired"),
}


def link_refused(reason: str) -> ApiError:
    """401 for a signed audio link that opens nothing (the page then asks for a new link)."""
    message, code = _LINK_REFUSALS[reason]
    return ApiError(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})


def check_audio_access(
    headers: Mapping[str, str],
    query: Mapping[str, Sequence[str]],
    api_key: str,
    job_id: str,
    *,
    now: float,
    lifetime: int,
) -> None:
    """Raise 401 unless auth is off, the key is right, or ``query`` holds a valid link to
    ``job_id``'s audio. ``query`` maps each parameter to all of its values."""
    if not api_key:
        return
    names = (audio_links.EXPIRES, audio_links.SIGNATURE)
    if supplied_key(headers) is not None or not any(query.get(name) for name in names):
        check_api_key(headers, api_key)
        return
    try:
        audio_links.verify(
            api_key,
            job_id,
            query.get(audio_links.EXPIRES, ()),
            query.get(audio_links.SIGNATURE, ()),
            now=now,
            lifetime=lifetime,
        )
    except audio_links.LinkRejected as exc:
        raise link_refused(exc.reason) from None
