"""Live transcription latency over ``/v1/realtime`` (reported, not asserted).

Starts ``gigaam-api serve`` in a child process (full-size random-weight v3_ctc, int8, by
default) and streams speech to it **in real time** (100 ms appends of 24 kHz PCM, as a
microphone would) over plain WebSockets, with ``server_vad``:

* **alone** — one session, several ~3 s turns (``pisets/test_sound_ru.wav``, 3.2 s, then 1 s
  of silence): the time from ``speech_stopped`` to ``…transcription.completed`` as the client
  sees them, and the interval between interim ``delta`` events of a longer turn (11.3 s);
* **loaded** — the same while a 1 h durable job runs and 4 live sessions stream at once;
* **sixteen** — 16 sessions at once, each two turns: every final compared with what
  ``POST /v1/audio/transcriptions`` answers for that turn's audio (correctness, not speed).

The CPU's model name and flags and the load average are printed with the figures (the box is
shared: load from other work shifts them).

Usage::

    .venv/bin/python benchmarks/realtime.py              # full-size v3_ctc, int8
    .venv/bin/python benchmarks/realtime.py --golden     # the tiny golden fixture (quick check)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GIGAAM_SHARED_DIR", ROOT.parent / "shared"))
CACHE = ROOT / "benchmarks" / ".cache"
SPEECH = SHARED / "corpus" / "pisets" / "test_sound_ru.wav"  # 3.2 s
LONGER = SHARED / "corpus" / "pisets" / "mono_sound.wav"  # 11.3 s
RATE = 24000
CHUNK_S = 0.1
COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"

sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from random_checkpoint import cached_checkpoint  # noqa: E402
from serving import free_port, start_server  # noqa: E402

from tests.realtime_client import pcm_at, silence, turn_audio, wav_bytes  # noqa: E402


@dataclass
class Run:
    """What one live session saw: each event with the moment it arrived."""

    sent: bytes
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def latencies(self) -> list[float]:
        stopped = {e["item_id"]: t for t, e in self.events if e["type"].endswith("speech_stopped")}
        return [t - stopped[e["item_id"]] for t, e in self.events if e["type"] == COMPLETED]

    def delta_intervals(self) -> list[float]:
        times: dict[str, list[float]] = {}
        for t, e in self.events:
            if e["type"] == DELTA:
                times.setdefault(e["item_id"], []).append(t)
        return [b - a for ts in times.values() for a, b in itertools.pairwise(ts)]

    def finals(self) -> list[tuple[int, int, str]]:
        starts = {
            e["item_id"]: e["audio_start_ms"] for _, e in self.events if "started" in e["type"]
        }
        ends = {e["item_id"]: e["audio_end_ms"] for _, e in self.events if "stopped" in e["type"]}
        return [
            (starts[e["item_id"]], ends[e["item_id"]], e["transcript"])
            for _, e in self.events
            if e["type"] == COMPLETED
        ]


async def stream(url: str, sent: bytes, turns: int) -> Run:
    """Send ``sent`` in real time; read events until ``turns`` finals arrived."""
    run = Run(sent)
    step = int(RATE * CHUNK_S) * 2
    async with connect(url, max_size=2**24) as ws:

        async def receive() -> None:
            done = 0
            async for message in ws:
                event = json.loads(message)
                run.events.append((time.perf_counter(), event))
                if event["type"] == "error":
                    raise RuntimeError(event)
                done += event["type"] == COMPLETED
                if done == turns:
                    return

        reader = asyncio.create_task(receive())
        started = time.perf_counter()
        for index, at in enumerate(range(0, len(sent), step)):
            piece = base64.b64encode(sent[at : at + step]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": piece}))
            await asyncio.sleep(max(0.0, started + (index + 1) * CHUNK_S - time.perf_counter()))
        await asyncio.wait_for(reader, 300)
    return run


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    p90 = sorted(values)[int(0.9 * (len(values) - 1))]
    return (
        f"median {statistics.median(values):.3f} s, p90 {p90:.3f} s, "
        f"best {min(values):.3f} s, worst {max(values):.3f} s (n={len(values)})"
    )


def http_text(base: str, wav: bytes) -> str:
    response = httpx.post(
        f"{base}/v1/audio/transcriptions", files={"file": ("t.wav", wav)}, timeout=300
    )
    response.raise_for_status()
    return str(response.json()["text"])


def long_wav(path: Path, seconds: float, speech: bytes) -> Path:
    """``seconds`` of 24 kHz speech (the corpus clip tiled with pauses), for the job."""
    piece = speech + silence(0.7, RATE)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        total = int(seconds * RATE) * 2
        written = 0
        while written < total:
            chunk = piece[: total - written]
            out.writeframes(chunk)
            written += len(chunk)
    return path


def cpu_description() -> str:
    model, flags = "?", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "fma", "amx_int8")
                flags = " ".join(f for f in line.split(":", 1)[1].split() if f in wanted)
    except OSError:
        pass
    return f"{model}; {os.cpu_count()} CPUs; flags of note: {flags or 'none'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden", action="store_true", help="the tiny golden fixture")
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--job-minutes", type=float, default=60.0)
    parser.add_argument(
        "--parts", default="alone,loaded,sixteen", help="which of alone, loaded, sixteen to run"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gigaam-bench-live-"))
    speech = pcm_at(SPEECH, RATE, work)
    longer = pcm_at(LONGER, RATE, work)
    checkpoint = (
        SHARED / "golden" / "v3_ctc" / "v3_ctc.ckpt"
        if args.golden
        else cached_checkpoint(SHARED, CACHE)
    )
    port = free_port()
    env = {
        "CHECKPOINT_PATH": str(checkpoint),
        "MODELS_DIR": str(work / "models") if args.golden else str(CACHE / "models"),
        "QUANTIZE_INT8": "false" if args.golden else "true",
        "NUM_THREADS": str(args.threads),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "JOBS_DIR": str(work / "jobs"),
        "LOG_LEVEL": "WARNING",
    }
    base = f"http://127.0.0.1:{port}"
    url = base.replace("http", "ws") + "/v1/realtime?intent=transcription"
    turn = speech + silence(1.0, RATE)
    print(f"cpu: {cpu_description()}")
    server = start_server(env, port, new_session=True)
    try:
        http_text(base, wav_bytes(turn, RATE))  # warm-up
        parts = args.parts.split(",")
        if "alone" in parts:
            alone_part(base, url, turn, longer, args.turns)
        if "loaded" in parts:
            loaded_part(base, url, turn, longer, speech, work, args)
        if "sixteen" in parts:
            sixteen_part(base, url, speech)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    model = "golden v3_ctc fixture" if args.golden else "full-size v3_ctc (random weights), int8"
    print(
        f"\n{model}, NUM_THREADS={args.threads}, 100 ms appends in real time, server_vad defaults"
    )


def metrics(base: str) -> dict[str, float]:
    """The live metrics of the server now (counters and the final-latency histogram)."""
    out: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics", timeout=60).text.splitlines():
        if line.startswith("gigaam_live_") and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def server_side(before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    ok = delta('gigaam_live_recognitions_total{kind="interim",outcome="ok"}')
    skipped = delta('gigaam_live_recognitions_total{kind="interim",outcome="skipped"}')
    count = delta("gigaam_live_final_seconds_count")
    mean = delta("gigaam_live_final_seconds_sum") / count if count else 0.0
    return (
        f"server side: {ok:.0f} interim runs ({ok / seconds:.2f}/s of audio streamed), "
        f"{skipped:.0f} skipped; turn end -> final text mean {mean:.3f} s over {count:.0f}"
    )


def http_baseline(base: str, wav: bytes, runs: int = 5) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        http_text(base, wav)
        times.append(time.perf_counter() - started)
    return times


def load_text() -> str:
    load = os.getloadavg()
    return f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def alone_part(base: str, url: str, turn: bytes, longer: bytes, turns: int) -> None:
    print(f"\nalone ({load_text()})")
    about = wav_bytes(turn[: len(turn) - RATE], RATE)  # the turn as the VAD cuts it, about
    print(f"  HTTP POST of the same turn (baseline):  {summary(http_baseline(base, about))}")
    before = metrics(base)
    alone = asyncio.run(stream(url, turn * turns, turns))
    print(f"  speech_stopped -> completed, ~3 s turn: {summary(alone.latencies())}")
    print(f"  {server_side(before, metrics(base), len(turn) * turns / 2 / RATE)}")
    before = metrics(base)
    interim = asyncio.run(stream(url, longer + silence(1.0, RATE), 1))
    print(f"  interim delta interval, 11.3 s turn:    {summary(interim.delta_intervals())}")
    print(f"  {server_side(before, metrics(base), len(longer) / 2 / RATE)}")


def loaded_part(
    base: str, url: str, turn: bytes, longer: bytes, speech: bytes, work: Path, args: Any
) -> None:
    job_wav = long_wav(work / "hour.wav", args.job_minutes * 60, speech)
    with job_wav.open("rb") as fh:
        job = httpx.post(f"{base}/v1/jobs", files={"file": fh}, timeout=600).json()["id"]
    while httpx.get(f"{base}/v1/jobs/{job}").json()["processed_seconds"] <= 0:
        time.sleep(0.5)  # until the job is being transcribed

    async def four() -> list[Run]:
        sessions = (stream(url, turn * args.turns, args.turns) for _ in range(4))
        return list(await asyncio.gather(*sessions))

    print(f"\nwith a {args.job_minutes:g} min job running and 4 live sessions ({load_text()})")
    before = metrics(base)
    loaded = asyncio.run(four())
    latencies = [x for r in loaded for x in r.latencies()]
    print(f"  speech_stopped -> completed, ~3 s turn: {summary(latencies)}")
    print(f"  {server_side(before, metrics(base), 4 * len(turn) * args.turns / 2 / RATE)}")
    before = metrics(base)
    interim = asyncio.run(stream(url, longer + silence(1.0, RATE), 1))
    print(f"  interim delta interval, 11.3 s turn:    {summary(interim.delta_intervals())}")
    print(f"  {server_side(before, metrics(base), len(longer) / 2 / RATE)}")
    status = httpx.get(f"{base}/v1/jobs/{job}").json()
    print(f"  the job meanwhile: {status['processed_seconds']:.0f} s transcribed")
    httpx.post(f"{base}/v1/jobs/{job}/cancel", timeout=60)


def sixteen_part(base: str, url: str, speech: bytes) -> None:
    sent = speech + silence(1.0, RATE) + speech[: RATE * 4] + silence(1.0, RATE)

    async def sixteen() -> list[Run]:
        return list(await asyncio.gather(*(stream(url, sent, 2) for _ in range(16))))

    print(f"\n16 sessions at once ({load_text()})")
    runs = asyncio.run(sixteen())
    expected: dict[tuple[int, int], str] = {}
    wrong = 0
    for run in runs:
        for start, end, text in run.finals():
            if (start, end) not in expected:
                audio = turn_audio(run.sent, RATE, start, end)
                expected[start, end] = http_text(base, wav_bytes(audio, RATE))
            wrong += text != expected[start, end]
    total = sum(len(r.finals()) for r in runs)
    print(f"  {total} finals, {total - wrong} equal to the HTTP text for the same audio")
    print(f"  speech_stopped -> completed: {summary([x for r in runs for x in r.latencies()])}")


if __name__ == "__main__":
    main()
