"""Speaker diarization: accuracy (DER, speaker counts) and cost (embedding time, memory).

    .venv/bin/python benchmarks/diarization.py                  # everything below
    .venv/bin/python benchmarks/diarization.py --skip-der       # cost only
    .venv/bin/python benchmarks/diarization.py --hours 1 10     # bookkeeping at those lengths
    .venv/bin/python benchmarks/diarization.py --hops 0.75 1.5 3  # accuracy per hop (summary)

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

from gigaam_api.speakers.windows import DEFAULT_HOP  # noqa: E402


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


def accuracy(seeds: list[int], hops: list[float]) -> None:
    """DER and counts per conversation (one hop), or a summary line per hop (several)."""
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
    detailed = len(hops) == 1
    print("## Accuracy (GE2E weights, collar 0.25 s / no collar)\n")
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
    campplus = ROOT / "benchmarks" / ".cache" / "campplus_random.onnx"
    if campplus.is_file():
        for threads in (1, 2):
            model = load_embedder(campplus, threads=threads)
            report("CAM++ 1.5 s, random weights (fbank + network)", threads, model.embed, windows)
        quantized = _static_int8(campplus, windows[:16])
        model = load_embedder(quantized, threads=1)
        report("CAM++ 1.5 s, static int8 (ORT QOperator, per-channel)", 1, model.embed, windows)
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


def _static_int8(source: Path, calibration: list[Any]) -> Path:
    """``source`` quantized to int8 by ONNX Runtime (static, QOperator, per-channel weights,
    activations calibrated on ``calibration`` windows' features); cached beside it."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from gigaam_api.speakers import fbank

    target = source.with_name(source.stem + "_int8.onnx")
    if target.is_file():
        return target
    features = [fbank.subtract_mean(fbank.fbank(w))[None] for w in calibration]

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.items = iter([{"x": f} for f in features])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    prepared = source.with_name(source.stem + "_prepared.onnx")
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(target),
        Reader(),
        quant_format=QuantFormat.QOperator,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    prepared.unlink()
    # The metadata sherpa-onnx wrote must survive quantization for the embedder to read it.
    import onnx

    model, original = onnx.load(str(target)), onnx.load(str(source))
    del model.metadata_props[:]
    model.metadata_props.extend(original.metadata_props)
    onnx.save(model, str(target))
    return target


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
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(_bookkeeping_child(args.child)))
        return
    if not args.skip_der:
        accuracy(args.seeds, args.hops)
    embedding_cost()
    bookkeeping(args.hours)


if __name__ == "__main__":
    main()
