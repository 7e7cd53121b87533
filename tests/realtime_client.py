"""A plain WebSocket client of the live door (``websockets``' sync client) and its audio.

The tests drive ``/v1/realtime`` with it as any program would: JSON events over a real
socket to a real server. ``LiveClient.events_until`` reads server events until one matches.
"""

from __future__ import annotations

import base64
import io
import json
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from tests.wyoming_client import pcm_of, resampled_wav

TIMEOUT = 60.0
Event = dict[str, Any]


class LiveClient:
    def __init__(self, socket: Connection) -> None:
        self.socket = socket
        self.received: list[Event] = []

    def send(self, event: Event) -> None:
        self.socket.send(json.dumps(event))

    def send_raw(self, data: str | bytes) -> None:
        self.socket.send(data)

    def append(self, pcm: bytes, *, chunk: int = 9600) -> None:
        for start in range(0, len(pcm), chunk):
            piece = pcm[start : start + chunk]
            self.send(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(piece).decode()}
            )

    def next(self, timeout: float = TIMEOUT) -> Event:
        event: Event = json.loads(self.socket.recv(timeout))
        self.received.append(event)
        return event

    def events_until(self, done: Callable[[Event], bool], timeout: float = TIMEOUT) -> list[Event]:
        """Events up to and including the first for which ``done`` is true."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            event = self.next(max(deadline - time.monotonic(), 0.01))
            out.append(event)
            if done(event):
                return out

    def until_type(self, kind: str, timeout: float = TIMEOUT) -> list[Event]:
        return self.events_until(lambda e: e["type"] == kind, timeout)


def ws_url(base: str, path: str = "/v1/realtime?intent=transcription") -> str:
    return base.replace("http://", "ws://") + path


@contextmanager
def live(
    base: str,
    *,
    path: str = "/v1/realtime?intent=transcription",
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
    origin: str | None = None,
    max_size: int | None = 2**24,
) -> Iterator[LiveClient]:
    with connect(
        ws_url(base, path),
        additional_headers=headers,
        subprotocols=subprotocols,  # type: ignore[arg-type]
        origin=origin,  # type: ignore[arg-type]
        open_timeout=TIMEOUT,
        max_size=max_size,
    ) as socket:
        yield LiveClient(socket)


def pcm_at(source: Path, rate: int, tmp: Path) -> bytes:
    """``source`` as 16-bit mono PCM at ``rate`` Hz (libswresample, as FFmpeg does)."""
    return pcm_of(resampled_wav(source, tmp / f"{source.stem}-{rate}.wav", rate, 1))[3]


def silence(seconds: float, rate: int) -> bytes:
    return b"\0\0" * int(seconds * rate)


def wav_bytes(pcm: bytes, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buffer.getvalue()


def http_text(base: str, wav: bytes, **fields: str) -> str:
    """What ``POST /v1/audio/transcriptions`` answers for ``wav``."""
    response = httpx.post(
        f"{base}/v1/audio/transcriptions",
        files={"file": ("turn.wav", wav, "audio/wav")},
        data=fields,
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    text: str = response.json()["text"]
    return text


def turn_audio(pcm: bytes, rate: int, start_ms: int, end_ms: int) -> bytes:
    """The bytes of ``[start_ms, end_ms)`` of 16-bit mono ``pcm`` (the door's own cut)."""
    return pcm[start_ms * rate // 1000 * 2 : end_ms * rate // 1000 * 2]
