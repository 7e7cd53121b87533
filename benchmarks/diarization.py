"""Speaker diarization: accuracy (DER, speaker counts) and cost (embedding time, memory).

    .venv/bin/python benchmarks/diarization.py                  # everything below
    .venv/bin/python benchmarks/diarization.py --skip-der       # cost only
    .venv/bin/python benchmarks/diarization.py --hours 1 10     # bookkeeping at those lengths
    .venv/bin/python benchmarks/diarization.py --hops 0.75 1.5 3  # accuracy per hop (summary)
    .venv/bin/python benchmarks/diarization.py --plan nearest   # accuracy, another window plan
    .venv/bin/python benchmarks/diarization.py --profile        # where CAM++'s time goes

1. **Accuracy.** Simulated conversations of distinct corpus voices
   (``tests/speakers_conversations.py``: the plain set — pauses of 0.4–1.2 s between turns —
   and the hard set — −0.3 to +0.3 s, so turns overlap or change inside one VAD region), each
   for the seeds given, diarized with Resemblyzer's GE2E weights through the same chain the
   tests use and scored by pyannote.metrics (collar 0.25 s, and none); with the speaker count
   found automatically and with it given.
2. **Embedding cost.** Seconds of CPU per hour of speech, at the default hop: the GE2E model
   (front end + ONNX graph); CAM++ — the default production model — with random weights
   (the same architecture and cost; ``benchmarks/campplus_random.py`` writes it); and the
   Kaldi fbank front end alone; with 1 and 2 threads.
3. **Bookkeeping at length.** A fresh process streams N hours of speech regions through
   :class:`~gigaam_api.speakers.diarizer.Diarizer` with a stand-in embedder (random speaker
   directions plus noise, no network) and reports the peak RSS it adds and the clustering
   time: the part of diarization that grows with the file.

4. **Profile** (``--profile``). Where a CAM++ window's CPU goes: the fbank front end, the
   network per window at batch sizes 1–64 (thread CPU time, so other processes' load does not
   count), and ONNX Runtime's own per-operator profile of one batch of 32 windows.

``--plan nearest`` scores the accuracy part with an alternative window plan (:func:`nearest_plan`:
windows per region the *nearest* whole number of hops rather than the next one up, spread
evenly), measured 2026-12-07 against the default as a way to embed fewer windows.

Figures are printed; copy them into ``benchmarks/README.md``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gigaam_api.speakers.windows import DEFAULT_HOP, MIN_SPEECH, SpeechWindow  # noqa: E402

CAMPPLUS = ROOT / "benchmarks" / ".cache" / "campplus_random.onnx"


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


def nearest_plan(
    regions: Iterable[tuple[float, float]],
    *,
    window: float,
    hop: float = DEFAULT_HOP,
    min_speech: float = MIN_SPEECH,
) -> Iterator[SpeechWindow]:
    """A window plan measured against the default (``--plan nearest``): a region longer than a
    window gets ``round((length - window) / hop) + 1`` windows spread evenly from its start to
    its end (one in the middle when that is one), so the windows hold about as much audio as
    the speech (the default rounds up and adds a window aligned to the region's end: ~1.2×)."""
    for start, end in regions:
        length = end - start
        if length < min_speech:
            continue
        gaps = math.floor((length - window) / hop + 0.5) if length > window else -1
        if gaps <= 0:
            middle = start + max(length - window, 0.0) / 2
            yield SpeechWindow(middle, min(middle + window, end))
            continue
        step = (length - window) / gaps
        for k in range(gaps):
            yield SpeechWindow(start + k * step, start + k * step + window)
        yield SpeechWindow(end - window, end)


def accuracy(seeds: list[int], hops: list[float], plan: str = "default") -> None:
    """DER and counts per conversation (one hop), or a summary line per hop (several)."""
    import warnings

    if plan == "nearest":
        import gigaam_api.speakers.diarizer as diarizer_module

        vars(diarizer_module)["plan_windows"] = nearest_plan

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
    detailed = len(hops) == 1
    print(f"## Accuracy (GE2E weights, collar 0.25 s / no collar; window plan: {plan})\n")
    for hop in hops:
        for label, pauses in (("plain", PAUSES), ("hard", HARD_PAUSES)):
            rows = []
            for seed in seeds:
                if detailed:
                    print(f"### {label} set, seed {seed}, hop {hop} s\n")
                    print("| conversation | s | speakers | found | DER | no collar | count given |")
                    print("|---|---|---|---|---|---|---|")
                for c in build_conversations(seed=seed, pauses=pauses, material=material):
                    auto = score(c, diarize(c, embedder, hop=hop))
                    count = SpeakerCount(num_speakers=len(c.speakers))
                    given = score(c, diarize(c, embedder, count, hop=hop))
                    rows.append((auto, given))
                    if detailed:
                        print(
                            f"| {c.name} | {c.duration:.0f} | {auto.speakers_true} "
                            f"| {auto.speakers_found} | {auto.der_collar:.1%} "
                            f"| {auto.der_no_collar:.1%} | {given.der_collar:.1%} |"
                        )
                if detailed:
                    print()
            small = [a for a, _ in rows if 2 <= a.speakers_true <= 4]
            right = sum(a.speakers_found == a.speakers_true for a in small)
            print(
                f"hop {hop} s, {label} set, seeds {seeds}: 2–4 speakers: right count "
                f"{right}/{len(small)}, DER ≤ 15 % in {sum(a.der_collar <= 0.15 for a in small)}"
                f"/{len(small)}, mean DER {np.mean([a.der_collar for a in small]):.1%} (no "
                f"collar {np.mean([a.der_no_collar for a in small]):.1%}); all: mean DER "
                f"{np.mean([a.der_collar for a, _ in rows]):.1%}, count given "
                f"{np.mean([g.der_collar for _, g in rows]):.1%}; windows "
                f"{sum(a.windows for a, _ in rows)}\n"
            )


def embedding_cost() -> None:
    """CPU time per window, and per hour of continuous speech at a few hops."""
    from gigaam_api.speakers import fbank
    from gigaam_api.speakers.embedder import load_embedder
    from tests.speakers_data import corpus_wav, resemblyzer_wheel

    speech = corpus_wav("silero_vad/silero_ru.wav")
    hops = (0.75, 1.5, 3.0)
    print("## Embedding cost (CPU seconds per hour of continuous speech)\n")
    print(
        "| what | threads | windows timed | CPU ms / window | wall ms / window | "
        + " | ".join(f"CPU s/h, hop {h}" for h in hops)
        + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(hops))

    def report(what: str, threads: int, run: Any, windows: list[Any]) -> None:
        run(windows[:16])  # warm-up
        cpu, wall = time.process_time(), time.perf_counter()
        run(windows)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        per = cpu / len(windows)
        hourly = " | ".join(f"{per * 3600 / h:.0f}" for h in hops)
        print(
            f"| {what} | {threads} | {len(windows)} | {per * 1000:.1f} "
            f"| {wall / len(windows) * 1000:.1f} | {hourly} |"
        )

    ge2e_windows = [speech[k : k + 25600] for k in range(0, len(speech) - 25600, 8000)][:128]
    windows = [speech[k : k + 24000] for k in range(0, len(speech) - 24000, 8000)][:128]
    for threads in (1, 2):
        model = load_embedder(resemblyzer_wheel(), threads=threads)
        report("GE2E 1.6 s (mel + LSTM graph)", threads, model.embed, ge2e_windows)
    campplus = CAMPPLUS
    if campplus.is_file():
        for threads in (1, 2):
            model = load_embedder(campplus, threads=threads)
            report("CAM++ 1.5 s, random weights (fbank + network)", threads, model.embed, windows)
        from gigaam_api.speaker_int8 import speaker_model_to_run

        quantized = speaker_model_to_run(campplus, campplus.parent, int8=True)  # as served
        model = load_embedder(quantized, threads=1)
        report("CAM++ 1.5 s, int8 copy (DIARIZATION_INT8)", 1, model.embed, windows)
        reference = load_embedder(campplus).embed(windows[:32])
        cosine = float((model.embed(windows[:32]) * reference).sum(axis=1).min())
        print(f"| (int8 vs fp32 on random weights: lowest cosine {cosine:.4f}) |")
    else:
        print("| CAM++: run benchmarks/campplus_random.py first to time its network |")

    def front_end(batch: list[Any]) -> None:
        for window in batch:
            fbank.subtract_mean(fbank.fbank(window))

    report("Kaldi fbank 1.5 s alone (the CAM++ front end)", 1, front_end, windows)
    print()


def profile() -> None:
    """Where one CAM++ window's CPU goes: front end, network by batch size, operators."""
    import onnxruntime as ort

    from gigaam_api.onnx_session import session_options
    from gigaam_api.speakers.embedder import FbankOnnxEmbedder
    from tests.speakers_data import corpus_wav

    if not CAMPPLUS.is_file():
        raise SystemExit("run benchmarks/campplus_random.py first")
    speech = corpus_wav("silero_vad/silero_ru.wav")
    windows = [speech[k : k + 24000] for k in range(0, len(speech) - 24000, 8000)][:64]
    embedder = FbankOnnxEmbedder(CAMPPLUS)

    def per_window(run: Any, count: int, repeats: int = 3) -> float:
        run()  # warm-up
        started = time.thread_time()
        for _ in range(repeats):
            run()
        return (time.thread_time() - started) / repeats / count * 1000

    print("## CAM++ profile (random weights, 1 thread; thread CPU ms per 1.5 s window)\n")
    front = per_window(lambda: [embedder.features(w) for w in windows], len(windows))
    print(f"fbank + mean normalisation: {front:.2f} ms")
    features = np.stack([embedder.features(w) for w in windows])
    session = embedder._session
    for size in (1, 8, 32, 64):
        batch = features[:size]
        ms = per_window(lambda batch=batch: session.run(None, {"x": batch}), size)
        print(f"network, batch {size}: {ms:.1f} ms")
    options = session_options(1)
    options.enable_profiling = True
    options.profile_file_prefix = str(CAMPPLUS.with_name("ort_profile"))
    profiled = ort.InferenceSession(str(CAMPPLUS), options, providers=["CPUExecutionProvider"])
    for _ in range(3):
        profiled.run(None, {"x": features[:32]})
    trace = Path(profiled.end_profiling())
    by_op: collections.Counter[str] = collections.Counter()
    by_part: collections.Counter[str] = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"]
            node = event["name"].removesuffix("_kernel_time").strip("/")
            by_part["head (FCM, 2-D)" if node.startswith("head") else "D-TDNN (1-D)"] += event[
                "dur"
            ]
    trace.unlink()
    total = sum(by_op.values())
    print("\n| operator | share of kernel time |\n|---|---|")
    for op, spent in by_op.most_common(10):
        print(f"| {op} | {spent / total:.1%} |")
    print("\n| part | share |\n|---|---|")
    for part, spent in by_part.most_common():
        print(f"| {part} | {spent / total:.1%} |")
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
    parser.add_argument("--hops", type=float, nargs="+", default=[DEFAULT_HOP])
    parser.add_argument("--hours", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--skip-der", action="store_true")
    parser.add_argument("--plan", choices=("default", "nearest"), default="default")
    parser.add_argument("--profile", action="store_true", help="only the CAM++ profile")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(_bookkeeping_child(args.child)))
        return
    if args.profile:
        profile()
        return
    if not args.skip_der:
        accuracy(args.seeds, args.hops, args.plan)
    embedding_cost()
    bookkeeping(args.hours)


if __name__ == "__main__":
    main()
