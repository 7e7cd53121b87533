"""Engine benchmark: full-size v3_ctc / v3_rnnt (random weights), 60 s as 3 × 20 s, one batch.

Run: ``.venv/bin/python benchmarks/engine.py`` (``make bench``). Prints, per model and
precision: RTF (median of the timed runs after one warm-up, median over processes), load time
from the cached graph in a fresh process, RSS right after loading, peak RSS, and the one-off
graph build. Every measurement runs in a fresh subprocess so loads are cold (graph cached, page
cache warm) and RSS figures belong to that configuration alone. ``--profile`` adds the ORT
op-type breakdown of one run. Results are reported, never asserted (see benchmarks/README.md).

The checkpoints are written once under ``benchmarks/.cache/`` from
``../shared/golden/manifests``; for RNN-T the joint's blank bias is shifted so that greedy
decoding emits about 0.3 tokens per frame, like real speech (random weights emit ~10).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GIGAAM_SHARED_DIR", ROOT.parent / "shared"))
CACHE = ROOT / "benchmarks" / ".cache"
AUDIO = SHARED / "corpus" / "silero_vad" / "silero_ru.wav"
SAMPLE_RATE = 16000
CHUNK_SECONDS = 20
N_CHUNKS = 3
TARGET_TOKENS_PER_FRAME = 0.3


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _peak_mb() -> float:
    """Peak RSS of this process image. Not ``ru_maxrss``: Linux carries that across
    ``execve`` from the forking parent, so a child would inherit the driver's peak."""
    peak = _status_mb("VmHWM")
    return peak if peak == peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def chunks() -> list[np.ndarray]:
    """60 s of Russian speech (the corpus file, tiled) as three 20 s float32 chunks."""
    cached = CACHE / "audio_60s.npy"
    if cached.is_file():
        wave = np.load(cached)
    else:
        from gigaam_api.audio import load_audio

        pcm = load_audio(AUDIO)
        speech = pcm.astype(np.float32) / 32768.0
        total = N_CHUNKS * CHUNK_SECONDS * SAMPLE_RATE
        wave = np.tile(speech, -(-total // speech.size))[:total].astype(np.float32)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(cached, wave)
    n = CHUNK_SECONDS * SAMPLE_RATE
    return [np.ascontiguousarray(wave[i * n : (i + 1) * n]) for i in range(N_CHUNKS)]


def _writer() -> Any:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import random_checkpoint

    return random_checkpoint


def checkpoint(model: str) -> Path:
    """The full-size random-weight checkpoint for ``model`` (written once, by a child)."""
    path = CACHE / f"{model}.ckpt"
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    manifest = str(SHARED / "golden" / "manifests" / f"{model}.json")
    if "rnnt" not in model:
        _child({"task": "write", "manifest": manifest, "out": str(path), "shift": 0.0})
        return path
    draft = CACHE / f"{model}.draft.ckpt"
    _child({"task": "write", "manifest": manifest, "out": str(draft), "shift": 0.0})
    calibration = _child({"task": "calibrate", "checkpoint": str(draft)})
    print(
        f"{model}: blank bias {calibration['shift']:+.2f} -> {calibration['rate']:.2f} tokens/frame"
    )
    _child({"task": "write", "manifest": manifest, "out": str(path), "shift": calibration["shift"]})
    draft.unlink()
    return path


def _write(task: dict[str, Any]) -> dict[str, Any]:
    _writer().write_random_checkpoint(
        Path(task["manifest"]), Path(task["out"]), seed=0, blank_bias_shift=task["shift"]
    )
    return {"written": task["out"]}


def _child(task: dict[str, Any], python: str = sys.executable) -> dict[str, Any]:
    """Run one task in a fresh interpreter (cold load, its own RSS) and return its JSON."""
    proc = subprocess.run(
        [python, __file__, "--child", json.dumps(task)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {task}\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------------ child tasks


def _calibrate(task: dict[str, Any]) -> dict[str, Any]:
    """Blank-bias shift for ~0.3 tokens/frame: bisect on a wrapped step (same argmax math)."""
    from gigaam_api.model import load_model
    from gigaam_api.model.decoding import rnnt_greedy

    model = load_model(task["checkpoint"], num_threads=2)
    feats, lens = model.features(chunks())
    (enc_proj, enc_lens) = model.encoder.run(feats, lens, ["enc_proj", "encoded_lengths"])
    step, blank = model.step, model.blank_id
    assert step is not None
    frames = int(enc_lens.sum())

    def rate(shift: float) -> float:
        def shifted(*args: Any) -> Any:
            log_probs, h, c = step(*args)
            log_probs = log_probs.copy()
            log_probs[:, blank] += shift
            return log_probs, h, c

        hyps = rnnt_greedy(enc_proj, enc_lens, shifted, blank, hidden_size=step.hidden_size)
        return sum(len(ids) for ids, _ in hyps) / frames

    low, high = -10.0, 30.0
    for _ in range(14):
        mid = (low + high) / 2
        if rate(mid) > TARGET_TOKENS_PER_FRAME:
            low = mid
        else:
            high = mid
    return {"shift": (low + high) / 2, "rate": rate((low + high) / 2)}


def _gemm_peak(task: dict[str, Any]) -> dict[str, Any]:
    """GFLOP/s of one fp32 Gemm and one int8 DynamicQuantizeMatMul at the feed-forward shape
    ([1500, 768] x [768, 3072]: a 3 x 20 s batch) with the engine's session options: the
    ceiling the encoder's matrix products can reach on this machine."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from gigaam_api.model.engine import effective_threads
    from gigaam_api.onnx_session import session_options

    m, k, n = 1500, 768, 3072
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    scale = np.float32(np.abs(w).max() / 127)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    graphs = {
        "fp32": ([helper.make_node("Gemm", ["x", "w"], ["y"])], [numpy_helper.from_array(w, "w")]),
        "int8": (
            [
                helper.make_node(
                    "DynamicQuantizeMatMul", ["x", "q", "s", "z"], ["y"], domain="com.microsoft"
                )
            ],
            [
                numpy_helper.from_array(q, "q"),
                numpy_helper.from_array(np.array(scale), "s"),
                numpy_helper.from_array(np.array(0, np.int8), "z"),
            ],
        ),
    }
    x = rng.standard_normal((m, k)).astype(np.float32)
    out = {}
    for name, (nodes, inits) in graphs.items():
        graph = helper.make_graph(
            nodes,
            name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            initializer=inits,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        )
        model.ir_version = 8
        session = ort.InferenceSession(
            model.SerializeToString(),
            session_options(effective_threads(task["threads"])),
            providers=["CPUExecutionProvider"],
        )
        times = []
        for _ in range(12):
            t0 = time.perf_counter()
            session.run(None, {"x": x})
            times.append(time.perf_counter() - t0)
        out[name] = 2 * m * k * n / min(times[2:]) / 1e9
    return out


def _build(task: dict[str, Any]) -> dict[str, Any]:
    from gigaam_api.model import load_model

    started = time.perf_counter()
    model = load_model(
        task["checkpoint"], quantize_int8=task["int8"], num_threads=2, cache_dir=task["cache"]
    )
    seconds = time.perf_counter() - started
    assert model.graphs is not None
    size = sum(p.stat().st_size for p in model.graphs.directory.iterdir())
    return {
        "built": model.graphs.built,
        "seconds": seconds,
        "peak_mb": _peak_mb(),
        "graph_mb": size / 1e6,
    }


def _measure(task: dict[str, Any]) -> dict[str, Any]:
    from gigaam_api.model import load_model

    waves = chunks()  # before loading: the audio is not part of the model's RSS
    base = _rss_mb()
    started = time.perf_counter()
    model = load_model(
        task["checkpoint"],
        quantize_int8=task["int8"],
        num_threads=task["threads"],
        cache_dir=task["cache"],
    )
    load_s = time.perf_counter() - started
    assert model.graphs is not None and not model.graphs.built, "graph was not cached"
    rss_loaded = _rss_mb()
    model.transcribe(waves)  # warm-up
    times, cpu = [], []
    for _ in range(task["runs"]):
        c0, t0 = time.process_time(), time.perf_counter()
        results = model.transcribe(waves)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    tokens = sum(len(r.token_ids) for r in results)
    frames = sum(int(np.ceil(((w.size - 320) // 160 + 1) / 4)) for w in waves)
    out = {
        "load_s": load_s,
        "rss_base_mb": base,
        "rss_loaded_mb": rss_loaded,
        "rss_after_mb": _rss_mb(),
        "peak_mb": _peak_mb(),
        "times": times,
        "cpu": cpu,
        "tokens_per_frame": tokens / frames,
    }
    if task.get("profile"):
        out["profile"] = _profile(model, waves)
    return out


def _profile(model: Any, waves: list[np.ndarray]) -> dict[str, float]:
    """ORT op-type share of one encoder run (ms)."""
    import onnxruntime as ort

    from gigaam_api.onnx_session import session_options

    options = session_options(model.num_threads)
    options.enable_profiling = True
    options.profile_file_prefix = str(CACHE / "ort_profile")
    session = ort.InferenceSession(
        str(model.graphs.encoder), options, providers=["CPUExecutionProvider"]
    )
    feats, lens = model.features(waves)
    head = "log_probs" if model.kind == "ctc" else "enc_proj"
    for _ in range(2):
        session.run([head], {"features": feats, "feature_lengths": lens})
    trace = json.loads(Path(session.end_profiling()).read_text())
    totals: dict[str, float] = {}
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"].get("op_name", "?")
            if op == "If":  # its MultiHeadAttention is listed on its own
                continue
            totals[op] = totals.get(op, 0.0) + event["dur"] / 1000 / 2
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


# ------------------------------------------------------------------------------ upstream torch


def _torchaudio_stub() -> Any:
    """A stand-in ``torchaudio`` for upstream's imports when the real one is not installed.

    Upstream imports torchaudio at module level but, for this workload, only builds
    ``transforms.MelSpectrogram``; the stand-in computes it with ``torch.stft`` the way
    torchaudio does (periodic Hann window, centred reflect padding, power 2, mel matrix). Its
    ``spectrogram.window`` and ``mel_scale.fb`` buffers are loaded from the checkpoint like the
    real module's, so the features are the checkpoint's own.
    """
    import importlib
    import types

    torch: Any = importlib.import_module("torch")  # the torch venv's, never the runtime's
    nn = torch.nn

    class _Buffers(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, name: str, value: Any) -> None:
            super().__init__()
            self.register_buffer(name, value)

    class MelSpectrogram(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(
            self,
            sample_rate: int,
            n_mels: int,
            win_length: int,
            hop_length: int,
            n_fft: int,
            center: bool = True,
        ) -> None:
            super().__init__()
            self.n_fft, self.hop, self.win, self.center = n_fft, hop_length, win_length, center
            self.spectrogram = _Buffers("window", torch.hann_window(win_length))
            self.mel_scale = _Buffers("fb", torch.zeros(n_fft // 2 + 1, n_mels))

        def forward(self, wave: Any) -> Any:
            spec = (
                torch.stft(
                    wave,
                    self.n_fft,
                    self.hop,
                    self.win,
                    self.spectrogram.window,
                    center=self.center,
                    pad_mode="reflect",
                    return_complex=True,
                ).abs()
                ** 2
            )
            return torch.matmul(spec.transpose(-1, -2), self.mel_scale.fb).transpose(-1, -2)

    stub = types.ModuleType("torchaudio")
    stub.transforms = types.SimpleNamespace(MelSpectrogram=MelSpectrogram)  # type: ignore[attr-defined]
    return stub


def _upstream(task: dict[str, Any]) -> dict[str, Any]:
    """The same workload on upstream GigaAM (torch, run by the torch venv's interpreter):
    ``forward`` (features + encoder) and greedy ``decode``, fp32 or dynamic int8 (every
    ``nn.Linear`` through ``torch.ao.quantization.quantize_dynamic``, qint8 weights)."""
    import importlib
    import importlib.util
    import warnings

    torch: Any = importlib.import_module("torch")
    omegaconf: Any = importlib.import_module("omegaconf")

    torch.set_num_threads(task["threads"])
    sys.path.insert(0, task["upstream"])
    if importlib.util.find_spec("torchaudio") is None:
        sys.modules["torchaudio"] = _torchaudio_stub()
    GigaAMASR = importlib.import_module("gigaam.model").GigaAMASR

    waves = chunks()
    base = _rss_mb()
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ckpt = torch.load(task["checkpoint"], map_location="cpu", weights_only=False)
    # random_checkpoint.py pickles the config as a plain dict; upstream expects a DictConfig
    cfg = omegaconf.OmegaConf.create(ckpt["cfg"])
    cfg.encoder.flash_attn = False
    model = GigaAMASR(cfg)
    model.load_state_dict(ckpt["state_dict"])
    del ckpt
    model = model.eval()
    if task["int8"]:
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    load_s = time.perf_counter() - started
    rss_loaded = _rss_mb()
    wav = torch.from_numpy(np.stack(waves))
    lengths = torch.full([len(waves)], wav.shape[-1], dtype=torch.long)

    def transcribe() -> list[Any]:
        with torch.inference_mode():
            encoded, encoded_len = model.forward(wav, lengths)
            return list(model.decoding.decode(model.head, encoded, encoded_len))

    transcribe()  # warm-up
    times, cpu = [], []
    for _ in range(task["runs"]):
        c0, t0 = time.process_time(), time.perf_counter()
        results = transcribe()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    tokens = sum(len(ids) for _, ids, _ in results)
    frames = sum(int(np.ceil(((w.size - 320) // 160 + 1) / 4)) for w in waves)
    return {
        "load_s": load_s,
        "rss_base_mb": base,
        "rss_loaded_mb": rss_loaded,
        "peak_mb": _peak_mb(),
        "times": times,
        "cpu": cpu,
        "tokens_per_frame": tokens / frames,
        "torch": torch.__version__,
    }


# ------------------------------------------------------------------------------ driver


def _summary(runs: list[dict[str, Any]], audio_s: float) -> dict[str, Any]:
    per_process = [statistics.median(r["times"]) for r in runs]
    all_times = [t for r in runs for t in r["times"]]
    return {
        "rtf": statistics.median(per_process) / audio_s,
        "rtf_min": min(all_times) / audio_s,
        "rtf_max": max(all_times) / audio_s,
        "cpu_rtf": statistics.median([c for r in runs for c in r["cpu"]]) / audio_s,
        "load_s": statistics.median(r["load_s"] for r in runs),
        "rss_loaded_mb": statistics.median(r["rss_loaded_mb"] for r in runs),
        "peak_mb": statistics.median(r["peak_mb"] for r in runs),
        "tokens_per_frame": runs[0]["tokens_per_frame"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="GigaAM engine benchmark (reported, not asserted)")
    parser.add_argument("--models", nargs="+", default=["v3_ctc", "v3_rnnt"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per process")
    parser.add_argument("--processes", type=int, default=2, help="fresh processes per config")
    parser.add_argument("--profile", action="store_true", help="ORT op breakdown")
    parser.add_argument(
        "--upstream",
        type=Path,
        help="upstream GigaAM checkout: also run the workload on its torch code, interleaved",
    )
    parser.add_argument(
        "--torch-python",
        default=str(CACHE / "torch-venv" / "bin" / "python"),
        help="interpreter with torch==2.13.0 for --upstream (dev only, never the runtime's)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        task = json.loads(args.child)
        handlers = {
            "write": _write,
            "calibrate": _calibrate,
            "build": _build,
            "measure": _measure,
            "peak": _gemm_peak,
            "upstream": _upstream,
        }
        handler = handlers[task["task"]]
        print(json.dumps(handler(task)))
        return
    if args.upstream is not None and not Path(args.torch_python).is_file():
        parser.error(f"--upstream needs a torch interpreter: {args.torch_python} does not exist")

    audio_s = N_CHUNKS * CHUNK_SECONDS
    graphs = CACHE  # load_model keeps built graphs in <cache_dir>/graphs/
    report = []
    print(
        f"{N_CHUNKS} x {CHUNK_SECONDS} s in one batch, {args.threads} threads, "
        f"{args.runs} timed runs x {args.processes} processes; {os.cpu_count()} CPUs"
        + (", interleaved with upstream torch" if args.upstream else "")
    )
    peak = _child({"task": "peak", "threads": args.threads})
    print(
        f"GEMM ceiling here ([1500,768]x[768,3072], best of 10): fp32 {peak['fp32']:.0f} "
        f"GFLOP/s, int8 {peak['int8']:.0f} GOP/s",
        flush=True,
    )
    for model in args.models:
        ckpt = checkpoint(model)
        builds = {}
        for precision in args.precisions:
            common = {"checkpoint": str(ckpt), "int8": precision == "int8", "cache": str(graphs)}
            builds[precision] = _child({"task": "build", **common})
        # Configurations alternate process by process, so load on this shared machine hits
        # them alike and the ratios compare like with like.
        engines = ["ours", "torch"] if args.upstream else ["ours"]
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for i in range(args.processes):
            for engine in engines:
                for precision in args.precisions:
                    job: dict[str, Any] = {
                        "checkpoint": str(ckpt),
                        "int8": precision == "int8",
                        "threads": args.threads,
                        "runs": args.runs,
                    }
                    if engine == "ours":
                        job.update(
                            task="measure",
                            cache=str(graphs),
                            profile=args.profile and i == 0,
                        )
                        result = _child(job)
                    else:
                        job.update(task="upstream", upstream=str(args.upstream.resolve()))
                        result = _child(job, python=args.torch_python)
                    runs.setdefault((engine, precision), []).append(result)
        for precision in args.precisions:
            build = builds[precision]
            ours = runs[("ours", precision)]
            row: dict[str, Any] = {
                "model": model,
                "precision": precision,
                **_summary(ours, audio_s),
                "build_s": build["seconds"] if build["built"] else None,
                "build_peak_mb": build["peak_mb"] if build["built"] else None,
                "graph_mb": build["graph_mb"],
            }
            print(
                f"{model:8s} {precision}: RTF {row['rtf']:.4f} "
                f"({row['rtf_min']:.4f}-{row['rtf_max']:.4f}), CPU-s/audio-s {row['cpu_rtf']:.4f}, "
                f"load {row['load_s']:.2f} s, RSS after load {row['rss_loaded_mb']:.0f} MB, "
                f"peak {row['peak_mb']:.0f} MB, graph {row['graph_mb']:.0f} MB, "
                f"tokens/frame {row['tokens_per_frame']:.2f}"
                + (
                    f", build {row['build_s']:.1f} s (peak {row['build_peak_mb']:.0f} MB)"
                    if row["build_s"]
                    else ""
                ),
                flush=True,
            )
            if ("torch", precision) in runs:
                up = _summary(runs[("torch", precision)], audio_s)
                row["upstream"] = up
                print(
                    f"{'':8s} torch {runs[('torch', precision)][0]['torch']} {precision}: "
                    f"RTF {up['rtf']:.4f} ({up['rtf_min']:.4f}-{up['rtf_max']:.4f}), "
                    f"CPU-s/audio-s {up['cpu_rtf']:.4f}, "
                    f"RSS after load {up['rss_loaded_mb']:.0f} MB, "
                    f"tokens/frame {up['tokens_per_frame']:.2f} -> ours is "
                    f"{up['rtf'] / row['rtf']:.2f}x faster (medians), "
                    f"{up['rtf_min'] / row['rtf_min']:.2f}x (best runs), "
                    f"{up['cpu_rtf'] / row['cpu_rtf']:.2f}x less CPU time",
                    flush=True,
                )
            report.append(row)
            if args.profile and "profile" in ours[0]:
                prof = ours[0]["profile"]
                total = sum(prof.values())
                shares = ", ".join(
                    f"{k} {100 * v / total:.1f}%" for k, v in list(prof.items())[:10]
                )
                print(f"    profile ({total:.0f} ms encoder): {shares}", flush=True)
    (CACHE / "results.json").write_text(json.dumps({"gemm_peak": peak, "rows": report}, indent=1))


if __name__ == "__main__":
    main()
