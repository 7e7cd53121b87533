#!/usr/bin/env bash
# Install Debian's chromium if it is missing: the browser tests (tests/test_web_page.py) and
# scripts/screenshots.py drive it through Playwright. Browsers cannot be downloaded by
# `playwright install` here, so the system package is the one browser we use.
# Prints the browser's path on success.
set -euo pipefail
find_browser() {
    for candidate in "${CHROMIUM_PATH:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
    done
    return 1
}
if find_browser; then
    exit 0
fi
echo "chromium not found; installing it..." >&2
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
            echo "error: chromium is missing; run 'apt-get install -y chromium' as root" >&2; exit 1
        fi
    fi
    # Another apt run (a parallel install) may hold the lock: wait for it instead of failing.
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends chromium >&2
else
    echo "error: chromium is missing; install it with your package manager" \
        "(or set CHROMIUM_PATH to a Chromium binary)" >&2
    exit 1
fi
find_browser || { echo "error: chromium installation failed" >&2; exit 1; }
