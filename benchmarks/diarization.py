"""Speaker diarization: accuracy (DER, speaker counts) and cost (embedding time, memory).

    .venv/bin/python benchmarks/diarization.py                  # everything below
    .venv/bin/python benchmarks/diarization.py --skip-der       # cost only
    .venv/bin/python benchmarks/diarization.py --hours 1 10     # bookkeeping at those lengths

1. **Accuracy.** Simulated conversations of distinct corpus voices
   (``tests/speakers_conversations.py``: the plain set — pauses of 0.4–1.2 s between turns —
   and the hard set — −0.3 to +0.3 s, so turns overlap or change inside one VAD region), each
   for the seeds given, diarized with Resemblyzer's GE2E weights through the same chain the
   tests use and scored by pyannote.metrics (collar 0.25 s, and none); with the speaker count
   found automatically and with it given.
2. **Embedding cost.** Seconds of CPU per hour of speech, at the default hop: the GE2E model
   (front end + ONNX graph) and the Kaldi fbank front end alone (what CAM++/ResNet34 add on
   top of their network, which cannot be downloaded here), with 1 and 2 threads.
3. **Bookkeeping at length.** A fresh process streams N hours of speech regions through
   :class:`~gigaam_api.speakers.diarizer.Diarizer` with a stand-in embedder (random speaker
   directions plus noise, no network) and reports the peak RSS it adds and the clustering
   time: the part of diarization that grows with the file.

Figures are printed; copy them into ``benchmarks/README.md``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def accuracy(seeds: list[int]) -> None:
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    from gigaam_api.speakers.clustering import SpeakerCount
    from gigaam_api.speakers.embedder import load_embedder
    from tests.speakers_conversations import (
        HARD_PAUSES,
        PAUSES,
        build_conversations,
        diarize,
        score,
        voice_material,
    )
    from tests.speakers_data import resemblyzer_wheel

    embedder = load_embedder(resemblyzer_wheel())
    material = voice_material()
    print("## Accuracy (GE2E weights, collar 0.25 s / no collar)\n")
    for label, pauses in (("plain", PAUSES), ("hard", HARD_PAUSES)):
        for seed in seeds:
            rows = []
            print(f"### {label} set, seed {seed}\n")
            print(
                "| conversation | s | speakers | found | DER | DER no collar | DER, count given |"
            )
            print("|---|---|---|---|---|---|---|")
            for c in build_conversations(seed=seed, pauses=pauses, material=material):
                auto = score(c, diarize(c, embedder))
                given = score(c, diarize(c, embedder, SpeakerCount(num_speakers=len(c.speakers))))
                rows.append((auto, given))
                print(
                    f"| {c.name} | {c.duration:.0f} | {auto.speakers_true} | {auto.speakers_found} "
                    f"| {auto.der_collar:.1%} | {auto.der_no_collar:.1%} | {given.der_collar:.1%} |"
                )
            small = [a for a, _ in rows if 2 <= a.speakers_true <= 4]
            right = sum(a.speakers_found == a.speakers_true for a in small)
            print(
                f"\n2–4 speakers: right count {right}/{len(small)}, DER ≤ 15 % in "
                f"{sum(a.der_collar <= 0.15 for a in small)}/{len(small)}, mean DER "
                f"{np.mean([a.der_collar for a in small]):.1%}; all: mean DER "
                f"{np.mean([a.der_collar for a, _ in rows]):.1%}, count given "
                f"{np.mean([g.der_collar for _, g in rows]):.1%}\n"
            )


def embedding_cost() -> None:
    from gigaam_api.speakers import fbank
    from gigaam_api.speakers.embedder import Ge2eEmbedder, load_embedder
    from gigaam_api.speakers.windows import DEFAULT_HOP
    from tests.speakers_data import corpus_wav, resemblyzer_wheel

    speech = corpus_wav("silero_vad/silero_ru.wav")
    windows_per_hour = 3600 / DEFAULT_HOP
    print(f"## Embedding cost per hour of speech (hop {DEFAULT_HOP} s)\n")
    print("| what | threads | windows timed | CPU s per hour of speech | wall s per hour |")
    print("|---|---|---|---|---|")
    for threads in (1, 2):
        embedder = load_embedder(resemblyzer_wheel(), threads=threads)
        assert isinstance(embedder, Ge2eEmbedder)
        n = round(embedder.window_seconds * 16000)
        windows = [speech[k : k + n] for k in range(0, len(speech) - n, 12000)][:256]
        embedder.embed(windows[:32])  # warm-up
        cpu, wall = time.process_time(), time.perf_counter()
        embedder.embed(windows)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        scale = windows_per_hour / len(windows)
        what = "GE2E (mel + LSTM graph)"
        print(f"| {what} | {threads} | {len(windows)} | {cpu * scale:.0f} | {wall * scale:.0f} |")
    windows = [speech[k : k + 24000] for k in range(0, len(speech) - 24000, 12000)][:256]
    cpu, wall = time.process_time(), time.perf_counter()
    for window in windows:
        fbank.subtract_mean(fbank.fbank(window))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    scale = windows_per_hour / len(windows)
    what = "Kaldi fbank 1.5 s (CAM++ front end)"
    print(f"| {what} | 1 | {len(windows)} | {cpu * scale:.0f} | {wall * scale:.0f} |")
    print()


def _bookkeeping_child(hours: float) -> dict[str, Any]:
    """Run in a fresh process: N hours of regions through Diarizer with a stand-in embedder."""
    from numpy.typing import NDArray

    from gigaam_api.speakers.diarizer import Diarizer

    class StandIn:
        name = "stand-in"
        dimension = 512
        window_seconds = 1.5
        same_speaker_similarity = 0.5

        def __init__(self) -> None:
            self.rng = np.random.default_rng(0)
            centres = self.rng.standard_normal((6, self.dimension))
            self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
            self.speaker = 0

        def embed(self, windows: list[NDArray[Any]]) -> NDArray[np.float32]:
            rows = self.centres[[self.speaker] * len(windows)] + 0.8 * self.rng.standard_normal(
                (len(windows), self.dimension)
            ) / np.sqrt(self.dimension)
            unit: NDArray[np.float32] = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(
                np.float32
            )
            return unit

    embedder = StandIn()
    diarizer = Diarizer(embedder)  # type: ignore[arg-type]
    region_audio = np.zeros(8 * 16000, dtype=np.int16)  # 8 s regions, 1 s pauses
    before = _vm_rss_mb()
    start = time.perf_counter()
    t = 0.0
    total = hours * 3600
    while t < total:
        embedder.speaker = int(t // 20) % 6  # speakers take 20 s turns
        diarizer.add_region(t, t + 8.0, region_audio)
        t += 9.0
    streamed = time.perf_counter() - start
    start = time.perf_counter()
    result = diarizer.finish()
    finished = time.perf_counter() - start
    return {
        "hours": hours,
        "windows": result.windows,
        "speakers": len(result.speakers),
        "turns": len(result.turns),
        "stream_s": streamed,
        "finish_s": finished,
        "rss_before_mb": before,
        "peak_mb": _vm_hwm_mb(),
    }


def bookkeeping(hours: list[float]) -> None:
    print("## Bookkeeping at length (stand-in embedder, 512-d, 8 s regions, 6 speakers)\n")
    print("| hours | windows | speakers found | stream s | finish s | peak RSS added MB |")
    print("|---|---|---|---|---|---|")
    for h in hours:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(h)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"| {r['hours']:g} | {r['windows']} | {r['speakers']} | {r['stream_s']:.1f} "
            f"| {r['finish_s']:.1f} | {r['peak_mb'] - r['rss_before_mb']:.0f} |"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[17])
    parser.add_argument("--hours", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--skip-der", action="store_true")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(_bookkeeping_child(args.child)))
        return
    if not args.skip_der:
        accuracy(args.seeds)
    embedding_cost()
    bookkeeping(args.hours)


if __name__ == "__main__":
    main()
