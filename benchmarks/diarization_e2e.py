"""What speaker labelling costs end to end: through the core session, with and without it.

``benchmarks/diarization.py`` times the speaker model alone; this measures what a user pays:
the same file through :class:`~gigaam_api.service.session.Session` (decoding, VAD, chunking,
recognition and — when asked — the diarizer fed each recognised chunk's speech on the same
thread, as the server does), with speaker labelling off and on. Reported, never asserted.

1. **Time, 1 h** (default). A speech-dense meeting: the test conversations of distinct real
   corpus voices (``tests/speakers_conversations``: 2–5 speakers, pauses of 0.4–1.2 s, one
   seed's 11 conversations laid end to end with 1 s between them) tiled to ``--minutes``,
   written once as a 16 kHz WAV under ``benchmarks/.cache/``. Recognition with the full-size
   v3_ctc (random weights, ``benchmarks/random_checkpoint.py``) in int8, 2 threads, through a
   :class:`~gigaam_api.service.session.DirectWorker`. Arms run in one process, interleaved
   round by round (off, then each labelling arm; every other round in reverse order)
   so the shared machine's load falls on all alike: wall time and the process's CPU time of
   each run; the labelling arms' median added share over the median "off" run.
   Labelling arms (``--arms``): ``ge2e`` (Resemblyzer's trained GE2E weights, the wheel the
   tests use), ``campplus`` (a random-weight CAM++ with 3D-Speaker's architecture —
   ``benchmarks/campplus_random.py`` writes it; cost does not depend on the weights),
   ``campplus-int8`` (its int8 copy as the server makes it by default, ``DIARIZATION_INT8``:
   ``gigaam_api/speaker_int8.py``, calibrated on the bundled clip, cached under
   ``benchmarks/.cache/speaker-int8/``); a
   suffix ``@t2`` runs the speaker model with 2 threads instead of the server's default 1,
   ``@hop3`` windows every 3 s instead of 1.5 s, ``@seq`` embeds each batch on the request's
   thread between the recogniser's calls instead of overlapped with them (the diarizer's
   ``overlap=False``, how it ran before), ``@dense`` applies the front ends' mel filterbank as
   the dense matrix product it was before 2026-12-07 (a BLAS call: :class:`DenseBank`)
   instead of :class:`~gigaam_api.speakers.sparse_bank.SparseBank`; ``@b64`` (any ``@bN``)
   runs an ONNX fbank model N windows per call instead of ``RUN_BATCH`` (4; 64 before the
   evening of 2026-12-07); ``@state`` takes the diarization's snapshot at every chunk, as a
   job does to commit it (``SpeakerOptions.keep_state``).
2. **Memory, 10 h** (``--memory``). ``benchmarks/memory.py``'s 10 h input and fixture-size
   model (``../shared/golden``), each arm in a fresh process: peak RSS (``VmHWM``) and wall
   time with labelling off and with each of ``--arms``.

    .venv/bin/python benchmarks/diarization_e2e.py --rounds 2
    .venv/bin/python benchmarks/diarization_e2e.py --arms ge2e ge2e@t2 campplus-int8 --rounds 1
    .venv/bin/python benchmarks/diarization_e2e.py --memory --hours 10 --arms ge2e campplus-int8
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from random_checkpoint import cached_checkpoint  # noqa: E402

from gigaam_api.audio import FileSource  # noqa: E402
from gigaam_api.service.session import (  # noqa: E402
    DirectWorker,
    FailedEvent,
    SegmentEvent,
    Session,
    SessionOptions,
    SpeakersEvent,
)
from gigaam_api.service.speakers import SpeakerOptions  # noqa: E402
from gigaam_api.speakers import FbankOnnxEmbedder, SpeakerEmbedder, load_embedder  # noqa: E402

SHARED = Path(os.environ.get("GIGAAM_SHARED_DIR", ROOT.parent / "shared"))
CACHE = ROOT / "benchmarks" / ".cache"
CAMPPLUS = CACHE / "campplus_random.onnx"
SAMPLE_RATE = 16000


class DenseBank:
    """The filterbank as a dense ``power @ bank.T`` (numpy's BLAS), as before 2026-12-07."""

    def __init__(self, dense: np.ndarray[Any, Any]) -> None:
        self.dense_t = np.ascontiguousarray(dense.T)

    def apply(self, power: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.asarray(power @ self.dense_t)


def dense_banks(on: bool) -> None:
    """Both front ends' filterbanks dense (``@dense``) or sparse (the code's own)."""
    from gigaam_api.speakers import fbank, ge2e
    from gigaam_api.speakers.sparse_bank import SparseBank

    fbank_bank: Any = DenseBank(fbank._BANKS) if on else SparseBank(fbank._BANKS)
    ge2e_bank: Any = DenseBank(ge2e._FILTERS) if on else SparseBank(ge2e._FILTERS)
    vars(fbank)["_SPARSE_BANKS"] = fbank_bank
    vars(ge2e)["_SPARSE_FILTERS"] = ge2e_bank


def machine() -> str:
    """The CPU model, its core count and whether it has AVX-512 / VNNI (int8 dot products)."""
    info = Path("/proc/cpuinfo").read_text()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if "model name" in ln), "?"
    )
    flags = next(
        (ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []
    )
    wanted = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return f"{model}, {os.cpu_count()} CPUs, {' '.join(wanted)}"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def meeting(minutes: float) -> Path:
    """The speech-dense conversation file of ``minutes`` (module doc), written once."""
    path = CACHE / f"meeting_{minutes:g}min.wav"
    if path.is_file():
        return path
    from tests.speakers_conversations import build_conversations

    gap = np.zeros(SAMPLE_RATE, dtype=np.float32)
    parts = [p for c in build_conversations() for p in (c.audio, gap)]
    unit = np.concatenate(parts)
    samples = np.resize(unit, int(minutes * 60 * SAMPLE_RATE))
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    tmp.rename(path)
    return path


class Arm:
    """One configuration: labelling off (``embedder`` None) or on with a speaker model."""

    def __init__(
        self, name: str, embedder: SpeakerEmbedder | None, diarizer: dict[str, Any]
    ) -> None:
        self.name = name
        self.embedder = embedder
        self.diarizer = diarizer
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.windows = 0
        self.speakers = 0
        #: CPU seconds spent inside the speaker model's ``embed`` (thread time), per run.
        self.embed_cpu: list[float] = []


def make_arm(spec: str) -> Arm:
    """``off``, ``ge2e``, ``campplus``, ``campplus-int8``, with optional flags ``@t2``,
    ``@hop3``, ``@seq`` (module doc)."""
    base, *flags = spec.split("@")
    threads = 2 if "t2" in flags else 1
    diarizer: dict[str, Any] = {}
    if "hop3" in flags:
        diarizer["hop"] = 3.0
    if "seq" in flags:
        diarizer["overlap"] = False
    if "dense" in flags:
        diarizer["dense"] = True
    if "state" in flags:
        diarizer["keep_state"] = True
    if base == "off":
        return Arm(spec, None, {})
    if base == "ge2e":
        from tests.speakers_data import resemblyzer_wheel

        source = resemblyzer_wheel()
    elif base == "campplus":
        source = CAMPPLUS
    elif base == "campplus-int8":
        from gigaam_api.speaker_int8 import speaker_model_to_run

        source = speaker_model_to_run(CAMPPLUS, CACHE, int8=True)
        if source == CAMPPLUS:
            raise SystemExit("the int8 copy was refused: see the log")
    else:
        raise SystemExit(f"unknown arm {spec!r}")
    if not source.is_file():
        raise SystemExit(f"{source.name} is missing: see the module doc for how it is made")
    embedder = load_embedder(source, threads=threads)
    for flag in flags:
        if flag.startswith("b") and flag[1:].isdigit() and isinstance(embedder, FbankOnnxEmbedder):
            embedder.run_batch = int(flag[1:])
    return Arm(spec, embedder, diarizer)


def run_session(
    path: Path,
    infer: Callable[[list[Any]], Any],
    embedder: SpeakerEmbedder | None,
    diarizer_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One file through the core session; wall and CPU seconds, segments, speakers found."""
    import gigaam_api.service.session as session_module

    options = dict(diarizer_options or {})
    keep_state = options.pop("keep_state", False)
    speakers = SpeakerOptions(keep_state=keep_state) if embedder is not None else None
    names = vars(session_module)  # the session makes its Diarizer with the defaults
    diarizer = names["Diarizer"]
    dense_banks(options.pop("dense", False))
    if options:
        names["Diarizer"] = functools.partial(diarizer, **options)
    session = Session(
        FileSource(path),
        SessionOptions(speakers=speakers),
        DirectWorker(infer),
        path.stem,
        speaker_model=(lambda: embedder) if embedder is not None else None,
    )
    cpu, wall = time.process_time(), time.perf_counter()
    segments, found = 0, 0
    try:
        for event in session.events():
            if isinstance(event, SegmentEvent):
                segments += 1
            elif isinstance(event, SpeakersEvent):
                found = len(event.speakers)
            elif isinstance(event, FailedEvent):
                raise RuntimeError(f"the session failed: {event}")
    finally:
        names["Diarizer"] = diarizer
        dense_banks(False)
    return {
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "segments": segments,
        "speakers": found,
    }


def speed(minutes: float, specs: list[str], rounds: int, threads: int) -> None:
    from gigaam_api.model import load_model

    path = meeting(minutes)
    model = load_model(
        cached_checkpoint(SHARED, CACHE),
        quantize_int8=True,
        num_threads=threads,
        cache_dir=CACHE / "models",
    )
    arms = [make_arm("off")] + [make_arm(s) for s in specs]
    windows_of: dict[str, int] = {}
    embed_cpu: dict[str, float] = {}

    def counting(arm: Arm) -> None:
        """Count the windows a labelling arm embeds and the CPU time its model takes (the
        calling thread's, wherever it runs): a direct figure, where the difference of two
        whole runs drowns in a shared machine's noise. Wraps ``embed`` once per arm."""
        embedder = arm.embedder
        if embedder is None:
            return
        inner = embedder.embed

        def embed(batch: list[Any]) -> Any:
            windows_of[arm.name] = windows_of.get(arm.name, 0) + len(batch)
            started = time.thread_time()
            try:
                return inner(batch)
            finally:
                spent = time.thread_time() - started
                embed_cpu[arm.name] = embed_cpu.get(arm.name, 0.0) + spent

        embedder.embed = embed  # type: ignore[method-assign,assignment]

    for arm in arms:
        counting(arm)
    print(
        f"# {minutes:g} min meeting, v3_ctc int8, {threads} ASR threads; {machine()}; "
        f"load before {loadavg()}",
        flush=True,
    )
    # warm-up (page cache, graph, allocator) on at most 5 minutes of the same meeting
    run_session(meeting(min(minutes, 5.0)), model.transcribe, None)
    for round_index in range(rounds):
        for arm in arms if round_index % 2 == 0 else arms[::-1]:
            windows_of.pop(arm.name, None)
            embed_cpu.pop(arm.name, None)
            r = run_session(path, model.transcribe, arm.embedder, arm.diarizer)
            arm.wall.append(r["wall"])
            arm.cpu.append(r["cpu"])
            arm.windows = windows_of.get(arm.name, 0)
            arm.speakers = r["speakers"]
            arm.embed_cpu.append(embed_cpu.get(arm.name, 0.0))
            print(
                f"round {round_index + 1} {arm.name}: wall {r['wall']:.1f} s, CPU "
                f"{r['cpu']:.1f} s (model embed {arm.embed_cpu[-1]:.1f} s), segments "
                f"{r['segments']}, windows {arm.windows}, "
                f"speakers {r['speakers']}; load {loadavg()}",
                flush=True,
            )
    off = arms[0]
    base_wall, base_cpu = statistics.median(off.wall), statistics.median(off.cpu)
    print(f"\nload after {loadavg()}\n")
    print(
        "| arm | runs | wall median (min–max) | added wall | CPU median | added CPU "
        "| embed CPU | embed CPU ÷ off CPU | windows | embed CPU ms / window | speakers found |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for arm in arms:
        wall, cpu = statistics.median(arm.wall), statistics.median(arm.cpu)
        added = (wall - base_wall) / base_wall
        added_cpu = (cpu - base_cpu) / base_cpu
        spent = statistics.median(arm.embed_cpu)
        per = spent / arm.windows * 1000 if arm.windows else float("nan")
        print(
            f"| {arm.name} | {len(arm.wall)} | {wall:.1f} s ({min(arm.wall):.1f}–"
            f"{max(arm.wall):.1f}) | {added:+.1%} | {cpu:.1f} s | {added_cpu:+.1%} "
            f"| {spent:.1f} s | {spent / base_cpu:.1%} | {arm.windows} | {per:.1f} "
            f"| {arm.speakers or '—'} |"
        )


def _memory_child(path: Path, spec: str) -> dict[str, Any]:
    """In a fresh process: the fixture model, the whole file, peak RSS."""
    from gigaam_api.model import load_model

    checkpoint = SHARED / "golden" / "v3_ctc" / "v3_ctc.ckpt"
    model = load_model(checkpoint, num_threads=2)
    embedder = make_arm(spec).embedder
    loaded = _status_mb("VmRSS")
    r = run_session(path, model.transcribe, embedder)
    return {**r, "rss_loaded_mb": loaded, "peak_mb": _status_mb("VmHWM")}


def memory(hours: list[float], specs: list[str]) -> None:
    from memory import make_input

    print(f"# memory: fixture v3_ctc, labelling off / {' / '.join(specs)}; load {loadavg()}\n")
    print("| audio | labelling | wall | CPU | RSS after load | peak RSS | speakers |")
    print("|---|---|---|---|---|---|---|")
    for h in hours:
        path = make_input(h)
        for spec in ["off", *specs]:
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", str(path), "--arms", spec],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"| {h:g} h | {spec} | {r['wall']:.0f} s "
                f"| {r['cpu']:.0f} s | {r['rss_loaded_mb']:.0f} MB | {r['peak_mb']:.0f} MB "
                f"| {r['speakers'] or '—'} |",
                flush=True,
            )
    print(f"\nload after {loadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arms", nargs="+", default=["ge2e", "campplus"])
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--hours", type=float, nargs="+", default=[10.0])
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child is not None:
        print(json.dumps(_memory_child(args.memory_child, args.arms[0])))
    elif args.memory:
        memory(args.hours, args.arms)
    else:
        speed(args.minutes, args.arms, args.rounds, args.threads)


if __name__ == "__main__":
    main()
