"""ONNX Runtime sessions as this service opens them: one set of options for every graph.

The recogniser's encoder, its RNN-T step graph and the Silero VAD all run on small CPUs next to
each other, so they share one policy, measured on a 2-vCPU box (``benchmarks/engine.py``
reproduces the numbers):

* ``intra_op`` threads as the caller asks (the engine's thread policy lives in
  ``gigaam_api/model/engine.py``; the VAD and the step graph use one), ``inter_op`` 1 and
  sequential execution: the graphs are chains, there is nothing to run side by side.
* Thread-pool spinning off: a spinning worker competes with the Python thread (and with the
  other sessions) on a small CPU and was slower in every interleaved A/B.
* ``ORT_ENABLE_ALL`` optimisations; weight pre-packing stays on (int8 ``DynamicQuantizeMatMul``
  runs at half speed without it).
* Log severity "error": ONNX Runtime's warnings about unused initializers are noise to users.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import onnxruntime as ort

__all__ = ["CPU_PROVIDER", "ORT_ERRORS", "create_session", "session_options"]

CPU_PROVIDER: Final = "CPUExecutionProvider"


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


#: The exceptions ONNX Runtime raises for a graph it cannot open or run.
ORT_ERRORS: Final = _ort_errors()


def session_options(threads: int) -> ort.SessionOptions:
    """Session options with ``threads`` intra-op threads (see the module doc for why each)."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def create_session(
    model: Path | bytes, threads: int, providers: Sequence[str] = (CPU_PROVIDER,)
) -> ort.InferenceSession:
    """An inference session over a graph file or serialized graph, with :func:`session_options`.

    Raises one of :data:`ORT_ERRORS` when ONNX Runtime cannot open the graph.
    """
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, session_options(threads), providers=list(providers))
