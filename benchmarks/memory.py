"""Peak memory and wall time of the streaming pipeline on 1 min, 1 h and 10 h of audio.

The point is the *shape*: peak RSS must not grow with the length of the audio (``docs/design.md``,
"Everything streams"). Inputs are generated once (speech from the corpus tiled with silence, written
as 16 kHz mono WAV) into ``benchmarks/.cache/``; each measurement runs in a fresh process with a
fixture-sized model from ``../shared/golden`` so that recognition is cheap and the figure is
dominated by decoding, VAD and buffering.

    .venv/bin/python benchmarks/memory.py               # 1 min, 1 h, 10 h
    .venv/bin/python benchmarks/memory.py --hours 0.0167 1

Results are printed as a table; copy them into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GIGAAM_SHARED_DIR", ROOT.parent / "shared"))
CACHE = ROOT / "benchmarks" / ".cache"
SPEECH = SHARED / "corpus" / "longform" / "longform_mix_dev_ru.wav"
CHECKPOINT = SHARED / "golden" / "v3_ctc" / "v3_ctc.ckpt"
SAMPLE_RATE = 16000


def make_input(hours: float) -> Path:
    """A WAV of ``hours``: corpus speech (with its own pauses) then 30 s of silence, repeated."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"tiled_{hours:g}h.wav"
    if path.exists():
        return path
    sys.path.insert(0, str(ROOT))
    from gigaam_api.audio import load_audio

    speech = load_audio(SPEECH)
    unit = np.concatenate([speech, np.zeros(30 * SAMPLE_RATE, dtype=np.int16)]).tobytes()
    total = int(hours * 3600 * SAMPLE_RATE) * 2
    tmp = path.with_suffix(".part")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        written = 0
        while written < total:
            piece = unit[: total - written]
            out.writeframes(piece)
            written += len(piece)
    tmp.rename(path)
    return path


def measure(path: Path) -> dict[str, float]:
    """Run in this (fresh) process: load the fixture model, transcribe ``path`` fully."""
    sys.path.insert(0, str(ROOT))
    from gigaam_api.config import Settings, pipeline_options
    from gigaam_api.model import load_model
    from gigaam_api.pipeline import transcribe_file

    settings = Settings(checkpoint_path=CHECKPOINT, batch_size=4, num_threads=2)
    model = load_model(CHECKPOINT, num_threads=2)
    rss_loaded = _rss_mb()
    started = time.perf_counter()
    run = transcribe_file(path, model.transcribe, pipeline_options(settings))
    segments = sum(1 for _ in run)
    wall = time.perf_counter() - started
    return {
        "audio_s": run.duration,
        "wall_s": wall,
        "segments": segments,
        "chunks": run.chunks_recognised,
        "rss_after_load_mb": rss_loaded,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_buffer_mb": run.peak_buffer_bytes / 1e6,
    }


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, nargs="*", default=[1 / 60, 1.0, 10.0])
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    rows = []
    for hours in args.hours:
        path = make_input(hours)
        out = subprocess.run(
            [sys.executable, __file__, "--measure", str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((hours, row))
        print(f"{hours:g} h: {json.dumps(row)}", flush=True)
    print()
    columns = ["audio", "wall", "x real time", "segments", "chunks"]
    columns += ["RSS after load", "peak RSS", "peak PCM buffer"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|---|---|")
    for hours, r in rows:
        label = f"{hours * 60:g} min" if hours < 1 else f"{hours:g} h"
        print(
            f"| {label} | {r['wall_s']:.1f} s | {r['audio_s'] / r['wall_s']:.0f}x | "
            f"{r['segments']} | {r['chunks']} | {r['rss_after_load_mb']:.0f} MB | "
            f"{r['peak_rss_mb']:.0f} MB | {r['peak_buffer_mb']:.1f} MB |"
        )


if __name__ == "__main__":
    main()
