"""The web page at ``/`` in a real headless Chromium (Debian's package, driven by Playwright)
against the real server on loopback with the tiny golden checkpoint — the way a person uses
it: drop a recording, watch it finish, read, click a word, download subtitles, reload, delete.

The server is wrapped in :class:`Recorder`, so tests can assert on what the server itself
received and answered (a player's ``Range`` requests, which link or key each carried) rather
than on timing.

Tests that need the job API (``/v1/jobs``) skip themselves, with the reason, when the server
has no such route (detected at run time by asking the running server), and run as soon as it
has one. The others — loading with no outside requests, the key prompt, languages, light and
dark, keyboard order and labels, security headers — need only the page.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Request,
    expect,
    sync_playwright,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gigaam_api.api import audio_links
from gigaam_api.config import Settings
from gigaam_api.model import LANGUAGES
from gigaam_api.server import create_app
from gigaam_api.web import CONTENT_SECURITY_POLICY
from tests.api_server import real_model_settings, serve, tiled_wav
from tests.browser import DESKTOP, PHONE, launch, wait_until
from tests.helpers import wait_until as wait_for
from tests.media import encode
from tests.speakers_conversations import build_conversations
from tests.speakers_data import resemblyzer_wheel

KEY = "web-secret"
TIMEOUT_MS = 120_000
SPEECH = "golos/golos_001ce26c.wav"
SECOND_SPEECH = "edge_cases/stereo_dual_mono_pisets_16k.wav"
LONG_SPEECH = "longform/longform_espeak_ru.wav"  # 81 s: several segments

#: What the page says, per language, for the checks below (the page's own i18n.js strings).
TEXT = {
    "ru": {"title": "Речь в текст", "pick": "Выбрать файлы", "not_audio": "Это не аудио"},
    "en": {"title": "Speech to text", "pick": "Choose files", "not_audio": "This is not an audio"},
}


@dataclass
class Seen:
    """One request as the server received it, and the status it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int | None = None

    @property
    def range_start(self) -> int | None:
        match = re.fullmatch(r"bytes=(\d+)-\d*", self.headers.get("range", ""))
        return int(match.group(1)) if match else None


class Recorder:
    """ASGI wrapper that keeps every HTTP request the server got (the lifespan passes by)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[Seen] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entry = Seen(
            scope["method"],
            scope["path"],
            parse_qs(scope["query_string"].decode("latin-1")),
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
        )
        self.seen.append(entry)

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = int(message["status"])
            await send(message)

        await self.app(scope, receive, record)


@dataclass
class Server:
    url: str
    app: FastAPI
    key: str = ""
    recorder: Recorder = field(default_factory=lambda: Recorder(FastAPI()))

    def seen(self, method: str, path: str) -> list[Seen]:
        return [s for s in list(self.recorder.seen) if s.method == method and s.path == path]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def has_jobs(self) -> bool:
        """Whether this server offers the job API: an unknown route is a 404 with no code."""
        response = httpx.get(f"{self.url}/v1/jobs", headers=self.headers(), timeout=30)
        return not (response.status_code == 404 and response.json()["error"]["code"] is None)


def _settings(golden_dir: Path, tmp: pytest.TempPathFactory, **overrides: Any) -> Settings:
    if "jobs_dir" in Settings.model_fields:  # the job API keeps its store there
        overrides["jobs_dir"] = tmp.mktemp("jobs")
    return real_model_settings(golden_dir, tmp.mktemp("models"), **overrides)


def _serve(settings: Settings, tmp: pytest.TempPathFactory, key: str = "") -> Iterator[Server]:
    app = create_app(settings, keepalive_seconds=0.5, tmp_dir=tmp.mktemp("uploads"))
    recorder = Recorder(app)
    with serve(recorder) as url:
        assert app.state.ctx.service.wait_loaded(TIMEOUT_MS / 1000), app.state.ctx.service.error
        yield Server(url, app, key, recorder)


@pytest.fixture(scope="module")
def server(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve(_settings(golden_dir, tmp_path_factory), tmp_path_factory)


@pytest.fixture(scope="module")
def keyed_server(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = _settings(golden_dir, tmp_path_factory, api_key=KEY)
    yield from _serve(settings, tmp_path_factory, KEY)


@pytest.fixture(scope="module")
def limited_server(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = _settings(golden_dir, tmp_path_factory, max_upload_mb=1, max_audio_seconds=3)
    yield from _serve(settings, tmp_path_factory)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@dataclass
class Session:
    """One browser context on one server, with every request the page made."""

    context: BrowserContext
    page: Page
    requests: list[Request] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, url: str) -> Page:
        self.page.goto(url)
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")
        return self.page


@pytest.fixture
def session_factory(browser: Browser) -> Iterator[Any]:
    opened: list[BrowserContext] = []

    def make(
        locale: str = "en-US", color_scheme: str = "light", viewport: dict[str, int] = DESKTOP
    ) -> Session:
        context = browser.new_context(
            locale=locale, color_scheme=color_scheme, viewport=viewport, accept_downloads=True
        )  # type: ignore[arg-type]
        context.set_default_timeout(TIMEOUT_MS)
        opened.append(context)
        page = context.new_page()
        session = Session(context, page)
        page.on("request", lambda request: session.requests.append(request))
        page.on("pageerror", lambda error: session.errors.append(str(error)))
        page.on(
            "console",
            lambda msg: session.errors.append(msg.text) if "Content Security" in msg.text else None,
        )
        return session

    yield make
    for context in opened:
        context.close()


NO_JOBS = "the server has no job API yet (GET /v1/jobs answers 404 route not found)"


@pytest.fixture
def jobs_server(server: Server) -> Server:
    if not server.has_jobs():
        pytest.skip(NO_JOBS)
    return server


def _drop(page: Page, path: Path) -> None:
    """Drop a file on the drop zone the way a drag from the desktop does."""
    page.evaluate(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "audio/wav" }));
            const zone = document.getElementById("drop");
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true,
                                                          cancelable: true }));
            }
        }""",
        [path.name, base64.b64encode(path.read_bytes()).decode()],
    )


def _row(page: Page, filename: str) -> Any:
    return page.locator("#jobs li.job").filter(has_text=filename)


# -- without the job API ------------------------------------------------------------------


def test_page_loads_with_no_request_outside_the_server(
    server: Server, session_factory: Any
) -> None:
    session = session_factory()
    page = session.open(server.url + "/")
    page.wait_for_load_state("networkidle")
    assert session.requests, "the page made no request at all"
    outside = [r.url for r in session.requests if not r.url.startswith(server.url + "/")]
    assert outside == []
    paths = {re.sub(r"\?.*", "", r.url[len(server.url) :]) for r in session.requests}
    assert {"/", "/web/app.js", "/web/i18n.js", "/web/api.js", "/web/style.css"} <= paths
    assert "/v1/models" in paths  # the key check every load makes
    assert session.errors == []


def test_security_headers_and_no_secrets(keyed_server: Server) -> None:
    page = httpx.get(keyed_server.url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text  # modules only, nothing inline
    for name in ("app.js", "api.js", "i18n.js", "style.css", "icon.svg"):
        asset = httpx.get(f"{keyed_server.url}/web/{name}")
        assert asset.status_code == 200, name
        assert KEY not in asset.text
        assert asset.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert (
        httpx.get(keyed_server.url + "/web/app.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    for missing in ("/web/nope.js", "/web/..%2Fconfig.py", "/web/index.html"):
        response = httpx.get(keyed_server.url + missing)
        assert response.status_code == 404, missing
        assert response.json()["error"]["type"] == "invalid_request_error"


def test_web_ui_off_serves_no_page(golden_dir: Path, tmp_path: Path) -> None:
    settings = real_model_settings(golden_dir, tmp_path, web_ui=False)
    client = TestClient(create_app(settings))  # no lifespan: only the route table is used
    response = client.get("/")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Unknown route: GET /"
    assert client.get("/web/app.js").status_code == 404


@pytest.mark.parametrize(("locale", "lang"), [("ru-RU", "ru"), ("en-GB", "en")])
def test_language_follows_the_browser_and_switches(
    server: Server, session_factory: Any, locale: str, lang: str
) -> None:
    page = session_factory(locale=locale).open(server.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("h1")).to_have_text(TEXT[lang]["title"])
    expect(page.locator("#pick")).to_have_text(TEXT[lang]["pick"])
    expect(page.locator("#lang")).to_have_value(lang)
    other = "en" if lang == "ru" else "ru"
    page.select_option("#lang", other)
    expect(page.locator("h1")).to_have_text(TEXT[other]["title"])
    expect(page.locator("html")).to_have_attribute("lang", other)
    page.reload()
    expect(page.locator("h1")).to_have_text(TEXT[other]["title"])  # the choice is remembered


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_key_is_asked_once_and_a_wrong_key_is_reported(
    keyed_server: Server, session_factory: Any, lang: str
) -> None:
    session = session_factory(locale=lang)
    page = session.open(keyed_server.url + "/")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#key-error")).to_be_hidden()
    expect(page.locator("#key-input")).to_be_focused()

    page.fill("#key-input", "not-the-key")
    page.press("#key-input", "Enter")
    expect(dialog).to_be_visible()
    wrong = {"en": "This key is wrong", "ru": "Ключ неверный"}[lang]
    expect(page.locator("#key-error")).to_contain_text(wrong)
    expect(page.locator("#key-error")).to_have_attribute("role", "alert")

    page.fill("#key-input", KEY)
    page.click("#key-save")
    expect(dialog).to_be_hidden()
    assert page.evaluate("localStorage.getItem('gigaam-api-key')") == KEY

    session.requests.clear()
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.wait_for_load_state("networkidle")
    expect(dialog).to_be_hidden()  # asked once: the kept key is used from now on
    api_calls = [r for r in session.requests if "/v1/" in r.url]
    assert api_calls
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in api_calls)


def test_key_prompt_not_shown_without_api_key(server: Server, session_factory: Any) -> None:
    page = session_factory().open(server.url + "/")
    page.wait_for_load_state("networkidle")
    expect(page.locator("#key-dialog")).to_be_hidden()


def test_light_and_dark_follow_the_system(server: Server, session_factory: Any) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        page = session_factory(color_scheme=scheme).open(server.url + "/")
        colours[scheme] = page.evaluate(
            "() => [getComputedStyle(document.body).backgroundColor,"
            " getComputedStyle(document.body).color]"
        )
    assert colours["light"] == ["rgb(246, 247, 249)", "rgb(27, 30, 36)"]
    assert colours["dark"] == ["rgb(20, 22, 26)", "rgb(232, 234, 238)"]


_FOCUSED = """() => {
    const el = document.activeElement;
    const byLabel = el.labels && el.labels.length ? el.labels[0].textContent : "";
    const name = (el.getAttribute("aria-label") || byLabel || el.textContent || "").trim();
    return { tag: el.tagName.toLowerCase(), id: el.id, name: name.replace(/\\s+/g, " ") };
}"""


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_keyboard_order_and_labels(
    server: Server, session_factory: Any, viewport: dict[str, int]
) -> None:
    page = session_factory(viewport=viewport).open(server.url + "/")
    # Playwright turns file-chooser interception on without waiting for the browser to confirm:
    # listening from the start makes sure it is on before the key press below.
    page.on("filechooser", lambda chooser: None)
    page.wait_for_load_state("networkidle")
    order = []
    for _ in range(5):
        page.keyboard.press("Tab")
        order.append(page.evaluate(_FOCUSED))
    assert [(f["tag"], f["id"]) for f in order] == [
        ("a", ""),  # skip link
        ("select", "lang"),
        ("button", "key-button"),
        ("button", "record"),  # the microphone (tests/test_web_live.py)
        ("button", "pick"),
    ]
    assert [f["name"] for f in order] == [
        "Skip to the upload",
        "Language Русский English",
        "API key",
        "Record",
        "Choose files",
    ]
    with page.expect_file_chooser(timeout=15_000) as chooser:
        page.keyboard.press("Enter")  # "Choose files" opens the picker from the keyboard
    assert chooser.value.is_multiple()
    # nothing is wider than a phone screen
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


# -- with the job API ---------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_a_recording_from_drop_to_delete(
    jobs_server: Server, session_factory: Any, corpus_dir: Path, lang: str
) -> None:
    session = session_factory(locale=lang)
    page = session.open(jobs_server.url + "/")
    audio = corpus_dir / SPEECH
    _drop(page, audio)

    row = _row(page, audio.name)
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
    assert row.locator("progress").evaluate("bar => bar.value") == 1
    job_id = row.get_attribute("data-id")
    assert job_id and job_id.startswith("job_")

    row.locator(".job-open").click()
    expect(page.locator("#view")).to_be_visible()
    expect(page.locator("#view-title")).to_have_text(audio.name)
    http = httpx.Client(base_url=jobs_server.url, timeout=60)
    verbose = http.get(
        f"/v1/jobs/{job_id}/result",
        params={
            "response_format": "verbose_json",
            "timestamp_granularities[]": ["word", "segment"],
        },
    ).json()
    assert verbose["words"], "the fixture model found no words in the corpus file"
    expect(page.locator("#transcript .seg")).to_have_count(len(verbose["segments"]))
    expect(page.locator("#transcript .w")).to_have_count(len(verbose["words"]))

    # the player loads the audio (with Range requests) and clicking a word seeks to its start
    wait_until(page, "document.getElementById('player').readyState >= 1")
    audio_responses = [r for r in session.requests if r.url.endswith(f"/{job_id}/audio")]
    assert audio_responses
    # the player streams with Range requests, which is what makes seeking in long files work
    statuses = {response.status for r in audio_responses if (response := r.response())}
    assert 206 in statuses
    word = page.locator("#transcript .w").nth(len(verbose["words"]) // 2)
    start = float(word.get_attribute("data-start") or "nan")
    assert start == verbose["words"][len(verbose["words"]) // 2]["start"]
    word.click()
    wait_until(page, f"Math.abs(document.getElementById('player').currentTime - {start}) < 0.05")
    expect(word).to_have_class(re.compile(r"\bcurrent\b"))

    # search highlights the word everywhere it occurs
    needle = verbose["words"][0]["word"].strip().lower()
    page.fill("#search", needle)
    expect(page.locator("#transcript .w.hit").first).to_be_visible()
    page.fill("#search", "")

    # downloads equal the API's own result
    with page.expect_download() as download:
        page.click(".dl[data-format='srt']")
    saved = Path(download.value.path()).read_bytes()
    expected = http.get(f"/v1/jobs/{job_id}/result", params={"response_format": "srt"}).content
    assert saved == expected
    assert download.value.suggested_filename == audio.stem + ".srt"

    # after a reload the job is still listed (and reopened from the address)
    page.reload()
    expect(page.locator(f"#jobs li[data-id='{job_id}']")).to_have_count(1)
    expect(page.locator("#view-title")).to_have_text(audio.name)

    # delete asks first; "keep" keeps it, "delete" removes it from the page and the server
    page.click("#delete")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.click("#confirm-no")
    expect(page.locator(f"#jobs li[data-id='{job_id}']")).to_have_count(1)
    page.click("#delete")
    page.click("#confirm-yes")
    expect(page.locator(f"#jobs li[data-id='{job_id}']")).to_have_count(0)
    expect(page.locator("#view")).to_be_hidden()
    assert http.get(f"/v1/jobs/{job_id}").status_code == 404
    assert session.errors == []


def test_the_spoken_language_is_offered_when_the_model_has_several(
    golden_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    server: Server,
    session_factory: Any,
    corpus_dir: Path,
) -> None:
    """A Russian model: no choice shown (nothing to choose). A multilingual model: the page
    reads its languages from ``/v1/models``, offers them, and a file dropped after choosing
    Kazakh becomes a job with ``language=kk`` whose text stays in the Kazakh alphabet."""
    page = session_factory().open(server.url + "/")
    page.wait_for_load_state("networkidle")
    expect(page.locator("#speech-lang-row")).to_be_hidden()

    name = "multilingual_ctc"
    checkpoint = Path(__file__).parent / "fixtures" / "generations" / name / f"{name}.ckpt"
    settings = _settings(golden_dir, tmp_path_factory, model=name, checkpoint_path=checkpoint)
    for multilingual in _serve(settings, tmp_path_factory):
        if not multilingual.has_jobs():
            pytest.skip(NO_JOBS)
        page = session_factory(locale="ru-RU").open(multilingual.url + "/")
        choice = page.locator("#speech-lang")
        expect(page.locator("#speech-lang-row")).to_be_visible()
        expect(choice.locator("option")).to_have_text(
            ["Определить", "Русский", "Английский", "Казахский", "Киргизский", "Узбекский"]
        )
        choice.select_option("kk")
        audio = corpus_dir / SPEECH
        _drop(page, audio)
        row = _row(page, audio.name)
        expect(row).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
        job_id = row.get_attribute("data-id")
        assert job_id
        job = multilingual.app.state.jobs.service.get(job_id)
        assert job.options.language == "kk"
        verbose = httpx.get(
            f"{multilingual.url}/v1/jobs/{job_id}/result",
            params={"response_format": "verbose_json"},
            timeout=60,
        ).json()
        assert verbose["language"] == "kazakh"
        assert {ch for ch in verbose["text"] if ch.isalpha()} <= LANGUAGES["kk"].letters
        page.locator("#lang").select_option("en")  # the names follow the page's language
        expect(choice.locator("option").nth(3)).to_have_text("Kazakh")
        expect(choice).to_have_value("kk")


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_non_audio_file_shows_a_readable_error(
    jobs_server: Server, session_factory: Any, tmp_path: Path, lang: str
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("this is a shopping list, not a recording\n" * 50)
    page = session_factory(locale=lang).open(jobs_server.url + "/")
    page.set_input_files("#file-input", str(notes))
    # rejected at upload (400) or failed later by the worker: either way next to the file
    error = page.locator("li.job", has_text="notes.txt").locator(".error")
    expect(error).to_be_visible(timeout=TIMEOUT_MS)
    expect(error).to_contain_text(TEXT[lang]["not_audio"])


def test_two_files_at_once_both_finish(
    jobs_server: Server, session_factory: Any, corpus_dir: Path
) -> None:
    page = session_factory().open(jobs_server.url + "/")
    files = [corpus_dir / SPEECH, corpus_dir / SECOND_SPEECH]
    page.set_input_files("#file-input", [str(f) for f in files])
    for audio in files:
        expect(_row(page, audio.name)).to_have_attribute(
            "data-status", "completed", timeout=TIMEOUT_MS
        )


def test_a_listing_older_than_an_upload_or_a_delete_does_not_undo_it(
    jobs_server: Server, session_factory: Any, corpus_dir: Path, tmp_path: Path
) -> None:
    """The page's first GET /v1/jobs may answer after an upload has landed or a delete has
    been done: that older listing must neither drop the new job (it stayed gone once the job
    had finished, as nothing polls for finished jobs) nor bring the deleted one back."""
    earlier = corpus_dir / SECOND_SPEECH
    with earlier.open("rb") as opened:
        made = httpx.post(
            f"{jobs_server.url}/v1/jobs",
            files={"file": (earlier.name, opened, "audio/wav")},
            headers=jobs_server.headers(),
            timeout=60,
        )
    assert made.status_code == 202, made.text
    earlier_id = made.json()["id"]
    wait_for(
        lambda: (
            httpx.get(
                f"{jobs_server.url}/v1/jobs/{earlier_id}", headers=jobs_server.headers(), timeout=30
            ).json()["status"]
            == "completed"
        ),
        "the earlier job to finish",
        timeout=120,
    )

    session = session_factory()
    held: list[Any] = []  # the first listing's request, answered when the test says

    def hold_first_listing(route: Any) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    session.page.route("**/v1/jobs?limit=*", hold_first_listing)
    page = session.open(f"{jobs_server.url}/")
    while not held:  # Playwright calls the route's handler only while the test calls it
        page.wait_for_timeout(20)

    # a job uploaded, opened and deleted here; the listing is taken while it still exists
    deleted = tmp_path / "deleted-while-listing.wav"  # names no other test uploads
    shutil.copyfile(corpus_dir / SPEECH, deleted)
    deleted_row, deleted_id = _upload_and_open(page, deleted, "completed")
    answer = held[0].fetch()
    listed = [job["id"] for job in answer.json()["data"]]
    assert earlier_id in listed and deleted_id in listed
    page.click("#delete")
    page.click("#confirm-yes")
    expect(deleted_row).to_have_count(0)
    # a job uploaded after the listing was taken
    audio = tmp_path / "uploaded-while-listing.wav"
    shutil.copyfile(corpus_dir / SPEECH, audio)
    _drop(page, audio)
    row = _row(page, audio.name)
    expect(row).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
    assert row.get_attribute("data-id") not in listed

    held[0].fulfill(response=answer)
    # the earlier job comes only with the listing: its row is the sign the listing was applied
    expect(page.locator(f"#jobs li[data-id='{earlier_id}']")).to_have_count(1)
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "completed")
    expect(page.locator("#jobs li.job").first).to_contain_text(audio.name)  # still on top
    expect(page.locator(f"#jobs li[data-id='{deleted_id}']")).to_have_count(0)
    expect(page.locator("#jobs li.job")).to_have_count(len(listed))  # one gone, one new
    assert session.errors == []


def _enter_key(page: Page) -> None:
    expect(page.locator("#key-dialog")).to_be_visible()
    page.fill("#key-input", KEY)
    page.click("#key-save")
    expect(page.locator("#key-dialog")).to_be_hidden()


def _upload_and_open(page: Page, audio: Path, status: str) -> tuple[Locator, str]:
    """Upload ``audio`` from the page, wait for its row to show ``status``, open it; the row
    and the job id."""
    page.set_input_files("#file-input", str(audio))
    row = _row(page, audio.name)
    expect(row).to_have_attribute("data-status", status, timeout=TIMEOUT_MS)
    job_id = row.get_attribute("data-id")
    assert job_id
    row.locator(".job-open").click()
    return row, job_id


def _open_finished(page: Page, audio: Path) -> str:
    """Upload ``audio`` from the page, wait for it to finish, open it; its job id."""
    _, job_id = _upload_and_open(page, audio, "completed")
    expect(page.locator("#transcript .w").first).to_be_visible()
    wait_until(page, "document.getElementById('player').readyState >= 1")
    return job_id


def _signed(seen: Seen) -> bool:
    """The player's own request: a signed link in the query and no key in the headers."""
    return set(seen.query) == {"expires", "signature"} and "authorization" not in seen.headers


def test_with_a_key_every_call_carries_it_and_the_audio_plays(
    keyed_server: Server, session_factory: Any, corpus_dir: Path
) -> None:
    if not keyed_server.has_jobs():
        pytest.skip(NO_JOBS)
    session = session_factory()
    page = session.open(keyed_server.url + "/")
    _enter_key(page)
    job_id = _open_finished(page, corpus_dir / SPEECH)
    audio_path = f"/v1/jobs/{job_id}/audio"
    calls = [r for r in session.requests if "/v1/" in r.url and r.url.startswith(keyed_server.url)]
    by_player = [r for r in calls if urlsplit(r.url).path == audio_path]
    others = [r for r in calls if r not in by_player]
    with_key = [r for r in others if r.headers.get("authorization") == f"Bearer {KEY}"]
    # every call after the key was entered carried it (the first /v1/models found it missing)
    assert len(with_key) >= len(others) - 1
    assert any("/events" in r.url for r in with_key)  # SSE over fetch, with the header
    assert any(urlsplit(r.url).path == audio_path + "/link" for r in with_key)
    # the player streamed the recording itself by a signed link, never with the key
    assert by_player and all(
        set(parse_qs(urlsplit(r.url).query)) == {"expires", "signature"} for r in by_player
    )
    served = keyed_server.seen("GET", audio_path)
    assert served and all(_signed(s) and s.status in (200, 206) for s in served)
    assert page.evaluate("document.getElementById('player').src").startswith(keyed_server.url)
    assert session.errors == []


def _far_word(page: Page, beyond: float) -> tuple[Any, float]:
    word = page.locator("#transcript .w").last
    start = float(word.get_attribute("data-start") or "nan")
    assert start > beyond, "the recording has no word near its end"
    return word, start


def test_with_a_key_the_player_seeks_a_long_recording_by_range(
    keyed_server: Server, session_factory: Any, corpus_dir: Path, tmp_path: Path
) -> None:
    """Five minutes of WAV (19 MB): a jump to the end must be a new Range request, answered
    206 to the signed link, not a download of everything before it."""
    if not keyed_server.has_jobs():
        pytest.skip(NO_JOBS)
    audio = tiled_wav(corpus_dir / LONG_SPEECH, tmp_path / "five-minutes.wav", 300.0)
    page = session_factory().open(keyed_server.url + "/")
    _enter_key(page)
    job_id = _open_finished(page, audio)
    audio_path = f"/v1/jobs/{job_id}/audio"
    word, start = _far_word(page, 250.0)
    word.click()
    wait_until(
        page,
        f"(p => Math.abs(p.currentTime - {start}) < 0.05 && p.readyState >= 2)"
        "(document.getElementById('player'))",
    )
    expect(word).to_have_class(re.compile(r"\bcurrent\b"))
    far = int((start - 20) * 16000 * 4)  # bytes before the word: 16 kHz, 2 channels, 16 bit
    jumps = [s for s in keyed_server.seen("GET", audio_path) if (s.range_start or 0) >= far]
    assert jumps, "the jump was not a Range request for the far part of the file"
    assert all(_signed(s) and s.status == 206 for s in jumps)
    assert page.locator("#player-note").is_hidden()


def test_an_expiring_link_is_renewed_and_the_player_keeps_its_place(
    keyed_server: Server, session_factory: Any, corpus_dir: Path, tmp_path: Path
) -> None:
    """Links that live 4 s: the page renews them on its own while the player is paused, and
    when it slept through a renewal (its timers stopped by Playwright's clock) the player's
    failed request is retried once with a fresh link, at the place the person jumped to."""
    if not keyed_server.has_jobs():
        pytest.skip(NO_JOBS)
    audio = tiled_wav(corpus_dir / LONG_SPEECH, tmp_path / "renewed.wav", 300.0)
    session = session_factory()
    session.page.clock.install()  # the page's timers, so they can be stopped below
    page = session.open(keyed_server.url + "/")
    _enter_key(page)
    keyed_server.app.state.ctx.link_seconds = 4
    try:
        job_id = _open_finished(page, audio)
        audio_path = f"/v1/jobs/{job_id}/audio"
        first = page.evaluate("document.getElementById('player').src")
        page.evaluate("document.getElementById('player').currentTime = 2.5")
        wait_until(page, f"document.getElementById('player').src !== {first!r}")
        wait_until(
            page,
            "(p => p.readyState >= 1 && Math.abs(p.currentTime - 2.5) < 0.05)"
            "(document.getElementById('player'))",
        )
        links = keyed_server.seen("POST", audio_path + "/link")
        assert len(links) >= 2
        assert all(s.headers.get("authorization") == f"Bearer {KEY}" for s in links)

        # the tab sleeps: no timer runs, and the link in the player expires
        page.clock.pause_at(page.evaluate("Date.now()") + 1)

        def player_link() -> str:
            return str(page.evaluate("document.getElementById('player').src"))

        def expired(link: str) -> Callable[[], bool]:
            return lambda: httpx.get(link, timeout=30).status_code == 401

        while True:  # a renewal already under way when the clock stopped may still land
            current = player_link()
            wait_for(expired(current), "the player's link to expire", timeout=30)
            if player_link() == current:
                break
        asked = len(keyed_server.seen("POST", audio_path + "/link"))
        word, start = _far_word(page, 250.0)
        word.click()
        wait_until(
            page,
            f"(p => p.src !== {current!r} && Math.abs(p.currentTime - {start}) < 0.05"
            " && p.readyState >= 2)(document.getElementById('player'))",
        )
    finally:
        keyed_server.app.state.ctx.link_seconds = audio_links.LINK_SECONDS
    served = keyed_server.seen("GET", audio_path)
    # the player's own requests (this test's probes of the link are not an audio element's)
    refused = [s for s in served if s.status == 401 and s.headers.get("sec-fetch-dest") == "audio"]
    expired_signature = parse_qs(urlsplit(current).query)["signature"]
    assert any(s.query["signature"] == expired_signature for s in refused)
    assert len(keyed_server.seen("POST", audio_path + "/link")) == asked + 1  # retried once
    far = int((start - 20) * 16000 * 4)
    assert any(_signed(s) and s.status == 206 and (s.range_start or 0) >= far for s in served)
    assert page.locator("#player-note").is_hidden()


def _hours_of_mp3(source: Path, target: Path, copies: int) -> Path:
    """``copies`` × ``source`` as one small MP3 (8 kbit/s): hours that take the server minutes.

    Encoded once as constant-bitrate frames with no Xing or ID3 header, then repeated: MP3
    frames stand alone, so the copies are one valid stream whose length FFmpeg computes from
    the size."""
    from gigaam_api import audio

    once = encode(
        target.with_suffix(".once.mp3"),
        audio.load_audio(source),
        codec="mp3",
        container="mp3",
        bit_rate=8000,
        options={"write_xing": "0", "id3v2_version": "0"},
    )
    target.write_bytes(once.read_bytes() * copies)
    return target


def test_cancel_a_running_job_from_the_page(
    jobs_server: Server, session_factory: Any, corpus_dir: Path, tmp_path: Path
) -> None:
    """Six hours of speech (the test model needs about two minutes for them) cancelled while
    it runs: the page asks first, "keep it" keeps it running, then the job shows as cancelled
    with its text and audio gone — as the API says, and as a reload shows it."""
    audio = _hours_of_mp3(corpus_dir / LONG_SPEECH, tmp_path / "six-hours.mp3", 270)
    http = httpx.Client(base_url=jobs_server.url, timeout=60)
    page = session_factory().open(jobs_server.url + "/")
    row, job_id = _upload_and_open(page, audio, "running")
    cancel = page.locator("#cancel")
    expect(cancel).to_be_visible()
    expect(page.locator("#view-status")).to_contain_text("Transcribing")

    cancel.click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text(audio.name)
    expect(page.locator("#confirm-no")).to_be_focused()  # the safe answer is the default
    page.click("#confirm-no")
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "running"

    cancel.click()
    page.click("#confirm-yes")
    expect(row).to_have_attribute("data-status", "cancelled")
    expect(row).to_contain_text("Cancelled")
    expect(page.locator("#view-status")).to_contain_text("Cancelled")
    expect(cancel).to_be_hidden()
    expect(page.locator("#view-progress")).to_be_hidden()
    expect(page.locator("#transcript .seg")).to_have_count(0)
    expect(page.locator("#player-note")).to_have_text(
        "The audio of this recording is not available."
    )
    expect(page.locator("#delete")).to_be_focused()

    job = http.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled"
    assert job["processed_seconds"] < job["duration"]
    service = jobs_server.app.state.jobs.service
    wait_for(lambda: job_id not in service.runner.running_ids, "the runner to stop the job")
    result = http.get(f"/v1/jobs/{job_id}/result", params={"partial": "true"})
    assert result.status_code == 409 and result.json()["error"]["code"] == "job_not_completed"

    page.reload()
    expect(_row(page, audio.name)).to_have_attribute("data-status", "cancelled")
    assert http.delete(f"/v1/jobs/{job_id}").status_code == 200  # the record itself, too


def test_a_long_recording_live_search_seek_and_copy(
    jobs_server: Server, session_factory: Any, corpus_dir: Path
) -> None:
    session = session_factory()
    session.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = session.open(jobs_server.url + "/")
    audio = corpus_dir / LONG_SPEECH
    page.set_input_files("#file-input", str(audio))
    row = _row(page, audio.name)
    row.locator(".job-open").click()  # opened at once: its text arrives over the job's events
    expect(page.locator("#view-title")).to_have_text(audio.name)
    expect(row).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
    job_id = row.get_attribute("data-id")
    http = httpx.Client(base_url=jobs_server.url, timeout=60)
    verbose = http.get(
        f"/v1/jobs/{job_id}/result",
        params={"response_format": "verbose_json", "timestamp_granularities[]": "segment"},
    ).json()
    segments = verbose["segments"]
    assert len(segments) >= 2, "the fixture model should give the long file several segments"
    expect(page.locator("#transcript .seg")).to_have_count(len(segments))
    texts = page.locator("#transcript .seg-text").all_text_contents()
    assert [t.split() for t in texts] == [s["text"].split() for s in segments]

    # a segment's time seeks to its start
    last = page.locator("#transcript .seg-time").last
    start = segments[-1]["start"]
    assert float(last.get_attribute("data-start") or "nan") == start
    last.focus()
    page.keyboard.press("Enter")
    wait_until(page, f"Math.abs(document.getElementById('player').currentTime - {start}) < 0.05")

    # search: a word only the last segment has; "only matching parts" hides the others
    others = " ".join(s["text"] for s in segments[:-1]).split()
    unique = next((w for w in segments[-1]["text"].split() if w not in others), None)
    assert unique is not None, "the last segment has no word of its own to search for"
    page.fill("#search", unique)
    expect(page.locator("#transcript .seg.match")).to_have_count(1)
    page.check("#filter")
    expect(page.locator("#transcript .seg:visible")).to_have_count(1)
    page.uncheck("#filter")
    page.fill("#search", "")
    expect(page.locator("#transcript .seg:visible")).to_have_count(len(segments))

    # copy puts the text, as the API's text format has it, on the clipboard
    page.click("#copy")
    expect(page.locator("#notice")).to_have_text("The text is copied.")
    expected = http.get(f"/v1/jobs/{job_id}/result", params={"response_format": "text"}).text
    assert page.evaluate("navigator.clipboard.readText()") == expected


@pytest.mark.parametrize(
    ("what", "expected"),
    [("too_big", "too big for this server"), ("too_long", "longer than this server accepts")],
)
def test_limits_are_explained_next_to_the_file(
    limited_server: Server,
    session_factory: Any,
    corpus_dir: Path,
    tmp_path: Path,
    what: str,
    expected: str,
) -> None:
    if not limited_server.has_jobs():
        pytest.skip(NO_JOBS)
    if what == "too_big":  # over MAX_UPLOAD_MB=1
        audio = tiled_wav(corpus_dir / SPEECH, tmp_path / "big.wav", 40)
    else:  # 4 s over MAX_AUDIO_SECONDS=3
        audio = corpus_dir / SPEECH
    page = session_factory().open(limited_server.url + "/")
    page.set_input_files("#file-input", str(audio))
    error = page.locator("li.job", has_text=audio.name).locator(".error")
    expect(error).to_contain_text(expected, timeout=TIMEOUT_MS)


# -- speakers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speakers_server(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that labels speakers with Resemblyzer's trained GE2E weights (real voices)."""
    model = str(resemblyzer_wheel())
    yield from _serve(
        _settings(golden_dir, tmp_path_factory, diarization_model=model), tmp_path_factory
    )


@pytest.fixture(scope="module")
def meeting(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real voices taking turns (tests/speakers_conversations.py), as a FLAC file."""
    conversation = next(c for c in build_conversations() if len(c.speakers) == 3)
    samples = (np.clip(conversation.audio, -1, 1) * 32767).astype(np.int16)
    return encode(tmp_path_factory.mktemp("meeting") / "meeting.flac", samples)


def _rgb(css: str) -> tuple[int, ...]:
    match = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, [\d.]+)?\)", css)
    assert match, css
    return tuple(int(v) for v in match.groups())


def _contrast(one: str, two: str) -> float:
    """WCAG contrast ratio of two CSS ``rgb()`` colours."""

    def luminance(css: str) -> float:
        linear = [
            c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
            for c in (v / 255 for v in _rgb(css))
        ]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(one), luminance(two)), reverse=True)
    return (high + 0.05) / (low + 0.05)


_SPEAKER_COLOURS = """() => {
    const panel = getComputedStyle(document.getElementById("view")).backgroundColor;
    const colours = {};
    for (const el of document.querySelectorAll("#transcript .spk")) {
        colours[el.dataset.label] ??= getComputedStyle(el).color;
    }
    return { panel, colours };
}"""


def _check_colours(page: Page, labels: set[str]) -> dict[str, str]:
    """Each speaker's colour: one per speaker, all different, each readable on the panel."""
    seen = page.evaluate(_SPEAKER_COLOURS)
    colours: dict[str, str] = seen["colours"]
    assert set(colours) == labels
    assert len(set(colours.values())) == len(labels), colours
    for label, colour in colours.items():
        assert _contrast(colour, seen["panel"]) >= 4.5, (label, colour, seen["panel"])
    return colours


def test_speakers_labelled_coloured_renamed_downloaded_and_filtered(
    speakers_server: Server, session_factory: Any, meeting: Path
) -> None:
    """A three-person conversation uploaded with "label speakers": each segment shows its
    speaker in the speaker's colour; a click on a name renames the speaker (the page, the
    server and a downloaded SRT then say the new name); the toggles show one speaker only."""
    http = httpx.Client(base_url=speakers_server.url, timeout=60)
    session = session_factory()
    page = session.open(speakers_server.url + "/")
    expect(page.locator("#num-speakers")).to_be_disabled()
    page.check("#diarize")
    page.fill("#num-speakers", "3")
    page.set_input_files("#file-input", str(meeting))
    row = _row(page, meeting.name)
    row.locator(".job-open").click()  # opened at once: live text first, then the labelled one
    expect(row).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
    job_id = row.get_attribute("data-id")
    job = http.get(f"/v1/jobs/{job_id}").json()
    labels = [s["label"] for s in job["speakers"]]
    assert labels == ["A", "B", "C"]  # the page asked for labels, and for three
    verbose = http.get(
        f"/v1/jobs/{job_id}/result",
        params={"response_format": "verbose_json", "timestamp_granularities[]": "segment"},
    ).json()
    said = [s["speaker"] for s in verbose["segments"]]

    segments = page.locator("#transcript .seg")
    expect(segments).to_have_count(len(said))
    assert page.locator("#transcript .seg .spk").all_text_contents() == said
    expect(page.locator("#speakers")).to_be_visible()
    expect(page.locator("#speaker-chips .spk-chip")).to_have_text(labels)
    light = _check_colours(page, set(labels))

    # rename A from the keyboard: its name in the text opens the dialog
    first_a = page.locator("#transcript .spk[data-label='A']").first
    first_a.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#speaker-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#speaker-name")).to_be_focused()
    page.fill("#speaker-name", "Анна\u200b")  # not printable: the server refuses it
    page.keyboard.press("Enter")
    expect(page.locator("#speaker-error")).to_contain_text("This name cannot be used")
    expect(dialog).to_be_visible()
    page.fill("#speaker-name", "Анна")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(first_a).to_be_focused()  # back where the person was
    names = [{"A": "Анна"}.get(label, label) for label in said]
    expect(page.locator("#transcript .seg .spk")).to_have_text(names)
    expect(page.locator("#speaker-chips .spk-chip")).to_have_text(["Анна", "B", "C"])
    assert http.get(f"/v1/jobs/{job_id}").json()["speakers"][0] == {"label": "A", "name": "Анна"}
    assert _check_colours(page, set(labels)) == light  # a new name keeps its colour

    # a downloaded SRT says the new name, exactly as the server's result does
    with page.expect_download() as download:
        page.click(".dl[data-format='srt']")
    saved = Path(download.value.path()).read_text(encoding="utf-8")
    assert "Анна: " in saved
    assert saved == http.get(f"/v1/jobs/{job_id}/result", params={"response_format": "srt"}).text

    # show only B: press the toggles of the others
    page.locator("#speaker-chips .spk-chip", has_text="Анна").click()
    page.locator("#speaker-chips .spk-chip", has_text="C").press("Space")
    expect(page.locator("#speaker-chips .spk-chip[aria-pressed='true']")).to_have_text(["B"])
    expect(page.locator("#transcript .seg:visible")).to_have_count(said.count("B"))
    expect(page.locator("#transcript .seg:visible .spk")).to_have_text(["B"] * said.count("B"))
    page.locator("#speaker-chips .spk-chip", has_text="C").click()
    expect(page.locator("#transcript .seg:visible")).to_have_count(
        said.count("B") + said.count("C")
    )
    assert session.errors == []

    # the same job in Russian, dark, on a phone: distinct readable colours, nothing too wide
    phone = session_factory(locale="ru-RU", color_scheme="dark", viewport=PHONE)
    other = phone.open(f"{speakers_server.url}/#job={job_id}")
    expect(other.locator("#speakers-heading")).to_have_text("Говорящие")
    expect(other.locator("#transcript .seg .spk")).to_have_text(names)
    dark = _check_colours(other, set(labels))
    assert dark != light
    assert other.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert phone.errors == []


@pytest.mark.parametrize(("lang", "expected"), [("en", "from 1 to 32"), ("ru", "от 1 до 32")])
def test_a_wrong_speaker_count_is_explained_next_to_the_file(
    speakers_server: Server, session_factory: Any, corpus_dir: Path, lang: str, expected: str
) -> None:
    page = session_factory(locale=lang).open(speakers_server.url + "/")
    page.check("#diarize")
    page.fill("#num-speakers", "40")
    page.set_input_files("#file-input", str(corpus_dir / SPEECH))
    row = page.locator("#uploads li.upload", has_text=Path(SPEECH).name)
    expect(row.locator(".error")).to_contain_text(expected)
    refused = [s for s in speakers_server.seen("POST", "/v1/jobs") if s.status == 400]
    assert refused  # the server's answer, said in the page's words
    page.uncheck("#diarize")  # the retry sends what was chosen for the file, not the form now
    row.get_by_role("button", name=re.compile("Try again|Повторить")).click()
    wait_for(
        lambda: (
            len([s for s in speakers_server.seen("POST", "/v1/jobs") if s.status == 400])
            == len(refused) + 1
        ),
        "the retry to be refused for the same count",
    )
    expect(row.locator(".error")).to_contain_text(expected)


# -- keywords at upload -------------------------------------------------------------------

#: A phrase in the fixture model's letters: boosted this hard it is written into the random
#: model's text (``tests/test_keywords_api.py`` shows a weak boost is not).
KEYWORD = "саш"


def test_keywords_typed_at_upload_are_kept_with_the_job_and_heard(
    jobs_server: Server, session_factory: Any, corpus_dir: Path, tmp_path: Path
) -> None:
    session = session_factory(locale="ru-RU")
    page = session.open(jobs_server.url + "/")
    expect(page.locator("label[for='keywords']")).to_have_text(
        "Имена и термины, которые нужно узнать (необязательно)"
    )
    page.fill("#keywords", f"Сбербанк, {KEYWORD}:9\n")
    audio = tmp_path / "keywords-call.wav"  # a name no other test's job has
    audio.write_bytes((corpus_dir / SPEECH).read_bytes())
    page.set_input_files("#file-input", str(audio))
    row = _row(page, audio.name)
    expect(row).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
    job_id = row.get_attribute("data-id") or ""
    stored = jobs_server.app.state.jobs.service.get(job_id)
    assert stored.options.keywords == (("Сбербанк", None), (KEYWORD, 9.0))

    http = httpx.Client(base_url=jobs_server.url, timeout=60)
    with audio.open("rb") as fh:  # the same file, no keywords: the phrase is not in it
        plain = http.post("/v1/audio/transcriptions", files={"file": fh}).json()["text"]
    text = http.get(f"/v1/jobs/{job_id}/result", params={"response_format": "text"}).text
    assert KEYWORD not in plain.split(), plain
    assert KEYWORD in text.split(), text
    row.locator(".job-open").click()
    expect(page.locator("#transcript")).to_contain_text(KEYWORD)
    assert session.errors == []


@pytest.mark.parametrize(("lang", "expected"), [("en", "A name or term"), ("ru", "Имя или термин")])
def test_a_keyword_the_model_cannot_write_is_explained_next_to_the_file(
    jobs_server: Server, session_factory: Any, corpus_dir: Path, lang: str, expected: str
) -> None:
    page = session_factory(locale=lang).open(jobs_server.url + "/")
    page.fill("#keywords", "Сбербанк, Moscow")
    page.set_input_files("#file-input", str(corpus_dir / SPEECH))
    row = page.locator("#uploads li.upload", has_text=Path(SPEECH).name)
    expect(row.locator(".error")).to_contain_text(expected)
    expect(row.locator(".error")).to_contain_text("'Moscow'")  # the server's words name it
