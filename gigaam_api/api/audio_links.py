"""Short-lived signed links to one job's audio, for players that cannot send a header.

A browser's ``<audio>`` element fetches its ``src`` itself: it cannot add
``Authorization: Bearer …``, so with ``API_KEY`` set the only way to let it stream (and seek
with ``Range``) is to put a proof of authorisation into the URL. Putting the API key itself
there would leak the one secret into URLs; instead an authenticated client asks for a link
(``POST /v1/jobs/{id}/audio/link``) and gets

    /v1/jobs/{id}/audio?expires=<unix seconds>&signature=<64 hex digits>

where ``signature = HMAC-SHA256(link_key(API_KEY), "job-audio:<id>:<expires>")``. What a link
can and cannot do follows from that message:

* it opens exactly one route for exactly one job: the job id is signed, and only the audio
  route ever reads these parameters (every other route still wants the header);
* it stops working at ``expires`` (links are minted for :data:`LINK_SECONDS`), and a link
  whose ``expires`` lies further ahead than any this server mints is refused even with a
  valid signature, so no link outlives the policy;
* it stops working when ``API_KEY`` changes (the signing key is derived from it), which is
  also the way to revoke every link at once; replicas sharing one ``API_KEY`` accept each
  other's links;
* the message cannot be re-split: ``expires`` is ASCII digits only, so the last ``:`` always
  separates it from the job id, whatever the id holds.

The signing key is ``HMAC-SHA256(API_KEY, label)``, not the API key itself, so a signature can
never be confused with a use of the key in any other HMAC. Parsing is strict (exactly one
``expires`` of at most 12 ASCII digits, exactly one lowercase 64-digit hex ``signature``)
and the comparison is constant-time. Everything here is pure: the caller passes the time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

#: Lifetime of a minted link, in seconds. Long enough to listen to a good part of a recording
#: without a renewal, short enough that a link copied out of the page soon opens nothing.
LINK_SECONDS = 3600
#: How far replicas' clocks may disagree: a link minted by a replica a little ahead is still
#: accepted by one a little behind.
CLOCK_SLACK_S = 300
#: Query parameters of a signed link.
EXPIRES = "expires"
SIGNATURE = "signature"

_KEY_LABEL = b"gigaam-api/job-audio-link/v1"
_EXPIRES_RE = re.compile(r"[0-9]{1,12}")  # ASCII only (not \d), no sign, no spaces, no "1_0"
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class SignedLink:
    """The two query parameters of a link: ``expires`` (unix seconds) and its ``signature``."""

    expires: int
    signature: str

    def query(self) -> str:
        return f"{EXPIRES}={self.expires}&{SIGNATURE}={self.signature}"


class LinkRejected(Exception):
    """A link that opens nothing; ``reason``: ``malformed``, ``invalid`` or ``expired``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def link_key(api_key: str) -> bytes:
    """The key links are signed with, derived from ``API_KEY`` (changes with it)."""
    return hmac.new(api_key.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()


def signature(key: bytes, job_id: str, expires: int) -> str:
    """The hex HMAC of ``job-audio:<job_id>:<expires>`` under ``key``."""
    message = f"job-audio:{job_id}:{expires}".encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(api_key: str, job_id: str, *, now: float, lifetime: int = LINK_SECONDS) -> SignedLink:
    """A link to ``job_id``'s audio that works until ``now + lifetime``."""
    expires = int(now) + lifetime
    return SignedLink(expires, signature(link_key(api_key), job_id, expires))


def _single(values: Sequence[str]) -> str:
    if len(values) != 1:
        raise LinkRejected("malformed")  # absent, or repeated (which one would count?)
    return values[0]


def verify(
    api_key: str,
    job_id: str,
    expires_values: Sequence[str],
    signature_values: Sequence[str],
    *,
    now: float,
    lifetime: int = LINK_SECONDS,
) -> None:
    """Return if the query parameters are a valid, unexpired link to ``job_id``; else raise
    :class:`LinkRejected`. The values are every occurrence of each parameter in the query."""
    raw_expires = _single(expires_values)
    raw_signature = _single(signature_values)
    if not _EXPIRES_RE.fullmatch(raw_expires) or not _SIGNATURE_RE.fullmatch(raw_signature):
        raise LinkRejected("malformed")
    expires = int(raw_expires)
    expected = signature(link_key(api_key), job_id, expires)
    if not hmac.compare_digest(expected.encode("ascii"), raw_signature.encode("ascii")):
        raise LinkRejected("invalid")
    if expires > now + lifetime + CLOCK_SLACK_S:
        raise LinkRejected("invalid")  # signed, but longer-lived than this server ever mints
    if now >= expires:
        raise LinkRejected("expired")
