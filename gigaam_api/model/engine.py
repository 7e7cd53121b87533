"""ONNX Runtime sessions for the GigaAM graphs: threads, providers, and the graph cache.

* **Session options** (measured on a 2-vCPU box, ``../shared/docs/performance.md``):
  ``intra_op`` = ``num_threads`` (default ``min(4, usable cores)``), ``inter_op`` 1, sequential
  execution, ``ORT_ENABLE_ALL``, and intra-op spinning off — a spinning worker competes with
  the Python thread on a small CPU and was slower in every interleaved A/B. Weight pre-packing
  stays on: int8 ``DynamicQuantizeMatMul`` runs at half speed without it.
* **Providers** from ``device``: ``auto`` tries CUDA, then CoreML ("mps"), then CPU, by what
  the installed runtime offers; an explicit ``cuda``/``mps`` that is not available is an error,
  not a silent fallback. The RNN-T step graph (a few tiny GEMMs per call, hundreds of calls)
  always runs on one CPU thread: launching it on a GPU or waking a thread pool costs more than
  the arithmetic.
* **Graph cache**: built graphs are written under ``cache_dir/graphs/<key>/`` where the key
  digests the checkpoint's content (the archive's per-entry CRC-32s and sizes, which
  ``torch.save`` computes over every byte of every tensor, plus the pickle itself), the graph
  version and the int8 flag — so a cache hit costs milliseconds instead of hashing 850 MB. A
  directory is built under a temporary name and renamed into place (atomic), under a file
  lock so two processes never build the same graph at once. Weights sit page-aligned in an
  external data file, which ONNX Runtime memory-maps; the graph protobuf itself is a few
  hundred kB, so loading never parses (and glibc never retains) a model-sized message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

log = logging.getLogger(__name__)

__all__ = [
    "DEVICE_PROVIDERS",
    "DeviceError",
    "EncoderSession",
    "EngineError",
    "GraphFiles",
    "StepSession",
    "checkpoint_digest",
    "default_threads",
    "ensure_graphs",
    "prune_stale_graphs",
    "resolve_device",
    "session_options",
]

#: Execution provider for each device, in ``auto`` preference order (CPU last).
DEVICE_PROVIDERS: dict[str, str] = {
    "cuda": "CUDAExecutionProvider",
    "mps": "CoreMLExecutionProvider",
    "cpu": "CPUExecutionProvider",
}

ENCODER_FILE = "encoder.onnx"
STEP_FILE = "step.onnx"
META_FILE = "meta.json"


class DeviceError(ValueError):
    """The requested device is unknown or not offered by the installed ONNX Runtime."""


class EngineError(RuntimeError):
    """ONNX Runtime could not open or run a graph (a damaged cache file, a provider failure)."""


def _ort_errors() -> tuple[type[BaseException], ...]:
    # ORT's Python exceptions (Fail, InvalidGraph, NoSuchFile...) derive from Exception only.
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = (
        "Fail",
        "InvalidArgument",
        "NoSuchFile",
        "NoModel",
        "EngineError",
        "RuntimeException",
        "InvalidProtobuf",
        "ModelLoaded",
        "NotImplemented",
        "InvalidGraph",
        "EPFail",
    )
    found = tuple(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type))
    return found or (RuntimeError,)


ORT_ERRORS = _ort_errors()


def _open_session(path: Path, options: ort.SessionOptions, providers: list[str]) -> Any:
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except ORT_ERRORS as exc:
        raise EngineError(f"ONNX Runtime cannot open {path}: {exc}") from exc


def resolve_device(
    device: str = "auto", available: Sequence[str] | None = None
) -> tuple[str, list[str]]:
    """(resolved device name, provider list) for ``device`` in auto|cpu|cuda|mps."""
    offered = list(ort.get_available_providers() if available is None else available)
    wanted = device.strip().lower()
    if wanted == "auto":
        for name in ("cuda", "mps"):
            if DEVICE_PROVIDERS[name] in offered:
                return name, [DEVICE_PROVIDERS[name], DEVICE_PROVIDERS["cpu"]]
        return "cpu", [DEVICE_PROVIDERS["cpu"]]
    if wanted not in DEVICE_PROVIDERS:
        raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda or mps")
    provider = DEVICE_PROVIDERS[wanted]
    if provider not in offered:
        raise DeviceError(
            f"device {wanted!r} needs {provider}, which this onnxruntime build does not offer "
            f"(available: {', '.join(offered) or 'none'}); install the matching onnxruntime "
            "package or use device=cpu/auto"
        )
    if wanted == "cpu":
        return "cpu", [provider]
    return wanted, [provider, DEVICE_PROVIDERS["cpu"]]


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity / container cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """``min(4, usable cores)``: more threads than that only thrash small CPUs."""
    return min(4, usable_cores())


def effective_threads(num_threads: int | None) -> int:
    """The thread count to use: the request, but never more than the usable cores.

    The default ``NUM_THREADS=4`` on a 2-core box made every GEMM fight itself: measured here
    (full-size v3_ctc int8, 2 cores) RTF 0.070 with 4 threads against 0.055 with 2.
    """
    if num_threads is None:
        return default_threads()
    threads = int(num_threads)
    if threads < 1:
        raise ValueError(f"num_threads must be at least 1, got {num_threads}")
    cores = usable_cores()
    if threads > cores:
        log.info("NUM_THREADS=%d but only %d cores are usable: using %d", threads, cores, cores)
        return cores
    return threads


def session_options(num_threads: int | None = None) -> ort.SessionOptions:
    """Session options for the encoder (see the module doc for why each one)."""
    threads = effective_threads(num_threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about unused initializers are noise to users
    return options


class EncoderSession:
    """The encoder + head graph in an ONNX Runtime session."""

    def __init__(
        self, path: Path, providers: Sequence[str], num_threads: int | None = None
    ) -> None:
        self.session = _open_session(path, session_options(num_threads), list(providers))
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(
        self, features: NDArray[np.float32], lengths: NDArray[np.int64], outputs: Sequence[str]
    ) -> list[NDArray[Any]]:
        """Run with ``features`` [B, F, T] and ``lengths`` [B]; returns ``outputs`` in order."""
        feats = np.ascontiguousarray(features, dtype=np.float32)
        feeds = {
            "features": feats,
            "feature_lengths": np.ascontiguousarray(lengths, dtype=np.int64),
        }
        try:
            results = self.session.run(list(outputs), feeds)
        except ORT_ERRORS as exc:
            raise EngineError(f"encoder failed on a batch of shape {feats.shape}: {exc}") from exc
        return [np.asarray(x) for x in results]


class StepSession:
    """The RNN-T step graph as a callable ``step(labels, h, c, enc) -> (log_probs, h, c)``.

    One CPU thread, no spinning: each call is a few small GEMMs and an LSTM cell.
    """

    def __init__(self, path: Path, hidden_size: int) -> None:
        options = session_options(1)
        self.session = _open_session(path, options, [DEVICE_PROVIDERS["cpu"]])
        self.hidden_size = hidden_size
        self._run: Callable[..., list[Any]] = self.session.run

    def __call__(
        self,
        labels: NDArray[np.int64],
        h: NDArray[np.float32],
        c: NDArray[np.float32],
        enc: NDArray[np.float32],
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        log_probs, h_out, c_out = self._run(
            None,
            {
                "labels": np.ascontiguousarray(labels, dtype=np.int64),
                "h": np.ascontiguousarray(h, dtype=np.float32),
                "c": np.ascontiguousarray(c, dtype=np.float32),
                "enc": np.ascontiguousarray(enc, dtype=np.float32),
            },
        )
        return log_probs, h_out, c_out


# --------------------------------------------------------------------------------------------
# graph cache


@dataclass(frozen=True)
class GraphFiles:
    """Where a model's graphs are, and whether this call had to build them."""

    directory: Path
    encoder: Path
    step: Path | None
    built: bool


def checkpoint_digest(path: Path) -> str:
    """A content digest of a checkpoint archive without reading its tensors.

    Hashes every entry's name, size and CRC-32 (which the writer computed over the entry's
    bytes) plus the pickle with the config. Raises ``zipfile.BadZipFile``/``OSError`` for a
    file that is not a readable archive.
    """
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as zf:
        infos = sorted(zf.infolist(), key=lambda i: i.filename)
        for info in infos:
            digest.update(f"{info.filename}\0{info.file_size}\0{info.CRC}\n".encode())
            if info.filename.endswith("/data.pkl"):
                digest.update(zf.read(info))
    return digest.hexdigest()


def cache_key(digest: str, graph_version: int, quantize_int8: bool) -> str:
    """Directory name of one cached build."""
    return f"{digest[:24]}-g{graph_version}-{'int8' if quantize_int8 else 'fp32'}"


def ensure_graphs(
    cache_dir: Path,
    key: str,
    build: Callable[[Path], Mapping[str, Any]],
) -> GraphFiles:
    """Return the cached graphs under ``cache_dir/graphs/key``, building them if absent.

    ``build(directory)`` writes ``encoder.onnx`` (and ``step.onnx`` for RNN-T) into an empty
    temporary directory and returns metadata stored beside them. The finished directory is
    renamed into place, so a crash never leaves a half-written cache entry behind.
    """
    from filelock import FileLock

    root = Path(cache_dir) / "graphs"
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    if _complete(final):
        return _files(final, built=False)
    with FileLock(str(root / f"{key}.lock")):
        if _complete(final):  # another process built it while we waited
            return _files(final, built=False)
        if final.exists():  # incomplete leftovers from an older, interrupted layout
            shutil.rmtree(final, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            meta = dict(build(tmp))
            (tmp / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
            _fsync_dir(tmp)
            os.replace(tmp, final)
            _fsync_dir(root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return _files(final, built=True)


def prune_stale_graphs(cache_dir: Path, keep: str) -> list[Path]:
    """Delete cached builds of the same checkpoint and precision from other graph versions.

    Each fp32 build is as large as the model, so an upgrade should not leave the previous
    one behind. Builds of other checkpoints are kept (switching models back stays fast).
    Returns what was removed.
    """
    digest, _, precision = keep.split("-", 2)[0], None, keep.rsplit("-", 1)[-1]
    removed = []
    root = Path(cache_dir) / "graphs"
    for entry in root.glob(f"{digest}-g*-{precision}"):
        if entry.name != keep and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            (root / f"{entry.name}.lock").unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _complete(directory: Path) -> bool:
    return (directory / META_FILE).is_file() and (directory / ENCODER_FILE).is_file()


def _files(directory: Path, *, built: bool) -> GraphFiles:
    step = directory / STEP_FILE
    return GraphFiles(
        directory=directory,
        encoder=directory / ENCODER_FILE,
        step=step if step.is_file() else None,
        built=built,
    )


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
