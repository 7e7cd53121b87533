"""Which speaker model file diarization runs: the checked int8 copy when there is one.

``DIARIZATION_INT8`` (on by default) asks for the int8 copy of an ONNX speaker model
(:mod:`gigaam_api.speakers.int8` says why and how it is made and checked). The first time a
model file is seen, the copy is made in a **child process**: measuring the activations' ranges
takes several hundred MB for a few tens of seconds, which a long-running server should not keep
as resident memory; and whatever the quantizer does, the server survives it. Later starts read
the cached verdict in milliseconds. A copy that failed its check, or could not be made, leaves
the fp32 file in service, with the reason in the log.

Resemblyzer's GE2E (``.pt`` / ``.whl``) is used as it is: it is no ONNX fbank model.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
from pathlib import Path

import numpy as np

from gigaam_api import audio
from gigaam_api.speakers.int8 import CALIBRATION_CLIP, Int8Check, cached_int8, make_int8

__all__ = ["speaker_model_to_run"]

log = logging.getLogger(__name__)


def speaker_model_to_run(path: Path, models_dir: Path, *, int8: bool, threads: int = 1) -> Path:
    """``path`` itself, or its checked int8 copy (made now, once, when ``int8`` asks for it)."""
    if not int8 or path.suffix != ".onnx":
        return path
    found = cached_int8(path, models_dir)
    if found is None:
        log.info("making the int8 copy of speaker model %s (once, about half a minute)", path.name)
        try:
            found = _in_child(path, models_dir, threads)
        except Exception as exc:  # the child died, or the calibration clip cannot be read
            log.warning("speaker model %s: no int8 copy (%s); using fp32", path.name, exc)
            return path
    copy, check = found
    if copy is None:
        log.warning("speaker model %s: int8 copy refused (%s); using fp32", path.name, check.reason)
        return path
    log.info(
        "speaker model %s: int8 copy (lowest cosine to fp32 %.4f, similarity drift %.4f over %d "
        "held-out windows)",
        path.name,
        check.lowest_self_cosine,
        check.similarity_drift,
        check.windows,
    )
    return copy


def _in_child(path: Path, models_dir: Path, threads: int) -> tuple[Path | None, Int8Check]:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_make, path, models_dir, threads).result()


def _make(path: Path, models_dir: Path, threads: int) -> tuple[Path | None, Int8Check]:
    """The child's work: decode the calibration clip, make and check the copy."""
    samples = audio.load_audio(str(CALIBRATION_CLIP))
    speech = (samples.astype(np.float32) / 32768.0).astype(np.float32)
    return make_int8(path, models_dir, speech, threads=threads)
