"""Keywords: what beam search with a keyword graph costs, and what it does. Reported, never
asserted (``tests/test_keyword_effect.py`` asserts the effect claims on the fixtures).

    .venv/bin/python benchmarks/keywords.py cost [--minutes 5] [--rounds 3] [--models v3_ctc]
    .venv/bin/python benchmarks/keywords.py effect [--boosts 1 2 4 8] [--no-full-size]

1. **cost** — three arms on the same file: ``greedy`` (no keywords: today's path), ``beam``
   (beam search with an empty keyword list: the search alone) and ``beam+100`` (the 100
   distractor phrases of ``tests/keyword_cases.py``, none of them in the audio).
   *End to end*: the speech-dense meeting of ``benchmarks/diarization_e2e.py`` (``--minutes``,
   default 5) through the core session (decode, VAD, chunking, recognition) with a
   :class:`~gigaam_api.service.session.DirectWorker`, full-size random-weight models
   (``benchmarks/random_checkpoint.py``; RNN-T with the blank bias ``benchmarks/engine.py``
   calibrates) in int8, 2 threads; arms interleaved round by round (every other round
   reversed) so the shared machine's load falls on all alike; wall and process CPU time,
   median, and the added share over ``greedy``. *Decoding alone*: the model outputs of the
   same run's batches stored once (CTC log-probabilities; RNN-T projected encoder output),
   then each arm's decoder timed over them (best of 3), as RTF = seconds ÷ audio seconds.
2. **effect** — ``tests/keyword_cases.evaluate`` on the four golden fixtures and on 20 s of
   corpus speech through the full-size random v3_ctc (int8), for each ``--boosts`` value, as
   the models are (β = 1) and sharpened to a mean best-class probability of 0.9: near-best
   planted alternatives recovered (margin < boost − 1), rejected ones forced in (margin >
   boost + 1), other words changed where a plant was recovered, distractors inserted and the
   word edits (S/D/I) the 100 distractors cause.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from diarization_e2e import loadavg, meeting, run_session  # noqa: E402
from random_checkpoint import cached_checkpoint  # noqa: E402

from gigaam_api.model import AsrModel, ContextGraph, Keyword, load_model  # noqa: E402
from gigaam_api.model.ctc_beam import ctc_beam_search  # noqa: E402
from gigaam_api.model.decoding import ctc_greedy, rnnt_greedy  # noqa: E402
from gigaam_api.model.rnnt_beam import rnnt_beam_search_batch  # noqa: E402
from tests.keyword_cases import DISTRACTORS, Effect, KeywordBench, evaluate  # noqa: E402

SHARED = Path(os.environ.get("GIGAAM_SHARED_DIR", ROOT.parent / "shared"))
CACHE = ROOT / "benchmarks" / ".cache"
SAMPLE_RATE = 16000
BOOST = 4.0


def cpu_line() -> str:
    info = Path("/proc/cpuinfo").read_text()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if "model name" in ln), "?"
    )
    flags = next(
        (ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []
    )
    simd = [f for f in flags if f.startswith(("avx", "fma", "amx")) or "vnni" in f]
    return f"{model}, {os.cpu_count()} CPUs, {' '.join(sorted(simd))}"


def full_size(name: str) -> AsrModel:
    if "rnnt" in name:
        import engine  # the calibrated random RNN-T (see benchmarks/engine.py)

        path = engine.checkpoint(name)
    else:
        path = cached_checkpoint(SHARED, CACHE, name)
    return load_model(path, quantize_int8=True, num_threads=2, cache_dir=CACHE / "models")


def arms(model: AsrModel) -> dict[str, ContextGraph | None]:
    return {
        "greedy": None,
        "beam": model.compile_keywords([], BOOST),
        "beam+100": model.compile_keywords([Keyword(p) for p in DISTRACTORS], BOOST),
    }


def decoding_alone(model: AsrModel, batches: list[list[Any]], audio_s: float) -> None:
    """Each arm's decoder over the stored model outputs of the run's batches."""
    outputs = []
    for waves in batches:
        features, lengths = model.features(waves)
        live = lengths > 0
        if not live.all():
            features, lengths = features[live], lengths[live]
        if not lengths.size:
            continue
        head = "log_probs" if model.kind == "ctc" else "enc_proj"
        out, enc_lengths = model.encoder.run(features, lengths, [head, "encoded_lengths"])
        outputs.append((np.asarray(out), np.asarray(enc_lengths)))
    step = model.step
    print(f"\n{model.name} decoding alone ({len(outputs)} batches, {audio_s:.0f} s of audio):")
    print("| arm | seconds (best of 3) | RTF | ÷ greedy |")
    print("|---|---|---|---|")
    base = None
    for arm, graph in arms(model).items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            for out, lengths in outputs:
                if graph is None and step is None:
                    ctc_greedy(out, lengths, model.blank_id)
                elif graph is None:
                    assert step is not None
                    rnnt_greedy(out, lengths, step, model.blank_id, hidden_size=step.hidden_size)
                elif step is None:
                    for i, n in enumerate(lengths.tolist()):
                        ctc_beam_search(out[i], n, model.blank_id, graph)
                else:
                    rnnt_beam_search_batch(
                        out,
                        lengths.tolist(),
                        step,
                        model.blank_id,
                        [graph] * len(lengths),
                        hidden_size=step.hidden_size,
                    )
            times.append(time.perf_counter() - started)
        best = min(times)
        base = best if base is None else base
        print(f"| {arm} | {best:.3f} | {best / audio_s:.5f} | {best / base:.1f}× |")


def cost(minutes: float, rounds: int, names: list[str]) -> None:
    print(f"# keywords cost: {minutes:g} min meeting, int8, 2 threads")
    print(f"# CPU: {cpu_line()}")
    for name in names:
        cost_of(full_size(name), minutes, rounds)


def cost_of(model: AsrModel, minutes: float, rounds: int) -> None:
    path = meeting(minutes)
    audio_s = minutes * 60
    graphs = arms(model)
    batches: list[list[Any]] = []

    def recording(waves: list[Any]) -> Any:
        batches.append(list(waves))
        return model.transcribe(waves)

    print(f"\n## {model.name}: load before {loadavg()}", flush=True)
    run_session(meeting(min(minutes, 1.0)), model.transcribe, None)  # warm-up
    run_session(path, recording, None)
    walls: dict[str, list[float]] = {arm: [] for arm in graphs}
    cpus: dict[str, list[float]] = {arm: [] for arm in graphs}
    order = list(graphs)
    for round_index in range(rounds):
        for arm in order if round_index % 2 == 0 else order[::-1]:
            infer: Callable[[list[Any]], Any] = functools.partial(
                model.transcribe, keywords=graphs[arm]
            )
            r = run_session(path, infer, None)
            walls[arm].append(r["wall"])
            cpus[arm].append(r["cpu"])
            print(
                f"round {round_index + 1} {arm}: wall {r['wall']:.2f} s, CPU {r['cpu']:.2f} s,"
                f" segments {r['segments']}; load {loadavg()}",
                flush=True,
            )
    base_wall = statistics.median(walls["greedy"])
    base_cpu = statistics.median(cpus["greedy"])
    print(f"\n{model.name} end to end, load after {loadavg()}:")
    print("| arm | runs | wall median (min–max) | RTF | added wall | CPU median | added CPU |")
    print("|---|---|---|---|---|---|---|")
    for arm in graphs:
        wall, cpu = statistics.median(walls[arm]), statistics.median(cpus[arm])
        print(
            f"| {arm} | {len(walls[arm])} | {wall:.2f} s ({min(walls[arm]):.2f}–"
            f"{max(walls[arm]):.2f}) | {wall / audio_s:.4f} | {wall / base_wall - 1:+.1%} "
            f"| {cpu:.2f} s | {cpu / base_cpu - 1:+.1%} |"
        )
    decoding_alone(model, batches, audio_s)


def _row(name: str, beta: float, boost: float, effect: Effect) -> str:
    near = [o for o in effect.planted if o.planted.margin < boost - 1]
    far = [o for o in effect.planted if o.planted.margin > boost + 1]
    others = sum(sum(o.others) for o in effect.planted if o.recovered)
    s, d, i = effect.distractor_edits
    return (
        f"| {name} | {beta:.1f} | {boost:g} | {effect.words} | "
        f"{sum(o.recovered for o in near)}/{len(near)} | "
        f"{sum(o.recovered for o in far)}/{len(far)} "
        f"| {others} | {effect.distractors_inserted} | {s}/{d}/{i} |"
    )


def effect(boosts: list[float], full: bool) -> None:
    print(f"# keywords effect; CPU: {cpu_line()}")
    print(
        "\n| model | β | boost | words | near recovered | rejected forced in "
        "| other words changed | distractors inserted | distractor edits S/D/I |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    benches: list[tuple[str, KeywordBench]] = []
    for name in ("v3_ctc", "v3_e2e_ctc", "v3_rnnt", "v3_e2e_rnnt"):
        folder = SHARED / "golden" / name
        model = load_model(folder / f"{name}.ckpt", num_threads=1, cache_dir=CACHE / "models")
        benches.append((name, KeywordBench(model, np.load(folder / "waveform.npy"))))
    if full:
        from gigaam_api.audio import load_audio

        speech = load_audio(SHARED / "corpus" / "silero_vad" / "silero_ru.wav")
        wave = (speech[: 20 * SAMPLE_RATE].astype(np.float32) / 32768.0).copy()
        benches.append(("v3_ctc full size, int8", KeywordBench(full_size("v3_ctc"), wave)))
    for name, bench in benches:
        for sharpen in (False, True):
            bench.sharpness = 1.0
            beta = bench.sharpness_for(0.9) if sharpen else 1.0
            for boost in boosts:
                bench.sharpness = beta
                print(_row(name, beta, boost, evaluate(bench, boost)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["cost", "effect"])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["v3_ctc", "v3_rnnt"])
    parser.add_argument("--boosts", nargs="+", type=float, default=[1.0, 2.0, 4.0, 8.0])
    parser.add_argument("--no-full-size", action="store_true", help="the fixtures only")
    args = parser.parse_args()
    if args.what == "cost":
        cost(args.minutes, args.rounds, args.models)
    else:
        effect(args.boosts, not args.no_full_size)


if __name__ == "__main__":
    main()
