"""Screenshots of the web page's main states, from the same headless Chromium the tests use.

    .venv/bin/python scripts/screenshots.py [--out screenshots] [--docs]
        [--checkpoint PATH] [--audio FILE ...]

Starts the real server on loopback (default: the tiny golden checkpoint from ../shared, whose
random weights give nonsense text; pass ``--checkpoint`` with real weights for a real
transcript) with an API key set, and shoots, in English and Russian, on a desktop and a phone
viewport: the key prompt, the empty page, the job list with a finished recording open (when
the server has the job API), a conversation of three real voices with its speakers labelled
(Resemblyzer's trained weights, as in the tests; one speaker renamed), a file that is not
audio, and a live recording (Chromium's fake microphone playing ``--live-audio``: the live text
while speaking, then the saved job). Files go to ``--out`` (git-ignored); ``--docs`` also copies
the English desktop job view to ``docs/web-page.png``, the labelled one to
``docs/web-page-speakers.png`` and the live one to ``docs/web-page-live.png`` for the README.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from gigaam_api.config import Settings  # noqa: E402
from gigaam_api.server import create_app  # noqa: E402
from tests.api_server import real_model_settings, serve  # noqa: E402
from tests.browser import DESKTOP, PHONE, fake_microphone, launch, wait_until  # noqa: E402
from tests.conftest import CORPUS_DIR, GOLDEN_DIR  # noqa: E402
from tests.media import encode  # noqa: E402
from tests.speakers_conversations import build_conversations  # noqa: E402
from tests.speakers_data import resemblyzer_wheel  # noqa: E402

KEY = "screenshot-key"
# Uploaded in this order, so the last (several segments long) is the newest, opened one.
DEFAULT_AUDIO = [
    CORPUS_DIR / "golos" / "golos_001ce26c.wav",
    CORPUS_DIR / "longform" / "longform_espeak_ru.wav",
]
TIMEOUT_MS = 180_000
#: What the fake microphone says (looped): sentences with pauses, so turns end live.
LIVE_AUDIO = CORPUS_DIR / "longform" / "longform_espeak_ru.wav"
MEETING = "meeting.flac"


def _settings(work: Path, checkpoint: Path | None) -> Settings:
    overrides: dict[str, object] = {"api_key": KEY, "diarization_model": str(resemblyzer_wheel())}
    if "jobs_dir" in Settings.model_fields:
        overrides["jobs_dir"] = work / "jobs"
    settings = real_model_settings(GOLDEN_DIR, work / "models", **overrides)
    if checkpoint is not None:
        settings = settings.model_copy(update={"checkpoint_path": checkpoint})
    return settings


def _ready(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.wait_for_load_state("networkidle")


def _shoot(page: Page, out: Path, name: str) -> Path:
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(path)
    return path


def _meeting(work: Path) -> Path:
    """Three real voices taking turns (the tests' conversation set), as a FLAC file."""
    conversation = next(c for c in build_conversations() if len(c.speakers) == 3)
    samples = (np.clip(conversation.audio, -1, 1) * 32767).astype(np.int16)
    return encode(work / MEETING, samples)


def _post(url: str, audio: Path, data: dict[str, str] | None = None) -> str:
    with audio.open("rb") as handle:
        response = httpx.post(
            f"{url}/v1/jobs",
            headers={"Authorization": f"Bearer {KEY}"},
            files={"file": (audio.name, handle)},
            data=data or {},
            timeout=60,
        )
    response.raise_for_status()
    return str(response.json()["id"])


def _rename(url: str, job_id: str) -> None:
    """Name the first speaker once the job is done, as a person would on the page."""
    headers = {"Authorization": f"Bearer {KEY}"}
    for _ in range(TIMEOUT_MS // 500):
        if httpx.get(f"{url}/v1/jobs/{job_id}", headers=headers).json()["status"] == "completed":
            break
        time.sleep(0.5)
    body = {"speakers": {"A": "Анна"}}
    httpx.patch(f"{url}/v1/jobs/{job_id}", headers=headers, json=body).raise_for_status()


def _live_shots(browser: Any, url: str, out: Path) -> Path | None:
    """Record from the fake microphone: the live text (interim words greyed) while speaking,
    then Stop and the saved job. Last, since each recording adds a job to the list. Returns
    the English desktop shot of the live text."""
    live_view = None
    for lang in ("en", "ru"):
        for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            context = browser.new_context(locale=lang, viewport=viewport)
            context.set_default_timeout(TIMEOUT_MS)
            context.grant_permissions(["microphone"], origin=url)
            context.add_init_script(f"localStorage.setItem('gigaam-api-key', {KEY!r})")
            page = context.new_page()
            prefix = f"{lang}-{label}"
            _ready(page, url + "/")
            page.click("#record")
            wait_until(page, "document.querySelectorAll('#live-text .final').length >= 3")
            wait_until(page, "document.querySelector('#live-text .interim') !== null")
            shot = _shoot(page, out, f"{prefix}-6-live")
            if lang == "en" and label == "desktop":
                live_view = shot
            page.click("#record")
            expect(page.locator("#transcript .seg").first).to_be_visible()
            _shoot(page, out, f"{prefix}-7-live-saved")
            context.close()
    return live_view


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "screenshots")
    parser.add_argument("--docs", action="store_true", help="also write docs/web-page.png")
    parser.add_argument("--checkpoint", type=Path, help="a real checkpoint for real text")
    parser.add_argument("--audio", type=Path, nargs="*", default=DEFAULT_AUDIO)
    parser.add_argument("--live-audio", type=Path, default=LIVE_AUDIO, help="a WAV to speak")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        app = create_app(_settings(work, args.checkpoint), tmp_dir=work)
        with serve(app) as url, sync_playwright() as playwright:
            assert app.state.ctx.service.wait_loaded(TIMEOUT_MS / 1000)
            probe = httpx.get(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {KEY}"})
            has_jobs = probe.status_code != 404
            if not has_jobs:
                print("the server has no job API: only the key prompt and the empty page")
            if has_jobs:  # the same recordings in every shot, uploaded once (oldest first)
                meeting = _post(url, _meeting(work), {"diarize": "true", "num_speakers": "3"})
                for audio in args.audio:
                    _post(url, audio)
                _rename(url, meeting)
            browser = launch(playwright, fake_microphone(args.live_audio.resolve()))
            job_view: Path | None = None
            speakers_view: Path | None = None
            for lang in ("en", "ru"):
                for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                    context = browser.new_context(locale=lang, viewport=viewport)
                    context.set_default_timeout(TIMEOUT_MS)
                    page = context.new_page()
                    prefix = f"{lang}-{label}"
                    _ready(page, url + "/")
                    _shoot(page, args.out, f"{prefix}-1-key-prompt")
                    page.fill("#key-input", KEY)
                    page.click("#key-save")
                    expect(page.locator("#key-dialog")).to_be_hidden()
                    page.wait_for_load_state("networkidle")
                    if not has_jobs:
                        _shoot(page, args.out, f"{prefix}-2-page")
                        context.close()
                        continue
                    rows = page.locator("#jobs li.job[data-status='completed']")
                    expect(rows).to_have_count(len(args.audio) + 1)
                    rows.first.locator(".job-open").click()
                    expect(page.locator("#transcript .seg").first).to_be_visible()
                    wait_until(page, "document.getElementById('player').readyState >= 1")
                    words = page.locator("#transcript .w")
                    if words.count() > 6:
                        words.nth(6).click()  # a seek: the current word is highlighted
                    shot = _shoot(page, args.out, f"{prefix}-2-job")
                    if lang == "en" and label == "desktop":
                        job_view = shot
                    page.fill("#search", (words.first.text_content() or "")[:3])
                    _shoot(page, args.out, f"{prefix}-3-search")
                    page.set_input_files(
                        "#file-input",
                        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hi\n"}],
                    )
                    expect(page.locator("li.job .error").first).to_be_visible()
                    _shoot(page, args.out, f"{prefix}-4-not-audio")
                    page.fill("#search", "")
                    rows.filter(has_text=MEETING).locator(".job-open").click()
                    expect(page.locator("#transcript .spk").first).to_be_visible()
                    shot = _shoot(page, args.out, f"{prefix}-5-speakers")
                    if lang == "en" and label == "desktop":
                        speakers_view = shot
                    context.close()
            live_view = _live_shots(browser, url, args.out) if has_jobs else None
            browser.close()
    if args.docs:
        if job_view is None or speakers_view is None or live_view is None:
            print("no job view was shot (no job API): docs/web-page*.png left as they are")
            return 1
        for shot, name in (
            (job_view, "web-page.png"),
            (speakers_view, "web-page-speakers.png"),
            (live_view, "web-page-live.png"),
        ):
            target = REPO_ROOT / "docs" / name
            shutil.copyfile(shot, target)
            print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
