"""An int8 copy of a speaker model, made on this machine from the real weights and checked there.

Why: the default speaker model (CAM++) is convolutions from end to end, and in fp32 its
network costs 28–41 ms of CPU per 1.5 s window on an AVX2 core — about 17–19 % of what the
int8 recogniser spends on the same hour of a meeting, above the ≤ 15 % that speaker labels may
add (``benchmarks/README.md``). ONNX Runtime's statically quantized convolutions (``QLinearConv``,
per-channel int8 weights, uint8 activations) take a third of that away. ONNX Runtime's
*dynamic* int8 convolutions (``ConvInteger``) would need no calibration, but they are about four
times *slower* than fp32 here, so they are no option.

Static quantization needs the range of every activation, measured by running the model over real
speech ("calibration"). The publisher ships only the fp32 file, and the ranges depend on the
weights, so the int8 copy is made where the real file is: on the first load, from a minute of
real speech that ships with the package (``calibration.opus``: several Russian voices, MIT and
Apache-2.0, see ``docs/speakers.md``). Then it is **checked against the fp32 model on windows of
that speech which calibration did not see**, on what clustering actually compares — the cosine
similarities between windows:

* every window's int8 embedding must stay within cosine :data:`MIN_SELF_COSINE` of its fp32 one;
* no similarity between two windows may move by more than :data:`MAX_SIMILARITY_DRIFT`.

A copy that fails the check (or cannot be made at all: an unusual graph) is not used; the fp32
model serves, and the reason is logged and remembered, so the next start does not try again.
The copy and the check's figures live in ``<cache>/speaker-int8/<key>/``, keyed by the fp32
file's SHA-256, :data:`QUANTIZER_VERSION` and the ONNX Runtime version; it is built in a
temporary folder and renamed into place under a file lock, so two processes never build it at
once and a crash leaves nothing half-written (a damaged folder is made again).

Only ONNX fbank models (:class:`~gigaam_api.speakers.embedder.FbankOnnxEmbedder`: CAM++,
ResNet34) are quantized; Resemblyzer's GE2E is a small LSTM whose cost is already 4–5 %.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from gigaam_api.constants import SAMPLE_RATE
from gigaam_api.speakers.embedder import FbankOnnxEmbedder, SpeakerModelError

__all__ = [
    "CALIBRATION_CLIP",
    "MAX_SIMILARITY_DRIFT",
    "MIN_SELF_COSINE",
    "QUANTIZER_VERSION",
    "Int8Check",
    "cached_int8",
    "compare",
    "make_int8",
]

log = logging.getLogger(__name__)

#: Bump when the way the copy is made changes: older copies are then made again.
QUANTIZER_VERSION: Final = 1
#: Lowest cosine between a held-out window's int8 and fp32 embeddings that is accepted.
MIN_SELF_COSINE: Final = 0.95
#: Largest change of the cosine similarity between two held-out windows that is accepted.
MAX_SIMILARITY_DRIFT: Final = 0.05

#: A minute of real speech (the speech regions of six corpus recordings, several voices, MIT
#: and Apache-2.0; docs/speakers.md) that calibrates and checks the copy.
CALIBRATION_CLIP: Final = Path(__file__).with_name("calibration.opus")

_FOLDER: Final = "speaker-int8"
#: The copy is ``<the fp32 file's stem>.int8.onnx``: its name shows in the logs.
_SUFFIX: Final = ".int8.onnx"
_CHECK_FILE: Final = "check.json"
_BLOCK: Final = 4 << 20

Float32Array = NDArray[np.float32]


@dataclass(frozen=True)
class Int8Check:
    """How the int8 copy compared with the fp32 model on held-out speech, and the verdict."""

    accepted: bool
    #: Held-out windows compared (0 when the copy could not be made).
    windows: int = 0
    #: Lowest cosine between a window's int8 and fp32 embeddings.
    lowest_self_cosine: float = 0.0
    #: Largest change of a window-to-window similarity.
    similarity_drift: float = 0.0
    #: Why it was refused (empty when accepted).
    reason: str = ""


def cached_int8(source: Path, cache_dir: Path) -> tuple[Path | None, Int8Check] | None:
    """The copy of ``source`` made earlier and its check, or ``None`` when none was made yet."""
    return _read(_folder(source, cache_dir))


def make_int8(
    source: Path,
    cache_dir: Path,
    speech: Float32Array,
    *,
    threads: int = 1,
    min_self_cosine: float = MIN_SELF_COSINE,
    max_drift: float = MAX_SIMILARITY_DRIFT,
) -> tuple[Path | None, Int8Check]:
    """Make (once) and check the int8 copy of the fp32 ``source``; ``None`` when refused.

    ``speech`` is 16 kHz mono float audio of real voices (:data:`CALIBRATION_CLIP`): windows
    at even multiples of half the model's window calibrate, the windows in between check.
    Peak memory is several hundred MB while the ranges are measured: the server calls this in
    a child process (``gigaam_api/speaker_int8.py``).
    """
    from filelock import FileLock

    final = _folder(source, cache_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final.parent / f"{final.name}.lock")):
        if _read(final) is None:  # nobody made it while we waited (or it is damaged)
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
            try:
                check = _make(source, tmp, speech, threads, min_self_cosine, max_drift)
                (tmp / _CHECK_FILE).write_text(json.dumps(asdict(check), indent=1))
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    made = _read(final)
    if made is None:
        raise OSError(f"{final} was written but cannot be read back")
    return made


def _folder(source: Path, cache_dir: Path) -> Path:
    """One folder per model file, quantizer version and ONNX Runtime version (another ONNX
    Runtime may quantize differently: its copy is made and checked anew)."""
    import onnxruntime

    key = f"{_sha256(source)[:24]}-q{QUANTIZER_VERSION}-ort{onnxruntime.__version__}"
    return Path(cache_dir) / _FOLDER / key


def _read(final: Path) -> tuple[Path | None, Int8Check] | None:
    """The copy and verdict in ``final``; ``None`` when there is none or it is damaged."""
    try:
        check = Int8Check(**json.loads((final / _CHECK_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    model = next(final.glob(f"*{_SUFFIX}"), None)
    if check.accepted and model is None:
        return None
    return (model if check.accepted else None), check


def _make(
    source: Path,
    folder: Path,
    speech: Float32Array,
    threads: int,
    min_self_cosine: float,
    max_drift: float,
) -> Int8Check:
    """Quantize ``source`` into ``folder`` and check it; a refusal keeps no model file."""
    reference = FbankOnnxEmbedder(source, threads=threads)
    calibration, held_out = _windows(speech, reference.window_seconds)
    if len(calibration) < 2 or len(held_out) < 2:
        raise SpeakerModelError("the calibration speech is shorter than four windows")
    target = folder / f"{source.stem}{_SUFFIX}"
    try:
        _quantize(source, target, [reference.features(w) for w in calibration])
        quantized = FbankOnnxEmbedder(target, threads=threads)
    except Exception as exc:  # ONNX / ORT raise many types for a graph they cannot take
        target.unlink(missing_ok=True)
        return Int8Check(False, reason=f"could not be quantized: {type(exc).__name__}: {exc}")
    fp32, int8 = reference.embed(held_out), quantized.embed(held_out)
    check = compare(fp32, int8, min_self_cosine, max_drift)
    if not check.accepted:
        target.unlink()
    return check


def compare(
    fp32: Float32Array, int8: Float32Array, min_self_cosine: float, max_drift: float
) -> Int8Check:
    """The check's verdict on unit embeddings of the same windows from both models."""
    self_cosine = float((fp32 * int8).sum(axis=1).min())
    drift = float(np.abs(fp32 @ fp32.T - int8 @ int8.T).max())
    reasons = []
    if not self_cosine >= min_self_cosine:  # also refuses NaN
        reasons.append(f"a window's embedding is at cosine {self_cosine:.3f} < {min_self_cosine}")
    if not drift <= max_drift:
        reasons.append(f"a similarity between windows moved by {drift:.3f} > {max_drift}")
    return Int8Check(
        accepted=not reasons,
        windows=len(fp32),
        lowest_self_cosine=round(self_cosine, 5),
        similarity_drift=round(drift, 5),
        reason="; ".join(reasons),
    )


def _windows(speech: Float32Array, seconds: float) -> tuple[list[Float32Array], list[Float32Array]]:
    """Calibration windows (starts at even multiples of half a window) and held-out ones (odd)."""
    size = round(seconds * SAMPLE_RATE)
    half = size // 2
    starts = range(0, len(speech) - size + 1, half)
    windows = [speech[s : s + size] for s in starts]
    return windows[0::2], windows[1::2]


def _quantize(source: Path, target: Path, features: Sequence[Float32Array]) -> None:
    """ONNX Runtime static quantization: QOperator, per-channel int8 weights, uint8 activations
    calibrated (min/max) on ``features``; sherpa-onnx's metadata carried over."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    original = onnx.load(str(source), load_external_data=False)
    input_name = original.graph.input[0].name

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._items = iter([{input_name: f[None]} for f in features])

        def get_next(self) -> dict[str, Any] | None:
            return next(self._items, None)

    prepared = target.with_name("prepared.onnx")
    noise = _QuantizerNoise()
    logging.getLogger().addFilter(noise)
    try:
        # Folds what ONNX Runtime can fold before the ranges are measured; the symbolic shape
        # pass (sympy) is not needed for these graphs.
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
    finally:
        logging.getLogger().removeFilter(noise)
        prepared.unlink(missing_ok=True)
    model = onnx.load(str(target))
    del model.metadata_props[:]
    model.metadata_props.extend(original.metadata_props)
    onnx.save(model, str(target))


class _QuantizerNoise(logging.Filter):
    """Drops what ONNX Runtime's quantizer logs on the root logger: a warning for every shape
    tensor it rightly leaves alone (hundreds per CAM++ graph)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()
