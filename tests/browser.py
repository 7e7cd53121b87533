"""Debian's chromium under Playwright, for the web page's tests and ``scripts/screenshots.py``.

Browsers cannot be downloaded here (``playwright install`` would fetch one), so we launch the
system package that ``scripts/ensure-chromium.sh`` installs, headless, with everything that
would phone home switched off: the tests assert that the page itself makes no request outside
the server, and a browser's own update or sync traffic would only blur that.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

REPO_ROOT = Path(__file__).resolve().parent.parent
ENSURE_CHROMIUM = REPO_ROOT / "scripts" / "ensure-chromium.sh"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

#: Viewports of the screenshots and the layout checks: a laptop and a phone.
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    """Path of the system chromium, installing Debian's package first when it is missing."""
    done = subprocess.run(
        ["bash", str(ENSURE_CHROMIUM)], check=True, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[-1]


def fake_microphone(wav: Path) -> list[str]:
    """Chromium's arguments for a microphone that plays ``wav`` (looped) instead of a device.

    The permission prompt is left alone: a context gets the microphone with
    ``grant_permissions(["microphone"])`` and is refused it otherwise, like a person saying no.
    """
    return ["--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}"]


def launch(playwright: Playwright, extra_args: list[str] | None = None) -> Browser:
    return playwright.chromium.launch(
        executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS + (extra_args or [])
    )


def wait_until(page: Page, expression: str, timeout_s: float = 120.0) -> None:
    """Poll a JavaScript expression until it is truthy.

    ``page.wait_for_function`` compiles its predicate inside the page with ``eval``, which the
    page's Content-Security-Policy (rightly) forbids; ``page.evaluate`` runs through the
    DevTools protocol instead, so polling it works under the real CSP.
    """
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout_s:g} s: {expression}")
        page.wait_for_timeout(100)
