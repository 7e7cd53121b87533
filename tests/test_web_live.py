"""The page's Record button in a real headless Chromium whose microphone plays a WAV of real
speech (``--use-fake-device-for-media-stream --use-file-for-fake-audio-capture``), against
the real server and its live door: live text appears (interim words greyed, finals in normal
text), Stop keeps the recording as a job that opens like an upload, and the saved job's text
is the live finals the server sent. Also: a wrong key and a refused microphone are said.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, WebSocket, expect, sync_playwright

from gigaam_api.server import create_app
from tests.api_server import real_model_settings, serve
from tests.browser import DESKTOP, PHONE, fake_microphone, launch, wait_until
from tests.conftest import CORPUS_DIR

KEY = "live-page-secret"
TIMEOUT_MS = 120_000
#: The fake microphone: 81 s of Russian sentences with pauses (turns), looped by Chromium.
SPEECH = CORPUS_DIR / "longform" / "longform_espeak_ru.wav"
COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"


def _app(golden_dir: Path, tmp: pytest.TempPathFactory, **overrides: Any) -> FastAPI:
    settings = real_model_settings(
        golden_dir, tmp.mktemp("models"), jobs_dir=tmp.mktemp("jobs"), **overrides
    )
    return create_app(settings, tmp_dir=tmp.mktemp("uploads"))


@pytest.fixture(scope="module")
def url(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = _app(golden_dir, tmp_path_factory)
    with serve(app) as base:
        assert app.state.ctx.service.wait_loaded(60), app.state.ctx.service.error
        yield base


@pytest.fixture(scope="module")
def keyed_url(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = _app(golden_dir, tmp_path_factory, api_key=KEY)
    with serve(app) as base:
        assert app.state.ctx.service.wait_loaded(60), app.state.ctx.service.error
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not SPEECH.is_file():
        pytest.skip(f"audio corpus not found at {CORPUS_DIR}")
    with sync_playwright() as playwright:
        # lan.test: this server under a name that is not localhost, as a phone on the LAN sees it
        resolve = "--host-resolver-rules=MAP lan.test 127.0.0.1"
        chromium = launch(playwright, [*fake_microphone(SPEECH), resolve])
        yield chromium
        chromium.close()


class Frames:
    """The server events the page received over its WebSocket, in order."""

    def __init__(self, page: Page) -> None:
        self.events: list[dict[str, Any]] = []
        self.urls: list[str] = []
        page.on("websocket", self._socket)

    def _socket(self, socket: WebSocket) -> None:
        self.urls.append(socket.url)
        socket.on("framereceived", lambda payload: self.events.append(json.loads(payload)))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("type") == kind]


def _page(browser: Browser, url: str, *, microphone: bool, viewport: dict[str, int]) -> Page:
    context = browser.new_context(locale="en-US", viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    if microphone:
        context.grant_permissions(["microphone"], origin=url)
    return context.new_page()


def _open(page: Page, url: str) -> None:
    page.goto(url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def _color_of(kind: str) -> str:
    """An expression: true once a ``kind`` span of live text is shown, noting its colour."""
    return f"""(() => {{
        const span = document.querySelector('#live-text .{kind}');
        const color = span && getComputedStyle(span).color;
        if (span) window.seenColor = {{ ...window.seenColor, {kind}: color }};
        return span !== null;
    }})()"""


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_record_shows_live_text_and_keeps_the_recording_as_a_job(
    browser: Browser, url: str, viewport: dict[str, int]
) -> None:
    page = _page(browser, url, microphone=True, viewport=viewport)
    frames = Frames(page)
    _open(page, url)
    record = page.locator("#record")
    box = record.bounding_box()
    assert box is not None and box["height"] >= 44  # a touch target on a phone
    record.click()
    expect(record).to_have_text("Stop")
    expect(page.locator("#live")).to_be_visible()
    # interim words greyed while a turn is spoken, then its final in normal text
    # (an interim span turns final when its turn ends: its colour is read in the same step)
    wait_until(page, _color_of("interim"))
    wait_until(page, "document.querySelectorAll('#live-text .final').length >= 2")
    wait_until(page, _color_of("final"))
    assert page.evaluate("window.seenColor.interim") != page.evaluate("window.seenColor.final")
    assert frames.of(DELTA), "the page showed interim text the server never sent"

    record.click()  # Stop: the last turn's final, then the job opens like an upload
    expect(page.locator("#view")).to_be_visible()
    expect(page.locator("#live")).to_be_hidden()
    expect(page.locator("#view-title")).to_contain_text("Recording")
    finished = frames.of("session.finished")
    assert len(finished) == 1 and finished[0]["job"]["status"] == "completed"
    job = finished[0]["job"]
    assert page.evaluate("location.hash") == f"#job={job['id']}"
    assert "save=true" in frames.urls[0] and "intent=transcription" in frames.urls[0]

    finals = [e["transcript"].strip() for e in frames.of(COMPLETED)]
    shown = page.eval_on_selector_all("#live-text .final", "els => els.map(e => e.textContent)")
    assert [s.strip() for s in shown] == [f for f in finals if f]
    result = httpx.get(f"{url}/v1/jobs/{job['id']}/result", timeout=30).json()
    assert result["text"] == " ".join(f for f in finals if f)

    # it is a job like an upload: listed, its text on the page, its audio in the player
    expect(page.locator("#jobs li.job").first).to_contain_text("Recording")
    expect(page.locator("#transcript .seg").first).to_be_visible()
    assert page.locator("#transcript .w").count() > len(finals)  # its words, each highlightable
    wait_until(page, "document.getElementById('player').readyState >= 1")
    expect(page.locator(".dl[data-format='srt']")).to_be_enabled()
    page.context.close()


def test_a_wrong_key_is_said(browser: Browser, keyed_url: str) -> None:
    page = _page(browser, keyed_url, microphone=True, viewport=DESKTOP)
    _open(page, keyed_url)
    page.fill("#key-input", "not-the-key")
    page.click("#key-save")
    expect(page.locator("#key-error")).to_be_visible()  # the page's own check says it first
    page.click("#key-cancel")
    page.click("#record")
    expect(page.locator("#live-error")).to_contain_text("did not accept the API key")
    expect(page.locator("#record")).to_have_text("Record")  # stopped, nothing left running
    page.context.close()


def test_a_refused_microphone_is_said(browser: Browser, url: str) -> None:
    page = _page(browser, url, microphone=False, viewport=DESKTOP)
    frames = Frames(page)
    _open(page, url)
    page.click("#record")
    expect(page.locator("#live-error")).to_contain_text("The microphone is blocked")
    expect(page.locator("#record")).to_have_text("Record")
    assert frames.urls == []  # no session was opened for nothing
    page.context.close()


def test_a_plain_http_page_on_the_lan_says_the_microphone_needs_https(
    browser: Browser, url: str
) -> None:
    lan = url.replace("127.0.0.1", "lan.test")  # http, and not localhost: no secure context
    page = _page(browser, lan, microphone=False, viewport=PHONE)  # (none to grant: insecure)
    frames = Frames(page)
    _open(page, lan)
    assert page.evaluate("window.isSecureContext") is False
    expect(page.locator("#record-note")).to_contain_text("only on a secure page")
    page.click("#record")
    expect(page.locator("#live-error")).to_contain_text("open this server over https")
    assert frames.urls == []
    page.context.close()
