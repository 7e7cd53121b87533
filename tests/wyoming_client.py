"""Test helpers for the Wyoming door: the library's client (what Home Assistant uses) and a raw
socket for the things a well-behaved client cannot send."""

from __future__ import annotations

import asyncio
import json
import socket
import wave
from dataclasses import dataclass, field
from pathlib import Path

import av
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

TIMEOUT = 120.0
#: Samples per audio-chunk, as Home Assistant and the Wyoming satellites send them.
SAMPLES_PER_CHUNK = 1024


@dataclass
class Reply:
    """Every event the server sent for one utterance, up to ``transcript-stop`` / ``error``."""

    events: list[Event] = field(default_factory=list)

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    @property
    def text(self) -> str:
        found = [e for e in self.events if e.type == "transcript"]
        assert len(found) == 1, self.types
        text: str = found[0].data["text"]
        return text

    @property
    def error(self) -> Event | None:
        return next((e for e in self.events if e.type == "error"), None)


def pcm_of(path: Path) -> tuple[int, int, int, bytes]:
    """(rate, width, channels, frames) of a PCM WAV."""
    with wave.open(str(path), "rb") as wav:
        return (
            wav.getframerate(),
            wav.getsampwidth(),
            wav.getnchannels(),
            wav.readframes(wav.getnframes()),
        )


def resampled_wav(source: Path, target: Path, rate: int, channels: int) -> Path:
    """``source`` converted to ``rate`` Hz, ``channels`` channels, 16-bit PCM (by PyAV's
    libswresample, the resampler FFmpeg itself uses)."""
    layout = {1: "mono", 2: "stereo"}[channels]
    resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
    with av.open(str(source)) as container:
        frames = [
            out.to_ndarray().tobytes()
            for frame in container.decode(audio=0)
            for out in resampler.resample(frame)
        ]
    frames += [out.to_ndarray().tobytes() for out in resampler.resample(None)]
    with wave.open(str(target), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"".join(frames))
    return target


async def utterance_events(
    path: Path, samples_per_chunk: int = SAMPLES_PER_CHUNK, language: str = "ru"
) -> list[Event]:
    rate, width, channels, frames = pcm_of(path)
    step = samples_per_chunk * width * channels
    events = [
        Transcribe(language=language).event(),
        AudioStart(rate=rate, width=width, channels=channels).event(),
    ]
    for at in range(0, len(frames), step):
        chunk = AudioChunk(rate=rate, width=width, channels=channels, audio=frames[at : at + step])
        events.append(chunk.event())
    events.append(AudioStop().event())
    return events


async def read_reply(client: AsyncTcpClient, streaming: bool = True) -> Reply:
    reply = Reply()
    last = "transcript-stop" if streaming else "transcript"
    while True:
        event = await asyncio.wait_for(client.read_event(), TIMEOUT)
        assert event is not None, f"connection closed after {reply.types}"
        reply.events.append(event)
        if event.type == "error":
            # a failed utterance also ends the connection (Home Assistant ignores errors)
            assert await asyncio.wait_for(client.read_event(), TIMEOUT) is None
            return reply
        if event.type == last:
            return reply


async def transcribe(port: int, path: Path, language: str = "ru") -> Reply:
    """Send ``path`` as one utterance the way Home Assistant does; the server's reply."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for event in await utterance_events(path, language=language):
            await client.write_event(event)
        return await read_reply(client)


async def describe(port: int) -> Event:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Event(type="describe"))
        event = await asyncio.wait_for(client.read_event(), TIMEOUT)
        assert isinstance(event, Event)
        return event


def raw_event(
    event_type: str, data: dict[str, object] | None = None, payload: bytes = b"", **header: object
) -> bytes:
    """One event framed by hand (``header`` may override or add fields, e.g. a lying length)."""
    head: dict[str, object] = {"type": event_type}
    if data is not None:
        head["data"] = data
    if payload:
        head["payload_length"] = len(payload)
    head.update(header)
    return json.dumps(head).encode() + b"\n" + payload


def raw_exchange(port: int, sent: bytes, timeout: float = 30.0) -> list[dict[str, object]]:
    """Send bytes, then read event headers until the server closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(sent)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return parse_raw(received)


def parse_raw(received: bytes) -> list[dict[str, object]]:
    """The complete events (headers with data merged) in bytes the server sent."""
    events: list[dict[str, object]] = []
    rest = received
    while b"\n" in rest:
        line, after = rest.split(b"\n", 1)
        head = json.loads(line)
        data = head.get("data") or {}
        length = head.get("data_length") or 0
        payload = head.get("payload_length") or 0
        if len(after) < length + payload:
            break  # the rest has not arrived yet
        if length:
            data.update(json.loads(after[:length]))
        rest = after[length + payload :]
        head["data"] = data
        events.append(head)
    return events
