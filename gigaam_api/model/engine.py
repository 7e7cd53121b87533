"""ONNX Runtime sessions for the GigaAM graphs: devices, thread policy, encoder and step.

* **Session options** come from :mod:`gigaam_api.onnx_session` (shared with the VAD; it says
  why each option is set). This module only decides how many threads the encoder gets.
* **Threads**: ``num_threads`` (default ``min(4, usable cores)``), never more than the cores
  this process may use — more threads than cores only make every GEMM fight itself.
* **Providers** from ``device``: ``auto`` tries CUDA, then CoreML ("mps"), then CPU, by what
  the installed runtime offers; an explicit ``cuda``/``mps`` that is not available is an error,
  not a silent fallback. The RNN-T step graph (a few tiny GEMMs per call, hundreds of calls)
  always runs on one CPU thread: launching it on a GPU or waking a thread pool costs more than
  the arithmetic.

Where the graph files come from (the build cache) is :mod:`gigaam_api.model.cache`'s job.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from gigaam_api.model.decoding import StepOutput
from gigaam_api.onnx_session import CPU_PROVIDER, ORT_ERRORS, create_session

log = logging.getLogger(__name__)

__all__ = [
    "DEVICE_PROVIDERS",
    "DeviceError",
    "EncoderSession",
    "EngineError",
    "StepSession",
    "default_threads",
    "effective_threads",
    "resolve_device",
    "usable_cores",
]

#: Execution provider for each device, in ``auto`` preference order (CPU last).
DEVICE_PROVIDERS: dict[str, str] = {
    "cuda": "CUDAExecutionProvider",
    "mps": "CoreMLExecutionProvider",
    "cpu": CPU_PROVIDER,
}


class DeviceError(ValueError):
    """The requested device is unknown or not offered by the installed ONNX Runtime."""


class EngineError(RuntimeError):
    """ONNX Runtime could not open or run a graph (a damaged cache file, a provider failure)."""


def _open_session(path: Path, threads: int, providers: Sequence[str]) -> ort.InferenceSession:
    try:
        return create_session(path, threads, providers)
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


class EncoderSession:
    """The encoder + head graph in an ONNX Runtime session."""

    def __init__(
        self, path: Path, providers: Sequence[str], num_threads: int | None = None
    ) -> None:
        self.session = _open_session(path, effective_threads(num_threads), providers)
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
        self.session = _open_session(path, 1, [CPU_PROVIDER])
        self.hidden_size = hidden_size
        self._run: Callable[..., list[Any]] = self.session.run

    def __call__(
        self,
        labels: NDArray[np.int64],
        h: NDArray[np.float32],
        c: NDArray[np.float32],
        enc: NDArray[np.float32],
    ) -> StepOutput:
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
