"""Decoding cost: short MP3 vs WAV through the HTTP API, and 1 h MP3 decode throughput.

    .venv/bin/python benchmarks/decode.py [--hours 1] [--requests 20]

* ``latency``: a real server on loopback (the tiny golden v3_ctc checkpoint, so the model costs
  little and the decoder's share shows) answers the corpus' 3.2 s WAV and the same speech as
  MP3, alternately; median and best wall time per request. The target: the MP3 within 50 ms
  of the WAV.
* ``throughput``: ``decode_pcm`` over ``--hours`` of corpus speech encoded as 64 kb/s MP3
  (made once with PyAV into ``benchmarks/.cache``), in seconds of audio per wall second (best
  of three runs, as for the old decoder).
* ``old``: for comparison only, the decoder this project used before (the ``ffmpeg`` and
  ``ffprobe`` programs, one process each per request), on the same files — run only when
  those programs are on PATH; the runtime does not use them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gigaam_api import audio  # noqa: E402
from gigaam_api.constants import SAMPLE_RATE  # noqa: E402
from gigaam_api.server import create_app  # noqa: E402
from tests.api_server import real_model_settings, serve  # noqa: E402

SHARED = Path(os.environ.get("GIGAAM_SHARED_DIR", ROOT.parent / "shared"))
CACHE = ROOT / "benchmarks" / ".cache"
WAV = SHARED / "corpus" / "pisets" / "test_sound_ru.wav"
MP3 = SHARED / "corpus" / "edge_cases" / "pisets.mp3"
SPEECH = ("longform/longform_mix_dev_ru.wav", "longform/longform_espeak_ru.wav")


def long_mp3(hours: float) -> Path:
    """``hours`` of corpus speech with pauses as 64 kb/s mono MP3, written once."""
    target = CACHE / f"decode_{hours:g}h.mp3"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    parts = [audio.load_audio(SHARED / "corpus" / rel) for rel in SPEECH]
    parts.append(np.zeros(20 * SAMPLE_RATE, dtype=np.int16))
    unit = np.concatenate(parts)
    total = int(hours * 3600 * SAMPLE_RATE)
    tmp = target.with_suffix(".part.mp3")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libmp3lame", rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = 64000
        written = 0
        while written < total:
            piece = unit[: total - written]
            for at in range(0, len(piece), 16384):
                chunk = np.ascontiguousarray(piece[at : at + 16384]).reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
                frame.sample_rate = SAMPLE_RATE
                frame.pts = written + at
                for packet in stream.encode(frame):
                    out.mux(packet)
            written += len(piece)
        for packet in stream.encode(None):
            out.mux(packet)
    tmp.replace(target)
    return target


def throughput(path: Path) -> tuple[float, float]:
    """Seconds of audio and wall seconds for one full decode through ``decode_pcm``."""
    start = time.perf_counter()
    with audio.decode_pcm(path) as reader:
        for _ in reader:
            pass
    return reader.duration, time.perf_counter() - start


def old_decode(path: Path) -> tuple[float, float]:
    """The previous decoder's work for one request: ffprobe, then ffmpeg to s16le on a pipe."""
    start = time.perf_counter()
    subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_entries", "format=format_name:stream="
         "codec_type,codec_name,sample_rate,channels,duration", f"file:{path}"],
        check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", f"file:{path}", "-map", "0:a:0",
         "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1", "pipe:1"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    size = 0
    while chunk := proc.stdout.read(1 << 16):
        size += len(chunk)
    proc.wait()
    return size / 2 / SAMPLE_RATE, time.perf_counter() - start


def latency(requests: int) -> dict[str, list[float]]:
    """Wall seconds per request for the WAV and the MP3 through a real server."""
    times: dict[str, list[float]] = {"wav": [], "mp3": []}
    with tempfile.TemporaryDirectory() as models:
        settings = real_model_settings(SHARED / "golden", Path(models))
        with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=120) as http:
            deadline = time.monotonic() + 300
            while http.get("/health").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            for _ in range(3):  # warm-up: model loaded, decoder worker started
                for path in (WAV, MP3):
                    http.post("/v1/audio/transcriptions", files={"file": path.open("rb")})
            for _ in range(requests):
                for name, path in (("wav", WAV), ("mp3", MP3)):
                    start = time.perf_counter()
                    response = http.post(
                        "/v1/audio/transcriptions", files={"file": path.open("rb")}
                    )
                    times[name].append(time.perf_counter() - start)
                    response.raise_for_status()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    report: dict[str, object] = {"pyav": av.__version__, "ffmpeg_libs": av.ffmpeg_version_info}

    times = latency(args.requests)
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values) * 1000:.0f} ms, "
              f"best {min(values) * 1000:.0f} ms")  # fmt: skip
    gap = statistics.median(times["mp3"]) - statistics.median(times["wav"])
    print(f"mp3 - wav (median): {gap * 1000:.0f} ms (target: within 50 ms)")
    report["latency_ms"] = {k: round(statistics.median(v) * 1000, 1) for k, v in times.items()}

    path = long_mp3(args.hours)
    seconds, wall = min((throughput(path) for _ in range(3)), key=lambda run: run[1])
    print(f"new decoder, {seconds / 3600:.2f} h MP3: {wall:.2f} s, {seconds / wall:.0f}x real time")
    report["throughput_x"] = round(seconds / wall)

    if shutil.which("ffmpeg") and shutil.which("ffprobe"):
        seconds, wall = min((old_decode(path) for _ in range(3)), key=lambda run: run[1])
        print(f"old (ffmpeg tool), same MP3: {wall:.2f} s, {seconds / wall:.0f}x real time")
        short = [old_decode(MP3)[1] for _ in range(args.requests)]
        print(f"old (ffmpeg tool), 3 s MP3 decode alone: median "
              f"{statistics.median(short) * 1000:.0f} ms per request")  # fmt: skip
        new_short = [throughput(MP3)[1] for _ in range(args.requests)]
        print(f"new (worker), 3 s MP3 decode alone: median "
              f"{statistics.median(new_short) * 1000:.0f} ms per request")  # fmt: skip
    print(json.dumps(report))


if __name__ == "__main__":
    main()
