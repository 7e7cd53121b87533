"""Signed links to a job's audio: the pure signing rules, then the doors of the real server.

A link (``POST /v1/jobs/{id}/audio/link``) lets a player that cannot send the bearer key stream
one job's audio with ``Range`` for an hour. The attacks tried here: the link of job A on job B
or on a job that does not exist, on every other job route and method, expired, signed for
longer than the server mints, one digit changed, signed under another key, garbage and
repeated parameters (never a 500), a wrong key beside a good link, and the signature showing
up in the access log. With ``API_KEY`` empty nothing changes: the link is the plain path.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from gigaam_api.api import audio_links
from gigaam_api.api.audio_links import LinkRejected, link_key, sign, signature, verify
from gigaam_api.server import create_app
from tests.api_server import real_model_settings, serve
from tests.conftest import CORPUS_DIR
from tests.jobs_helpers import TIMEOUT, submit_ok, wait_for, wait_job

KEY = "links-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}
SPEECH = CORPUS_DIR / "pisets" / "test_sound_ru.wav"
NOW = 1_700_000_000.0
JOB = "job_0123456789abcdef"

# -- the pure rules --------------------------------------------------------------------------


def _verify(job_id: str, link: audio_links.SignedLink, now: float = NOW, key: str = KEY) -> None:
    verify(key, job_id, [str(link.expires)], [link.signature], now=now)


def _reason(call: Any) -> str:
    with pytest.raises(LinkRejected) as caught:
        call()
    return caught.value.reason


def test_a_link_opens_its_job_until_it_expires() -> None:
    link = sign(KEY, JOB, now=NOW)
    assert link.expires == int(NOW) + audio_links.LINK_SECONDS
    assert len(link.signature) == 64 and int(link.signature, 16) >= 0
    _verify(JOB, link)
    _verify(JOB, link, now=link.expires - 1)
    assert _reason(lambda: _verify(JOB, link, now=link.expires)) == "expired"
    assert _reason(lambda: _verify(JOB, link, now=link.expires + 10**6)) == "expired"
    assert link.query() == f"expires={link.expires}&signature={link.signature}"


def test_the_signature_is_the_documented_hmac_under_a_derived_key() -> None:
    derived = hmac.new(KEY.encode(), b"gigaam-api/job-audio-link/v1", hashlib.sha256).digest()
    assert link_key(KEY) == derived != KEY.encode()
    message = f"job-audio:{JOB}:{NOW:.0f}".encode()
    assert signature(derived, JOB, int(NOW)) == hmac.new(derived, message, "sha256").hexdigest()
    # the API key itself never signs: a MAC made with it directly is not a link
    direct = hmac.new(KEY.encode(), message, hashlib.sha256).hexdigest()
    assert _reason(lambda: verify(KEY, JOB, [f"{NOW:.0f}"], [direct], now=NOW - 1)) == "invalid"


@pytest.mark.parametrize(
    "other",
    [
        "job_0123456789abcdee",  # one character off
        JOB + "0",
        JOB[:-1],
        JOB.upper(),
        f"{JOB}:{int(NOW)}",  # the message cannot be re-split at a colon
        "",
    ],
)
def test_a_link_never_opens_another_job(other: str) -> None:
    link = sign(KEY, JOB, now=NOW)
    assert _reason(lambda: _verify(other, link)) == "invalid"


def test_odd_job_ids_sign_and_verify_without_error() -> None:
    for job_id in ("job:1:2", "задание", "\udcff", "x" * 10_000, ""):
        link = sign(KEY, job_id, now=NOW)
        _verify(job_id, link)
        other = job_id + "!"
        assert _reason(lambda other=other, link=link: _verify(other, link)) == "invalid"


def test_a_new_api_key_voids_every_link() -> None:
    link = sign(KEY, JOB, now=NOW)
    assert _reason(lambda: _verify(JOB, link, key=KEY + "2")) == "invalid"
    assert _reason(lambda: _verify(JOB, link, key="")) == "invalid"


def test_a_link_signed_for_longer_than_the_server_mints_is_refused() -> None:
    lifetime = audio_links.LINK_SECONDS
    ten_years = sign(KEY, JOB, now=NOW, lifetime=10 * 365 * 86400)
    assert _reason(lambda: _verify(JOB, ten_years)) == "invalid"
    # a replica whose clock runs a little ahead still mints acceptable links
    ahead = sign(KEY, JOB, now=NOW + audio_links.CLOCK_SLACK_S, lifetime=lifetime)
    _verify(JOB, ahead)
    too_far = sign(KEY, JOB, now=NOW + audio_links.CLOCK_SLACK_S + 1, lifetime=lifetime)
    assert _reason(lambda: _verify(JOB, too_far)) == "invalid"


def _flip(hex_text: str, at: int) -> str:
    return hex_text[:at] + format(int(hex_text[at], 16) ^ 1, "x") + hex_text[at + 1 :]


@pytest.mark.parametrize("at", [0, 31, 63])
def test_a_changed_digit_or_expiry_is_refused(at: int) -> None:
    link = sign(KEY, JOB, now=NOW)
    forged = audio_links.SignedLink(link.expires, _flip(link.signature, at))
    assert _reason(lambda: _verify(JOB, forged)) == "invalid"
    later = audio_links.SignedLink(link.expires + 1, link.signature)
    assert _reason(lambda: _verify(JOB, later)) == "invalid"


GOOD = sign(KEY, JOB, now=NOW)


@pytest.mark.parametrize(
    ("expires", "signature_values"),
    [
        ([], [GOOD.signature]),
        ([str(GOOD.expires)], []),
        ([str(GOOD.expires)] * 2, [GOOD.signature]),  # which one would count?
        ([str(GOOD.expires)], [GOOD.signature] * 2),
        ([""], [GOOD.signature]),
        ([f" {GOOD.expires}"], [GOOD.signature]),
        ([f"+{GOOD.expires}"], [GOOD.signature]),
        ([f"{GOOD.expires}.0"], [GOOD.signature]),
        (["-1"], [GOOD.signature]),
        (["1e9"], [GOOD.signature]),
        (["0x10"], [GOOD.signature]),
        (["1_700_003_600"], [GOOD.signature]),
        (["١٧٠٠٠٠٣٦٠٠"], [GOOD.signature]),  # Arabic-Indic digits: int() would take them
        (["１７００００３６００"], [GOOD.signature]),  # fullwidth digits
        (["9" * 13], [GOOD.signature]),
        (["9" * 5000], [GOOD.signature]),  # past int()'s digit limit: must not raise
        ([f"{GOOD.expires}\x00"], [GOOD.signature]),
        ([str(GOOD.expires)], [GOOD.signature.upper()]),
        ([str(GOOD.expires)], [GOOD.signature[:-1]]),
        ([str(GOOD.expires)], [GOOD.signature + "0"]),
        ([str(GOOD.expires)], ["g" * 64]),
        ([str(GOOD.expires)], ["é" * 64]),
        ([str(GOOD.expires)], [""]),
    ],
)
def test_garbage_parameters_are_malformed(expires: list[str], signature_values: list[str]) -> None:
    assert _reason(lambda: verify(KEY, JOB, expires, signature_values, now=NOW)) == "malformed"


# -- the real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = real_model_settings(
        golden_dir,
        tmp_path_factory.mktemp("models"),
        api_key=KEY,
        jobs_dir=tmp_path_factory.mktemp("jobs"),
    )
    return create_app(settings, tmp_dir=tmp_path_factory.mktemp("uploads"))


@pytest.fixture(scope="module")
def http(app: FastAPI) -> Iterator[httpx.Client]:
    with serve(app) as base:
        assert app.state.ctx.service.wait_loaded(TIMEOUT), app.state.ctx.service.error
        with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
            yield client


@pytest.fixture(scope="module")
def jobs(http: httpx.Client) -> tuple[str, str]:
    """Two finished jobs, A and B, on the keyed server."""
    ids = []
    for _ in range(2):
        client = httpx.Client(base_url=str(http.base_url), headers=AUTH, timeout=TIMEOUT)
        ids.append(submit_ok(client, SPEECH)["id"])
        wait_job(client, ids[-1])
    return ids[0], ids[1]


def _link(http: httpx.Client, job_id: str, prefix: str = "/v1") -> dict[str, Any]:
    response = http.post(f"{prefix}/jobs/{job_id}/audio/link", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def _params(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def _refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {
        "error": {
            "message": response.json()["error"]["message"],
            "type": "invalid_request_error",
            "param": None,
            "code": code,
        }
    }
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_link_streams_the_audio_with_range_and_no_header(
    http: httpx.Client, jobs: tuple[str, str]
) -> None:
    job_a, _ = jobs
    before = time.time()
    link = _link(http, job_a)
    assert link["object"] == "transcription.job.audio_link" and link["job_id"] == job_a
    assert link["expires_in"] == audio_links.LINK_SECONDS
    assert before + audio_links.LINK_SECONDS - 1 <= link["expires_at"]
    assert link["expires_at"] <= time.time() + audio_links.LINK_SECONDS
    assert urlsplit(link["url"]).path == f"/v1/jobs/{job_a}/audio"
    assert _params(link["url"]) == {
        "expires": str(link["expires_at"]),
        "signature": _params(link["url"])["signature"],
    }
    original = SPEECH.read_bytes()
    part = http.get(link["url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == original[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(original)}"
    assert part.headers["x-content-type-options"] == "nosniff"
    assert part.headers["referrer-policy"] == "no-referrer"
    assert "sandbox" in part.headers["content-security-policy"]
    whole = http.get(link["url"])
    assert whole.status_code == 200 and whole.content == original
    # the link of the route without /v1 names that route
    bare = _link(http, job_a, prefix="")
    assert urlsplit(bare["url"]).path == f"/jobs/{job_a}/audio"
    assert http.get(bare["url"], headers={"Range": "bytes=0-9"}).content == original[:10]


def test_a_link_opens_nothing_else(http: httpx.Client, jobs: tuple[str, str]) -> None:
    job_a, job_b = jobs
    query = urlsplit(_link(http, job_a)["url"]).query
    _refused(http.get(f"/v1/jobs/{job_b}/audio?{query}"), "invalid_signature")
    # an unknown job is refused the same way: a link is no oracle for which jobs exist
    _refused(http.get(f"/v1/jobs/job_ffffffffffffffff/audio?{query}"), "invalid_signature")
    for method, path in [
        ("GET", f"/v1/jobs/{job_a}"),
        ("GET", f"/v1/jobs/{job_a}/result"),
        ("GET", f"/v1/jobs/{job_a}/events"),
        ("POST", f"/v1/jobs/{job_a}/audio/link"),
        ("DELETE", f"/v1/jobs/{job_a}"),
        ("GET", "/v1/jobs"),
        ("GET", "/v1/models"),
    ]:
        _refused(http.request(method, f"{path}?{query}"), "invalid_api_key")
    assert http.get(f"/v1/jobs/{job_a}", headers=AUTH).json()["status"] == "completed"


def test_expired_and_forged_links_are_refused(
    app: FastAPI, http: httpx.Client, jobs: tuple[str, str]
) -> None:
    job_a, _ = jobs
    # what this server minted two hours ago, correctly signed
    old = sign(KEY, job_a, now=time.time() - 7200)
    _refused(http.get(f"/v1/jobs/{job_a}/audio?{old.query()}"), "signature_expired")
    forever = sign(KEY, job_a, now=time.time(), lifetime=10 * 365 * 86400)
    _refused(http.get(f"/v1/jobs/{job_a}/audio?{forever.query()}"), "invalid_signature")
    other_key = sign(KEY + "-old", job_a, now=time.time())  # before API_KEY was changed
    _refused(http.get(f"/v1/jobs/{job_a}/audio?{other_key.query()}"), "invalid_signature")
    params = _params(_link(http, job_a)["url"])
    flipped = {**params, "signature": _flip(params["signature"], 10)}
    _refused(http.get(f"/v1/jobs/{job_a}/audio", params=flipped), "invalid_signature")

    # a short-lived link works, then stops working on its own
    app.state.ctx.link_seconds = 2
    try:
        short = _link(http, job_a)
        assert short["expires_in"] == 2
    finally:
        app.state.ctx.link_seconds = audio_links.LINK_SECONDS
    assert http.get(short["url"], headers={"Range": "bytes=0-0"}).status_code in (206, 401)
    wait_for(lambda: http.get(short["url"]).status_code == 401, what="the link to expire")
    _refused(http.get(short["url"]), "signature_expired")


@pytest.mark.parametrize(
    "query",
    [
        "expires=abc&signature=" + "0" * 64,
        "expires=" + "9" * 40 + "&signature=" + "0" * 64,
        "expires=" + "9" * 5000 + "&signature=" + "0" * 64,
        "expires=%00&signature=%00",
        "expires=%D9%A1%D9%A2&signature=" + "0" * 64,  # Arabic-Indic digits
        "expires=-1&signature=" + "0" * 64,
        "expires=1&expires=2&signature=" + "0" * 64,
        "signature=" + "0" * 64,
        "expires=4102444800",
        "expires=&signature=",
        "signature=%FF%FE",
        "expires=1" + "&signature=" + "0" * 10_000,
    ],
)
def test_garbage_links_are_401_never_500(
    http: httpx.Client, jobs: tuple[str, str], query: str
) -> None:
    job_a, _ = jobs
    _refused(http.get(f"/v1/jobs/{job_a}/audio?{query}"), "invalid_signature")


def test_the_key_still_opens_the_audio_and_is_judged_first(
    http: httpx.Client, jobs: tuple[str, str]
) -> None:
    job_a, _ = jobs
    original = SPEECH.read_bytes()
    with_key = http.get(f"/v1/jobs/{job_a}/audio", headers={**AUTH, "Range": "bytes=5-"})
    assert with_key.status_code == 206 and with_key.content == original[5:]
    # a key is judged alone: right key + garbage link is fine, wrong key + good link is not
    garbage = "expires=x&signature=y"
    assert http.get(f"/v1/jobs/{job_a}/audio?{garbage}", headers=AUTH).status_code == 200
    url = _link(http, job_a)["url"]
    _refused(http.get(url, headers={"Authorization": "Bearer wrong"}), "invalid_api_key")
    _refused(http.get(f"/v1/jobs/{job_a}/audio"), "invalid_api_key")  # neither: as before
    # minting a link needs the key, and a job that exists
    _refused(http.post(f"/v1/jobs/{job_a}/audio/link"), "invalid_api_key")
    missing = http.post("/v1/jobs/job_ffffffffffffffff/audio/link", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"


def test_the_signature_never_reaches_the_access_log(
    http: httpx.Client, jobs: tuple[str, str]
) -> None:
    job_a, _ = jobs
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep(logging.DEBUG)
    package = logging.getLogger("gigaam_api")
    old_level = package.level
    package.addHandler(handler)
    package.setLevel(logging.DEBUG)
    try:
        url = _link(http, job_a)["url"]
        secret = _params(url)["signature"]
        rid = http.get(url, headers={"Range": "bytes=0-0"}).headers["x-request-id"]
        http.get(url.replace(secret, _flip(secret, 0)))
        wait_for(
            lambda: any(r.__dict__.get("request_id") == rid for r in seen),
            what="the access log line",
        )
    finally:
        package.removeHandler(handler)
        package.setLevel(old_level)
    line = next(r for r in seen if r.__dict__.get("request_id") == rid)
    assert line.__dict__["path"] == f"/v1/jobs/{job_a}/audio"
    assert line.__dict__["status"] == 206
    for record in seen:
        text = record.getMessage() + " ".join(str(v) for v in record.__dict__.values())
        assert secret not in text and secret[:16] not in text
        assert KEY not in text


def test_audio_gone_with_the_job_still_listed_is_404(
    app: FastAPI, http: httpx.Client, jobs: tuple[str, str]
) -> None:
    """What a cancelled job looks like (kept until retention, its files removed): a 404 the
    page words as "the audio is not available", not a 500."""
    service = app.state.jobs.service
    client = httpx.Client(base_url=str(http.base_url), headers=AUTH, timeout=TIMEOUT)
    job = submit_ok(client, SPEECH)
    wait_job(client, job["id"])
    url = _link(http, job["id"])["url"]
    service.files.remove(job["id"])
    for response in (
        http.get(url),
        http.get(f"/v1/jobs/{job['id']}/audio", headers=AUTH),
        http.post(f"/v1/jobs/{job['id']}/audio/link", headers=AUTH),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "audio_not_found"


def test_without_api_key_nothing_changes(
    golden_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = real_model_settings(
        golden_dir, tmp_path_factory.mktemp("models"), jobs_dir=tmp_path_factory.mktemp("jobs")
    )
    app = create_app(settings, tmp_dir=tmp_path_factory.mktemp("uploads"))
    with serve(app) as base, httpx.Client(base_url=base, timeout=TIMEOUT) as client:
        assert app.state.ctx.service.wait_loaded(TIMEOUT), app.state.ctx.service.error
        job = submit_ok(client, SPEECH)
        link = client.post(f"/v1/jobs/{job['id']}/audio/link").json()
        assert link["url"] == f"/v1/jobs/{job['id']}/audio"
        assert link["expires_at"] is None and link["expires_in"] is None
        original = SPEECH.read_bytes()
        assert client.get(link["url"]).content == original
        # link parameters, even garbage or another server's, are not looked at
        stray = sign("some-key", job["id"], now=time.time() - 7200)
        for query in ("expires=x&signature=y", stray.query()):
            response = client.get(f"{link['url']}?{query}", headers={"Range": "bytes=1-2"})
            assert response.status_code == 206 and response.content == original[1:3]
        wait_job(client, job["id"])
