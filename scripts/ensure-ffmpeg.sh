#!/usr/bin/env bash
# Install ffmpeg if it is missing: apt-get on Debian/Ubuntu (as root, or via sudo), Homebrew
# on macOS; otherwise say exactly what to do. The server cannot decode audio without it.
set -euo pipefail
if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then
    exit 0
fi
echo "ffmpeg not found; installing it..." >&2
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
            echo "error: ffmpeg is missing; run 'apt-get install -y ffmpeg' as root" >&2; exit 1
        fi
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
elif command -v brew >/dev/null 2>&1; then
    brew install ffmpeg
else
    echo "error: ffmpeg is missing; install it with your package manager (it must be on PATH)" >&2
    exit 1
fi
command -v ffmpeg >/dev/null 2>&1 || { echo "error: ffmpeg installation failed" >&2; exit 1; }
