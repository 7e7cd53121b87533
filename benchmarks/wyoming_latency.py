"""Latency of a ~3 s utterance over Wyoming against the same WAV over HTTP (reported, not asserted).

Starts ``gigaam-api serve`` in a child process with both doors open (HTTP and
``WYOMING_URI``), waits for ``/health``, then alternates, after one warm-up of each:

* **HTTP**: ``POST /v1/audio/transcriptions`` with the WAV (httpx, keep-alive connection),
  timed from the request to the response;
* **Wyoming**: the ``wyoming`` client as Home Assistant uses it: connect, ``transcribe``,
  ``audio-start``, 1024-sample ``audio-chunk``\\ s, ``audio-stop``, read up to ``transcript``.
  Reported twice: from connecting to the transcript with the chunks sent as fast as possible,
  and from ``audio-stop`` to the transcript, which is what a Home Assistant user waits for
  after they stop talking (the audio itself streams in real time before that).

(Not ``benchmarks/wyoming.py``: run as a script, that name would shadow the ``wyoming`` package.)

Usage::

    .venv/bin/python benchmarks/wyoming_latency.py              # tiny golden v3_ctc checkpoint
    .venv/bin/python benchmarks/wyoming_latency.py --full-size  # full-size random v3_ctc, int8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

import httpx
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GIGAAM_SHARED_DIR", ROOT.parent / "shared"))
CACHE = ROOT / "benchmarks" / ".cache"
SPEECH = SHARED / "corpus" / "pisets" / "test_sound_ru.wav"

sys.path.insert(0, str(ROOT / "benchmarks"))
from random_checkpoint import cached_checkpoint  # noqa: E402
from serving import free_port, start_server  # noqa: E402


def http_once(client: httpx.Client, path: Path) -> tuple[float, str]:
    started = time.perf_counter()
    with path.open("rb") as fh:
        response = client.post("/v1/audio/transcriptions", files={"file": (path.name, fh)})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, str(response.json()["text"])


async def wyoming_once(port: int, path: Path) -> tuple[float, float, str]:
    with wave.open(str(path), "rb") as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        frames = wav.readframes(wav.getnframes())
    step = 1024 * width * channels
    started = time.perf_counter()
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="ru").event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        for at in range(0, len(frames), step):
            chunk = AudioChunk(
                rate=rate, width=width, channels=channels, audio=frames[at : at + step]
            )
            await client.write_event(chunk.event())
        stopped = time.perf_counter()
        await client.write_event(AudioStop().event())
        while True:
            event = await client.read_event()
            if event is None:
                raise RuntimeError("the server closed the connection")
            if event.type == "error":
                raise RuntimeError(f"error event: {event.data}")
            if event.type == "transcript":
                done = time.perf_counter()
                return done - started, done - stopped, str(event.data["text"])


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s, best {min(values):.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true", help="full-size random v3_ctc, int8")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--wav", type=Path, default=SPEECH)
    args = parser.parse_args()

    http_port, wyoming_port = free_port(), free_port()
    models = tempfile.mkdtemp(prefix="gigaam-bench-models-")
    checkpoint = (
        cached_checkpoint(SHARED, CACHE)
        if args.full_size
        else SHARED / "golden" / "v3_ctc" / "v3_ctc.ckpt"
    )
    env = {
        "CHECKPOINT_PATH": str(checkpoint),
        "MODELS_DIR": str(CACHE / "models") if args.full_size else models,
        "QUANTIZE_INT8": "true" if args.full_size else "false",
        "NUM_THREADS": str(args.threads),
        "HOST": "127.0.0.1",
        "PORT": str(http_port),
        "WYOMING_URI": f"tcp://127.0.0.1:{wyoming_port}",
        "LOG_LEVEL": "WARNING",
    }
    server = start_server(env, http_port, timeout=600)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=120) as client:
            http_once(client, args.wav)  # warm-up
            asyncio.run(wyoming_once(wyoming_port, args.wav))
            http_times: list[float] = []
            total_times: list[float] = []
            after_stop: list[float] = []
            for _ in range(args.runs):
                elapsed, http_text = http_once(client, args.wav)
                http_times.append(elapsed)
                total, tail, wyoming_text = asyncio.run(wyoming_once(wyoming_port, args.wav))
                total_times.append(total)
                after_stop.append(tail)
                assert wyoming_text == http_text, (wyoming_text, http_text)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    model = "full-size v3_ctc (random weights), int8" if args.full_size else "golden v3_ctc fixture"
    print(f"{model}, {args.threads} threads, {args.wav.name}, {args.runs} runs each")
    print(f"  HTTP POST (request -> response):       {summary(http_times)}")
    print(f"  Wyoming (connect -> transcript):       {summary(total_times)}")
    print(f"  Wyoming (audio-stop -> transcript):    {summary(after_stop)}")
    print("  texts identical over both doors: yes")


if __name__ == "__main__":
    main()
