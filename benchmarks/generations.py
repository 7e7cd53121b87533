"""Generations benchmark: full-size random-weight v1, v2 and multilingual models on the engine.

Run: ``.venv/bin/python benchmarks/generations.py [--models ...] [--seconds 20]``. For each
model and precision, in fresh processes (as ``engine.py`` does): the one-off graph build
(seconds, peak RSS, peak anonymous memory, graph size on disk), then a load from the cached
graph (seconds, RSS after load, peak RSS) and the RTF of ``AsrModel.transcribe`` on one chunk
of speech (one warm-up, ``--runs`` timed runs). For int8 it also reports how many of the fp32
tokens int8 keeps (edit distance), the full-size check the small parity fixtures cannot make.
``cpu_per_audio_s`` (process CPU seconds per audio second, both threads) is steadier than
the RTF on a shared machine. Reported, never asserted (see benchmarks/README.md).

Memory is read two ways: ``VmHWM`` (peak resident set, which counts the pages of the
checkpoint's memory map while the graph is built: clean file pages the kernel can drop under
pressure) and the peak of ``RssAnon`` sampled every 10 ms (the heap: what a 4 GB box must
really hold). A 2.3 GB fp32 checkpoint must not need twice its size.

Checkpoints are written once under ``benchmarks/.cache/`` by ``random_checkpoint.py`` from
``generation_config`` (the multilingual_large_ctc one is 2.4 GB).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"
sys.path.insert(0, str(ROOT / "benchmarks"))

import engine  # noqa: E402  (benchmarks are scripts: the shared helpers are a sibling file)

MODELS = ("multilingual_ctc", "multilingual_large_ctc", "v2_ctc", "v1_ctc")


class AnonPeak:
    """Samples ``RssAnon`` in a thread: the heap's peak, which ``VmHWM`` mixes with file pages."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, engine._status_mb("RssAnon"))
            self._stop.wait(0.01)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, engine._status_mb("RssAnon"))


def checkpoint(model: str) -> Path:
    if model.startswith("v3_"):  # the v3 baseline, from the golden manifests (engine.py's)
        return engine.checkpoint(model)
    path = CACHE / f"{model}.ckpt"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        _child({"task": "write", "model": model, "out": str(path)})
    return path


def _child(task: dict[str, Any], python: str = sys.executable) -> dict[str, Any]:
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


def _waves(seconds: int) -> list[np.ndarray]:
    wave = np.concatenate(engine.chunks())
    return [np.ascontiguousarray(wave[: seconds * engine.SAMPLE_RATE])]


# ------------------------------------------------------------------------------ child tasks


def _write(task: dict[str, Any]) -> dict[str, Any]:
    writer = engine._writer()
    writer.write_random_checkpoint(Path(task["model"]), Path(task["out"]), seed=0)
    return {"written": task["out"]}


def _build(task: dict[str, Any]) -> dict[str, Any]:
    from gigaam_api.model import load_model

    anon = AnonPeak()
    started = time.perf_counter()
    model = load_model(
        task["checkpoint"], quantize_int8=task["int8"], num_threads=2, cache_dir=task["cache"]
    )
    seconds = time.perf_counter() - started
    assert model.graphs is not None and model.graphs.built
    size = sum(p.stat().st_size for p in model.graphs.directory.iterdir())
    return {
        "seconds": seconds,
        "peak_mb": engine._peak_mb(),
        "anon_peak_mb": anon.stop(),
        "graph_mb": size / 1e6,
    }


def _build_only(task: dict[str, Any]) -> dict[str, Any]:
    """The graph build alone (read, build, write; no ONNX Runtime session): its heap peak."""
    import tempfile

    from gigaam_api.model import graph
    from gigaam_api.model.checkpoint import read_checkpoint

    anon = AnonPeak()
    started = time.perf_counter()
    ckpt = read_checkpoint(task["checkpoint"])
    spec = graph.model_spec(ckpt.cfg)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = graph.build_encoder(spec, ckpt.state_dict, quantize_int8=task["int8"])
        graph.save_bundle(bundle, Path(tmp) / "encoder.onnx")
    return {
        "seconds": time.perf_counter() - started,
        "peak_mb": engine._peak_mb(),
        "anon_peak_mb": anon.stop(),
    }


def _measure(task: dict[str, Any]) -> dict[str, Any]:
    from gigaam_api.model import load_model

    waves = _waves(task["seconds"])
    anon = AnonPeak()
    started = time.perf_counter()
    model = load_model(
        task["checkpoint"], quantize_int8=task["int8"], num_threads=2, cache_dir=task["cache"]
    )
    load_s = time.perf_counter() - started
    assert model.graphs is not None and not model.graphs.built, "graph was not cached"
    rss_loaded = engine._rss_mb()
    model.transcribe(waves)  # warm-up
    times, cpu = [], []
    for _ in range(task["runs"]):
        c0, t0 = time.process_time(), time.perf_counter()
        results = model.transcribe(waves)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {
        "load_s": load_s,
        "rss_loaded_mb": rss_loaded,
        "peak_mb": engine._peak_mb(),
        "anon_peak_mb": anon.stop(),
        "rtf": statistics.median(times) / task["seconds"],
        "cpu_per_audio_s": statistics.median(cpu) / task["seconds"],
        "tokens": results[0].token_ids,
    }


def _upstream_encode(task: dict[str, Any]) -> dict[str, Any]:
    """Upstream GigaAM (torch, the torch venv's interpreter) on the full-size checkpoint: the
    encoder output and CTC argmax of one wave, saved for ``_compare``."""
    import importlib
    import warnings

    torch: Any = importlib.import_module("torch")
    omegaconf: Any = importlib.import_module("omegaconf")
    torch.set_num_threads(2)
    sys.path.insert(0, task["upstream"])
    if "torchaudio" not in sys.modules:
        sys.modules["torchaudio"] = engine._torchaudio_stub()
    model_mod = importlib.import_module("gigaam.model")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ckpt = torch.load(task["checkpoint"], map_location="cpu", weights_only=False, mmap=True)
    cfg = omegaconf.OmegaConf.create(ckpt["cfg"])
    targets = {
        "preprocessor": "gigaam.preprocess.FeatureExtractor",
        "encoder": "gigaam.encoder.ConformerEncoder",
        "decoding": "gigaam.decoding.CTCGreedyDecoding",
    }
    for section, target in targets.items():  # checkpoints written before they carried them
        cfg[section].setdefault("_target_", target)
    model = model_mod.GigaAMASR(cfg)
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), missing
    model = model.eval()
    wave = torch.from_numpy(_waves(task["seconds"])[0])[None]
    with torch.inference_mode():
        encoded, enc_len = model.forward(wave, torch.tensor([wave.shape[1]]))
        log_probs = model.head(encoder_output=encoded)
    out = Path(task["out"])
    np.save(out.with_suffix(".encoded.npy"), encoded[0].numpy())
    np.save(out.with_suffix(".argmax.npy"), log_probs[0].argmax(-1).numpy())
    return {"frames": int(enc_len[0])}


def _compare(task: dict[str, Any]) -> dict[str, Any]:
    """Ours (fp32, cached graph) against ``_upstream_encode``'s output for the same wave."""
    from gigaam_api.model import load_model

    model = load_model(task["checkpoint"], num_threads=2, cache_dir=task["cache"])
    feats, lens = model.features(_waves(task["seconds"]))
    encoded, _ = model.encode(feats, lens)
    log_probs, _ = model.ctc_log_probs(feats, lens)
    out = Path(task["out"])
    reference = np.load(out.with_suffix(".encoded.npy"))
    argmax = np.load(out.with_suffix(".argmax.npy"))
    return {
        "encoded_max_abs_diff": float(np.abs(encoded[0] - reference).max()),
        "encoded_mean_abs": float(np.abs(reference).mean()),
        "argmax_agreement": float((log_probs[0].argmax(-1) == argmax).mean()),
    }


def _edit_distance(a: list[int], b: list[int]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[:], i
        for j, y in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x != y))
    return row[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description="GigaAM generations benchmark (reported)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8"])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--skip-build", action="store_true", help="reuse cached graphs: time and memory only"
    )
    parser.add_argument(
        "--upstream",
        type=Path,
        help="upstream GigaAM checkout: compare each fp32 CTC encoder with upstream's (no timing)",
    )
    parser.add_argument(
        "--torch-python",
        default=str(CACHE / "torch-venv" / "bin" / "python"),
        help="interpreter with torch==2.13.0 for --upstream (dev only)",
    )
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        task = json.loads(args.child)
        handler = {
            "write": _write,
            "build": _build,
            "build_only": _build_only,
            "measure": _measure,
            "upstream_encode": _upstream_encode,
            "compare": _compare,
        }[task["task"]]
        print(json.dumps(handler(task)))
        return
    if args.upstream is not None:
        for model in args.models:
            ckpt = checkpoint(model)
            common = {
                "checkpoint": str(ckpt),
                "seconds": args.seconds,
                "out": str(CACHE / f"{model}.upstream"),
                "cache": str(CACHE / "graphs-generations" / f"{model}-fp32"),
            }
            frames = _child(
                {"task": "upstream_encode", "upstream": str(args.upstream.resolve()), **common},
                python=args.torch_python,
            )
            print(json.dumps({"model": model, **frames, **_child({"task": "compare", **common})}))
        return
    for model in args.models:
        ckpt = checkpoint(model)
        size_mb = ckpt.stat().st_size / 1e6
        tokens: dict[str, list[int]] = {}
        for precision in args.precisions:
            cache = CACHE / "graphs-generations" / f"{model}-{precision}"
            common = {"checkpoint": str(ckpt), "int8": precision == "int8", "cache": str(cache)}
            built: dict[str, Any] = {}
            if not args.skip_build or not cache.is_dir():
                shutil.rmtree(cache, ignore_errors=True)  # the build is measured: start bare
                built = _child({"task": "build", **common})
                built["only"] = _child({"task": "build_only", **common})
            run = _child({"task": "measure", "seconds": args.seconds, "runs": args.runs, **common})
            tokens[precision] = run.pop("tokens")
            row: dict[str, Any] = {
                "model": model,
                "precision": precision,
                "checkpoint_mb": round(size_mb),
            }
            if built:
                row |= {
                    "build_s": round(built["seconds"], 1),
                    "build_peak_mb": round(built["peak_mb"]),
                    "build_and_open_anon_peak_mb": round(built["anon_peak_mb"]),
                    "build_only_anon_peak_mb": round(built["only"]["anon_peak_mb"]),
                    "graph_mb": round(built["graph_mb"]),
                }
            row |= {
                "load_s": round(run["load_s"], 2),
                "rss_loaded_mb": round(run["rss_loaded_mb"]),
                "peak_mb": round(run["peak_mb"]),
                "anon_peak_mb": round(run["anon_peak_mb"]),
                "rtf": round(run["rtf"], 4),
                "cpu_per_audio_s": round(run["cpu_per_audio_s"], 4),
            }
            if precision == "int8" and "fp32" in tokens:
                ref = tokens["fp32"]
                row["int8_edit_vs_fp32"] = round(
                    _edit_distance(tokens["int8"], ref) / max(len(ref), 1), 3
                )
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
