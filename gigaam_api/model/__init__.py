"""GigaAM speech recognition on ONNX Runtime: :func:`load_model` → :class:`AsrModel`.

``load_model`` reads an official checkpoint with the safe reader (no torch), builds the ONNX
graphs from its weights — or finds them in the graph cache — opens ONNX Runtime sessions and
pairs them with the numpy front end and the greedy decoders. The module layout follows the
data: ``checkpoint`` → ``features`` → ``graph`` → ``engine`` → ``decoding``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from gigaam_api.model.checkpoint import Checkpoint, CheckpointError, read_checkpoint
from gigaam_api.model.decoding import (
    DecodingError,
    Result,
    TokenizerError,
    ctc_greedy,
    load_tokenizer,
    make_result,
    rnnt_greedy,
)
from gigaam_api.model.engine import (
    DeviceError,
    EncoderSession,
    EngineError,
    GraphFiles,
    StepSession,
    cache_key,
    checkpoint_digest,
    effective_threads,
    ensure_graphs,
    prune_stale_graphs,
    resolve_device,
)
from gigaam_api.model.features import MEL_FB_KEY, WINDOW_KEY, FeatureError, FeatureExtractor
from gigaam_api.model.spec import (
    GRAPH_VERSION,
    ModelError,
    ModelSpec,
    UnsupportedModelError,
    model_spec,
)

__all__ = [
    "AsrModel",
    "CheckpointError",
    "DecodingError",
    "DeviceError",
    "EngineError",
    "FeatureError",
    "ModelError",
    "Result",
    "TokenizerError",
    "UnsupportedModelError",
    "load_model",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


class AsrModel:
    """A loaded GigaAM ASR model: features → encoder (ONNX Runtime) → greedy decoding.

    Not meant to be constructed directly: use :func:`load_model`. One instance may be shared
    by threads (ONNX Runtime sessions are thread-safe), though the service runs it from one.
    """

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        *,
        name: str,
        kind: Literal["ctc", "rnnt"],
        device: str,
        featurizer: FeatureExtractor,
        encoder: EncoderSession,
        step: StepSession | None,
        tokenizer: Any,
        blank_id: int,
        quantized: bool,
        num_threads: int,
        graphs: GraphFiles | None,
    ) -> None:
        self.name = name
        self.kind: Literal["ctc", "rnnt"] = kind
        self.device = device
        self.quantized = quantized
        self.num_threads = num_threads
        self.tokenizer = tokenizer
        self.blank_id = blank_id
        #: Where the graphs came from (``None`` when built without a cache) and if just built.
        self.graphs = graphs
        self._featurizer = featurizer
        self._encoder = encoder
        self._step = step
        self._head_output = "argmax" if kind == "ctc" else "enc_proj"

    def __repr__(self) -> str:
        precision = "int8" if self.quantized else "fp32"
        return f"<AsrModel {self.name} {self.kind} {precision} on {self.device}>"

    @property
    def step(self) -> StepSession | None:
        """The RNN-T step function ``step(labels, h, c, enc)`` (``None`` for CTC models)."""
        return self._step

    # -- pieces, for tests and tools

    def features(
        self, waves: Sequence[NDArray[Any]]
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Log-mel features [B, 64, T] float32 and their lengths [B] int64 (0 for < 320 samples)."""
        return self._featurizer(waves)

    def encode(
        self, features: NDArray[np.float32], lengths: NDArray[np.integer[Any]]
    ) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
        """Encoder output [B, D, T'] (channels first, as the reference) and lengths int32 [B]."""
        encoded, enc_lengths = self._encoder.run(
            *self._check_features(features, lengths), ["encoded", "encoded_lengths"]
        )
        return encoded.transpose(0, 2, 1), enc_lengths

    def ctc_log_probs(
        self, features: NDArray[np.float32], lengths: NDArray[np.integer[Any]]
    ) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
        """CTC log-probabilities [B, T', C] and encoder lengths int32 [B] (CTC models only)."""
        if self.kind != "ctc":
            raise ModelError(f"{self.name} is an RNN-T model: it has no CTC log-probabilities")
        log_probs, enc_lengths = self._encoder.run(
            *self._check_features(features, lengths), ["log_probs", "encoded_lengths"]
        )
        return log_probs, enc_lengths

    def transcribe(self, waves: Sequence[NDArray[Any]]) -> list[Result]:
        """Decode a batch of float32 mono 16 kHz waves in [-1, 1]; one :class:`Result` each.

        A wave shorter than 320 samples (one STFT window) gives an empty result; bad input
        (not 1-D float, NaN/inf) raises :class:`FeatureError`.
        """
        if not len(waves):
            return []
        features, lengths = self._featurizer(waves)
        live = np.flatnonzero(lengths > 0)
        results: list[Result | None] = [None] * len(waves)
        if live.size:
            if live.size < len(waves):
                # drop the empty items and the padding only they needed
                features = features[live, :, : int(lengths[live].max())]
                lengths = lengths[live]
            head, enc_lengths = self._encoder.run(
                features, lengths, [self._head_output, "encoded_lengths"]
            )
            if self._step is None:
                hyps = ctc_greedy(head, enc_lengths, self.blank_id)
            else:
                hyps = rnnt_greedy(
                    head,
                    enc_lengths,
                    self._step,
                    self.blank_id,
                    hidden_size=self._step.hidden_size,
                )
            for i, (row, (ids, frames)) in enumerate(zip(live.tolist(), hyps, strict=True)):
                n_samples = int(np.shape(waves[row])[0])
                results[row] = make_result(
                    ids, frames, self.tokenizer, n_samples, int(enc_lengths[i])
                )
        empty = make_result([], [], self.tokenizer, 0, 0)
        return [r if r is not None else empty for r in results]

    def _check_features(
        self, features: NDArray[Any], lengths: NDArray[np.integer[Any]]
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        feats = np.asarray(features)
        lens = np.asarray(lengths)
        n_mels = self._featurizer.n_mels
        if feats.ndim != 3 or feats.shape[0] < 1 or feats.shape[1] != n_mels or feats.shape[2] < 1:
            raise FeatureError(f"features must be [B>0, {n_mels}, T>0], got {feats.shape}")
        if not np.issubdtype(feats.dtype, np.floating) or not np.isfinite(feats).all():
            raise FeatureError("features must be finite floating-point values")
        if lens.shape != (feats.shape[0],) or not np.issubdtype(lens.dtype, np.integer):
            raise FeatureError(f"lengths must be {feats.shape[0]} integers, got {lens.shape}")
        if lens.size and (lens.min() < 1 or lens.max() > feats.shape[2]):
            raise FeatureError(f"lengths must lie in [1, {feats.shape[2]}], got {lens.tolist()}")
        return feats.astype(np.float32, copy=False), lens.astype(np.int64, copy=False)


def load_model(
    checkpoint_path: str | Path,
    tokenizer_path: str | Path | None = None,
    *,
    quantize_int8: bool = False,
    num_threads: int | None = None,
    device: str = "auto",
    cache_dir: str | Path | None = None,
) -> AsrModel:
    """Load an official GigaAM v3 ASR checkpoint for inference on ONNX Runtime.

    * ``tokenizer_path``: SentencePiece model of an e2e checkpoint; by default
      ``<checkpoint dir>/<basename of cfg.decoding.model_path>``, else
      ``<checkpoint stem>_tokenizer.model``.
    * ``quantize_int8``: dynamic int8 for the encoder's large matrix products.
    * ``num_threads``: encoder intra-op threads (``None`` → ``min(4, cores)``).
    * ``device``: auto | cpu | cuda | mps (see :func:`engine.resolve_device`).
    * ``cache_dir``: where built graphs are kept (``MODELS_DIR``); ``None`` builds them into a
      temporary folder for this process only.

    Raises :class:`CheckpointError` (unreadable file), :class:`UnsupportedModelError` (SSL,
    emotion or non-v3 checkpoints), :class:`TokenizerError`/:class:`ModelError` (tokenizer
    missing or not matching the model) and :class:`DeviceError`.
    """
    started = time.perf_counter()
    checkpoint_path = Path(checkpoint_path)
    resolved_device, providers = resolve_device(device)
    if quantize_int8 and resolved_device != "cpu":
        log.warning(
            "int8 quantization uses CPU kernels (DynamicQuantizeMatMul): on %s those products "
            "fall back to the CPU; fp32 is the better choice there",
            resolved_device,
        )
    ckpt = read_checkpoint(checkpoint_path)
    try:
        spec = model_spec(ckpt.cfg)
    except UnsupportedModelError as exc:
        raise UnsupportedModelError(f"{checkpoint_path}: {exc}") from None
    name = str(ckpt.cfg.get("model_name") or checkpoint_path.stem)
    tokenizer = _tokenizer(ckpt, checkpoint_path, tokenizer_path)
    if tokenizer.blank_id != spec.blank_id:
        raise ModelError(
            f"tokenizer has {tokenizer.blank_id} tokens but {name} predicts "
            f"{spec.num_classes - 1} (+ blank): wrong tokenizer for this checkpoint?"
        )
    # Copies, so nothing keeps the checkpoint's memory map (and its touched pages) alive.
    featurizer = FeatureExtractor.from_state_dict(
        {k: np.array(v) for k, v in ckpt.state_dict.items() if k in (WINDOW_KEY, MEL_FB_KEY)}
    )
    threads = effective_threads(num_threads)
    # The weights are only needed if the graphs must be built; afterwards the checkpoint
    # (a memory map of the whole file) is dropped before ONNX Runtime maps the graphs.
    source = {"checkpoint": ckpt}
    del ckpt

    def build(directory: Path) -> dict[str, Any]:
        return _build_graphs(source["checkpoint"], spec, directory, quantize_int8)

    key = cache_key(checkpoint_digest(checkpoint_path), GRAPH_VERSION, quantize_int8)
    with contextlib.ExitStack() as stack:
        files: GraphFiles | None = None
        if cache_dir is not None:
            try:
                files = ensure_graphs(Path(cache_dir), key, build)
            except OSError as exc:  # read-only or full volume: still serve, just uncached
                log.warning(
                    "graph cache %s unusable (%s); building for this process", cache_dir, exc
                )
            else:
                if files.built:
                    prune_stale_graphs(Path(cache_dir), key)
        tmp_used = files is None
        if files is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="gigaam-graphs-"))
            files = ensure_graphs(Path(tmp), key, build)

        def open_model(files: GraphFiles) -> AsrModel:
            return _open(
                name,
                spec,
                resolved_device,
                providers,
                featurizer,
                tokenizer,
                quantize_int8,
                threads,
                files,
                keep=not tmp_used,
            )

        if files.built:
            source.clear()  # fresh graphs: let the checkpoint's memory map (all touched) go
            model = open_model(files)
        else:
            try:
                model = open_model(files)
            except EngineError as exc:  # a damaged cache entry: build it again, once
                log.warning("cached graphs %s unusable (%s); rebuilding", files.directory, exc)
                shutil.rmtree(files.directory, ignore_errors=True)
                files = ensure_graphs(files.directory.parent.parent, key, build)
                source.clear()
                model = open_model(files)
        source.clear()
    log.info(
        "loaded %s (%s%s) on %s in %.2f s%s",
        name,
        spec.kind,
        ", int8" if quantize_int8 else "",
        resolved_device,
        time.perf_counter() - started,
        " (graphs built)" if files.built else "",
    )
    return model


def _tokenizer(ckpt: Checkpoint, checkpoint_path: Path, tokenizer_path: str | Path | None) -> Any:
    decoding = ckpt.cfg.get("decoding")
    if not isinstance(decoding, dict):
        raise ModelError(f"{checkpoint_path}: config has no decoding section")
    if decoding.get("vocabulary") or tokenizer_path is not None:
        return load_tokenizer(decoding, tokenizer_path)
    tried = []
    model_path = decoding.get("model_path")
    if model_path:
        tried.append(checkpoint_path.parent / Path(str(model_path)).name)
    tried.append(checkpoint_path.with_name(f"{checkpoint_path.stem}_tokenizer.model"))
    for candidate in tried:
        if candidate.is_file():
            return load_tokenizer(decoding, candidate)
    raise TokenizerError(
        f"{checkpoint_path.name} needs its SentencePiece tokenizer; looked for "
        + " and ".join(str(p) for p in tried)
        + " (pass tokenizer_path / set TOKENIZER_PATH)"
    )


def _build_graphs(
    ckpt: Checkpoint, spec: ModelSpec, directory: Path, quantize_int8: bool
) -> dict[str, Any]:
    from gigaam_api.model import graph
    from gigaam_api.model.engine import ENCODER_FILE, STEP_FILE

    started = time.perf_counter()
    try:
        encoder = graph.build_encoder(spec, ckpt.state_dict, quantize_int8=quantize_int8)
        graph.save_bundle(encoder, directory / ENCODER_FILE)
        del encoder
        if spec.kind == "rnnt":
            graph.save_bundle(graph.build_step(spec, ckpt.state_dict), directory / STEP_FILE)
    except UnsupportedModelError as exc:  # missing or misshapen weights
        raise UnsupportedModelError(f"{ckpt.path}: {exc}") from None
    seconds = time.perf_counter() - started
    log.info("built %s graphs for %s in %.1f s", spec.kind, ckpt.path.name, seconds)
    return {
        "checkpoint": ckpt.path.name,
        "graph_version": graph.GRAPH_VERSION,
        "kind": spec.kind,
        "quantize_int8": quantize_int8,
        "build_seconds": round(seconds, 3),
    }


def _open(
    name: str,
    spec: ModelSpec,
    device: str,
    providers: list[str],
    featurizer: FeatureExtractor,
    tokenizer: Any,
    quantize_int8: bool,
    threads: int,
    files: GraphFiles,
    *,
    keep: bool,
) -> AsrModel:
    encoder = EncoderSession(files.encoder, providers, threads)
    step = StepSession(files.step, spec.pred_hidden) if files.step is not None else None
    if spec.kind == "rnnt" and step is None:
        raise ModelError(f"graph cache {files.directory} lacks the RNN-T step graph")
    return AsrModel(
        name=name,
        kind=spec.kind,
        device=device,
        featurizer=featurizer,
        encoder=encoder,
        step=step,
        tokenizer=tokenizer,
        blank_id=spec.blank_id,
        quantized=quantize_int8,
        num_threads=threads,
        graphs=files if keep else None,
    )
