"""Combined calls and length-aware batches: bursts of short clips and a long file, before/after.

Reported, never asserted. One in-process server on loopback (as ``benchmarks/jobs.py``) with
the full-size v3_ctc (random weights from ``benchmarks/random_checkpoint.py``),
``QUANTIZE_INT8=true``, ``NUM_THREADS=2``, ``BATCH_SIZE=4``. "Before" and "after" are the same
server with the worker's combining switched off and on between measurements
(``Scheduler.combine_samples`` 0 or ``BATCH_SIZE × VAD_MAX_DURATION``, what ``BATCH_COMBINE``
sets), interleaved round by round so that the shared machine's load falls on both alike.

* **Burst**: one clip's latency (median of 5 sequential requests), then 16 concurrent requests
  of the same ~3 s WAV (16 threads, released together): wall time, clips/s and the ratio
  wall ÷ (16 × one clip's latency). Every response must equal the clip's text alone.
* **Mixed burst**: 16 different corpus clips of 2–5 s at once (combining + length planning
  with different lengths); how many texts equal the clip's text alone, and the padding share.
* **Long file**: corpus speech tiled to ``--minutes`` (16 kHz mono WAV), one synchronous
  request; wall time and the padding share (padded samples ÷ samples computed, from the
  worker's records).
* ``--overlap``: "before" and "after" are the second lane off and on instead
  (``Scheduler.overlap_samples`` 0 or one short request, what ``OVERLAP_SHORT_CALLS`` sets),
  combining as configured; ``--fp32`` runs the fp32 model instead of int8.
* ``--plans``: instead of the above, the long file's own model calls without the server and
  its noise: the pipeline runs once and records each batch of chunks; then every batch is run
  as one padded call (before) and as the length-aware plan (after), alternately, ``--rounds``
  times: model seconds and padding share of each.
* ``--engine``: instead of the above, the model alone (no server): seconds per clip when the
  same 2.7 s of speech runs as a batch of 1, 4 and 16, interleaved — what combining can gain
  at most on this CPU; then, for fp32 and int8, how many of the 16 mixed clips give the same
  text in one padded batch of 16 as alone.

Usage::

    .venv/bin/python benchmarks/batching.py --rounds 2 --minutes 10
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from jobs import CACHE, CLIP, SHARED, long_input  # noqa: E402
from random_checkpoint import cached_checkpoint  # noqa: E402

from gigaam_api.config import Settings, load_settings  # noqa: E402
from gigaam_api.scheduler import ServedBatch  # noqa: E402
from gigaam_api.server import create_app  # noqa: E402
from gigaam_api.service.model_service import combine_samples, overlap_samples  # noqa: E402

#: 16 different short clips (16 kHz mono WAV, 1.9–4.8 s) for the mixed burst.
MIXED = [
    SHARED / "corpus" / name
    for name in (
        "pisets/test_sound_ru.wav",
        "golos/golos_001ce26c.wav",
        "speech_to_phrase/stp_oov_1.wav",
        "speech_to_phrase/stp_oov_4.wav",
        "speech_to_phrase/stp_ru_gen_01.wav",
        "speech_to_phrase/stp_ru_gen_02.wav",
        "speech_to_phrase/stp_ru_gen_05.wav",
        "synthetic_espeak/wav16k/espeak_01_m1.wav",
        "synthetic_espeak/wav16k/espeak_02_f3.wav",
        "synthetic_espeak/wav16k/espeak_04_f4.wav",
        "synthetic_espeak/wav16k/espeak_06_f3.wav",
        "synthetic_espeak/wav16k/espeak_09_m1.wav",
        "voicekit/wav16k/sample_1.mp3.wav",
        "voicekit/wav16k/sample_4.wav",
        "voicekit/wav16k/privet_oleg.aac.wav",
        "constructed_digits/wav16k/digits_amount_8k.wav",
    )
]


def checkpoint() -> Path:
    return cached_checkpoint(SHARED, CACHE)


@contextmanager
def server(settings: Settings) -> Iterator[tuple[str, Any]]:
    """The app in a uvicorn thread of this process (the scheduler's records stay readable)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.01)
    assert app.state.ctx.service.wait_loaded(1800), app.state.ctx.service.error
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        uv.should_exit = True
        thread.join(60)


def post(http: httpx.Client, path: Path, request_id: str = "") -> tuple[float, str]:
    started = time.perf_counter()
    headers = {"x-request-id": request_id} if request_id else {}
    with path.open("rb") as fh:
        response = http.post(
            "/v1/audio/transcriptions", files={"file": (path.name, fh)}, headers=headers
        )
    response.raise_for_status()
    return time.perf_counter() - started, str(response.json()["text"])


def burst(url: str, clips: list[Path], tag: str) -> tuple[float, list[str]]:
    """All ``clips`` posted at once (one thread and connection each); wall time and texts."""
    texts: list[str] = [""] * len(clips)
    start = threading.Barrier(len(clips) + 1)

    def run(index: int) -> None:
        with httpx.Client(base_url=url, timeout=None) as http:
            http.get("/health")  # connect before the start signal
            start.wait()
            texts[index] = post(http, clips[index], f"{tag}-{index}")[1]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clips))]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, texts


def padding(records: list[ServedBatch]) -> tuple[float, int]:
    """Padding share of ``records`` and the number of model calls they took."""
    computed = sum(r.computed_samples for r in records)
    real = sum(r.audio_samples for r in records)
    return (computed - real) / computed if computed else 0.0, len({r.call for r in records})


def plans(threads: int, rounds: int, minutes: float) -> None:
    import numpy as np

    from gigaam_api.batching import plan_calls
    from gigaam_api.model import load_model
    from gigaam_api.options import PipelineOptions
    from gigaam_api.pipeline import transcribe_file

    model = load_model(
        checkpoint(), quantize_int8=True, num_threads=threads, cache_dir=CACHE / "models"
    )
    batches: list[list[np.ndarray]] = []

    def record(waves: list[np.ndarray]) -> Any:
        batches.append(list(waves))
        return model.transcribe(waves)

    for _ in transcribe_file(long_input(minutes), record, PipelineOptions()):
        pass
    planned = [[[b[i] for i in g] for g in plan_calls([len(w) for w in b])] for b in batches]
    seconds = {"before": 0.0, "after": 0.0}
    for round_index in range(rounds):
        for index, batch in enumerate(batches):
            runs = {"before": [batch], "after": planned[index]}
            order = ["before", "after"] if (index + round_index) % 2 == 0 else ["after", "before"]
            for mode in order:
                started = time.perf_counter()
                for call in runs[mode]:
                    model.transcribe(call)
                seconds[mode] += time.perf_counter() - started

    def share(calls: list[list[np.ndarray]]) -> float:
        computed = sum(len(c) * max(len(w) for w in c) for c in calls)
        return 1 - sum(len(w) for c in calls for w in c) / computed

    before_calls = batches
    after_calls = [call for plan in planned for call in plan]
    print(f"{minutes:g} min file: {len(batches)} batches, {sum(map(len, batches))} chunks")
    for mode, calls in (("before", before_calls), ("after", after_calls)):
        print(
            f"{mode}: {len(calls)} calls, padding share {share(calls):.3f}, "
            f"model {seconds[mode] / rounds:.2f} s per pass (mean of {rounds})"
        )


def engine(threads: int, rounds: int, quantize: bool, clip_seconds: float) -> None:
    import numpy as np

    from gigaam_api.audio import load_audio
    from gigaam_api.model import load_model

    model = load_model(
        checkpoint(), quantize_int8=quantize, num_threads=threads, cache_dir=CACHE / "models"
    )
    speech = load_audio(SHARED / "corpus" / "longform" / "longform_espeak_ru.wav")
    clip = (speech[16000 : 16000 + round(clip_seconds * 16000)] / 32768.0).astype(np.float32)
    model.transcribe([clip])
    per_clip: dict[int, list[float]] = {1: [], 4: [], 16: []}
    for _ in range(rounds):
        for size in per_clip:
            for _ in range(3):
                started = time.perf_counter()
                model.transcribe([clip] * size)
                per_clip[size].append((time.perf_counter() - started) / size)
    for size, values in per_clip.items():
        print(
            f"batch of {size:2d}: {statistics.median(values):.3f} s per clip median, "
            f"{min(values):.3f} best"
        )
    clips = [(load_audio(path) / 32768.0).astype(np.float32) for path in MIXED]
    for quantize in (False, True):
        model = load_model(
            checkpoint(), quantize_int8=quantize, num_threads=threads, cache_dir=CACHE / "models"
        )
        alone = [model.transcribe([clip])[0].text for clip in clips]
        together = [result.text for result in model.transcribe(clips)]
        same = sum(a == b for a, b in zip(alone, together, strict=True))
        print(f"{'int8' if quantize else 'fp32'}: {same} of {len(clips)} texts equal alone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--overlap", action="store_true", help="before/after: second lane off/on")
    parser.add_argument("--fp32", action="store_true", help="the fp32 model instead of int8")
    parser.add_argument("--engine", action="store_true", help="the model alone, batch 1/4/16")
    parser.add_argument("--plans", action="store_true", help="a long file's calls, both plans")
    parser.add_argument("--clip-seconds", type=float, default=2.7, help="--engine's clip")
    args = parser.parse_args()
    if args.plans:
        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        plans(args.threads, args.rounds, args.minutes)
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
        return
    if args.engine:
        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        engine(args.threads, args.rounds, quantize=not args.fp32, clip_seconds=args.clip_seconds)
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
        return
    long = long_input(args.minutes)
    settings = load_settings(
        _env_file=None,
        checkpoint_path=checkpoint(),
        models_dir=CACHE / "models",
        quantize_int8=not args.fp32,
        num_threads=args.threads,
        batch_size=4,
        max_queue=max(args.clips, len(MIXED)) + 1,
        log_level="WARNING",
        jobs_dir=Path(tempfile.mkdtemp(prefix="gigaam-bench-jobs-")),
    )
    knob = "overlap_samples" if args.overlap else "combine_samples"
    on = overlap_samples(settings) if args.overlap else combine_samples(settings)
    modes = {"before": 0, "after": on}
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with server(settings) as (url, app), httpx.Client(base_url=url, timeout=None) as http:
        scheduler = app.state.ctx.service.scheduler
        log = scheduler.record_served()  # what was combined and padded, per request
        alone_text = post(http, CLIP)[1]  # warm-up
        mixed_alone = [post(http, clip)[1] for clip in MIXED]
        for round_index in range(args.rounds):
            order = list(modes) if round_index % 2 == 0 else list(modes)[::-1]
            for mode in order:
                setattr(scheduler, knob, modes[mode])
                tag = f"{mode}-{round_index}"
                single = statistics.median(post(http, CLIP)[0] for _ in range(5))
                wall, texts = burst(url, [CLIP] * args.clips, f"{tag}-burst")
                mixed_wall, mixed_texts = burst(url, MIXED, f"{tag}-mixed")
                served = log.records
                burst_calls = len({r.call for r in served if r.request_id.startswith(tag + "-b")})
                mixed_share, mixed_calls = padding(
                    [r for r in served if r.request_id.startswith(f"{tag}-mixed")]
                )
                row: dict[str, Any] = {
                    "single": single,
                    "wall": wall,
                    "ratio": wall / (args.clips * single),
                    "clips_per_s": args.clips / wall,
                    "burst_ok": sum(t == alone_text for t in texts),
                    "burst_calls": burst_calls,
                    "mixed_wall": mixed_wall,
                    "mixed_ok": sum(a == b for a, b in zip(mixed_texts, mixed_alone, strict=True)),
                    "mixed_share": mixed_share,
                    "mixed_calls": mixed_calls,
                }
                if not args.skip_long:
                    long_wall = post(http, long, f"{tag}-long")[0]
                    mine = [r for r in log.records if r.request_id == f"{tag}-long"]
                    share, calls = padding(mine)
                    model_s = sum({r.call: r.seconds for r in mine}.values())
                    row.update(
                        long_wall=long_wall,
                        long_share=share,
                        long_calls=calls,
                        long_model_s=model_s,
                    )
                rows[mode].append(row)
                print(f"round {round_index + 1} {mode}: {row}", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    for mode, measured in rows.items():
        what = "second lane" if args.overlap else "combining"
        print(f"\n{mode} ({what} {'on' if modes[mode] else 'off'}), per round:")
        for key in measured[0]:
            values = [row[key] for row in measured]
            shown = ", ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in values)
            print(f"  {key}: {shown}")


if __name__ == "__main__":
    main()
