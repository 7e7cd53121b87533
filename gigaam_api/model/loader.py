"""``load_model``: a checkpoint → an :class:`AsrModel`, through the graph cache.

Reads an official checkpoint with the safe reader (no torch), picks its tokenizer, builds the
ONNX graphs from its weights — or finds them in the graph cache (``cache.py``) — opens ONNX
Runtime sessions (``engine.py``) and hands everything to :class:`AsrModel` (``asr.py``). A
damaged cache entry is rebuilt once; an unwritable cache folder means an uncached build in a
temporary folder, so a read-only volume still serves.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gigaam_api.catalogue import CATALOGUE, tokenizer_candidates
from gigaam_api.model.asr import AsrModel
from gigaam_api.model.cache import (
    ENCODER_FILE,
    STEP_FILE,
    GraphFiles,
    cache_key,
    checkpoint_digest,
    ensure_graphs,
    prune_stale_graphs,
    rebuild_graphs,
)
from gigaam_api.model.checkpoint import Checkpoint, read_checkpoint
from gigaam_api.model.engine import (
    EncoderSession,
    EngineError,
    StepSession,
    effective_threads,
    resolve_device,
)
from gigaam_api.model.features import MEL_FB_KEY, WINDOW_KEY, FeatureError, FeatureExtractor
from gigaam_api.model.language import supported_languages
from gigaam_api.model.spec import (
    GRAPH_VERSION,
    ModelError,
    ModelSpec,
    UnsupportedModelError,
    model_spec,
)
from gigaam_api.model.tokenizer import Tokenizer, TokenizerError, load_tokenizer

__all__ = ["load_model"]

log = logging.getLogger(__name__)


def load_model(
    checkpoint_path: str | Path,
    tokenizer_path: str | Path | None = None,
    *,
    quantize_int8: bool = False,
    num_threads: int | None = None,
    device: str = "auto",
    cache_dir: str | Path | None = None,
) -> AsrModel:
    """Load an official GigaAM ASR checkpoint (v1, v2, v3, multilingual) on ONNX Runtime.

    * ``tokenizer_path``: SentencePiece model of an e2e checkpoint; by default it is looked
      for next to the checkpoint (:func:`gigaam_api.catalogue.tokenizer_candidates`).
    * ``quantize_int8``: dynamic int8 for the encoder's large matrix products.
    * ``num_threads``: encoder intra-op threads (``None`` → ``min(4, cores)``).
    * ``device``: auto | cpu | cuda | mps (see :func:`engine.resolve_device`).
    * ``cache_dir``: where built graphs are kept (``MODELS_DIR``); ``None`` builds them into a
      temporary folder for this process only.

    Raises :class:`CheckpointError` (unreadable file), :class:`UnsupportedModelError` (SSL
    or emotion checkpoints, or a config option the engine cannot build, named by its field),
    :class:`TokenizerError`/:class:`ModelError` (tokenizer missing or not matching the model)
    and :class:`DeviceError`.
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
    tokenizer = _tokenizer(ckpt, spec, checkpoint_path, tokenizer_path)
    if tokenizer.blank_id != spec.blank_id:
        raise ModelError(
            f"tokenizer has {tokenizer.blank_id} tokens but {name} predicts "
            f"{spec.num_classes - 1} (+ blank): wrong tokenizer for this checkpoint?"
        )
    # Copies, so nothing keeps the checkpoint's memory map (and its touched pages) alive.
    featurizer = _featurizer(ckpt, spec)
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
                files = rebuild_graphs(files, build)
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


def _featurizer(ckpt: Checkpoint, spec: ModelSpec) -> FeatureExtractor:
    """The front end from the checkpoint's own window and filterbank, shaped by its config.

    Copies of the two buffers, so nothing keeps the checkpoint's memory map alive.
    """
    front = spec.front_end
    buffers = {k: np.array(v) for k, v in ckpt.state_dict.items() if k in (WINDOW_KEY, MEL_FB_KEY)}
    try:
        featurizer = FeatureExtractor.from_state_dict(
            buffers, hop_length=front.hop_length, center=front.center
        )
    except FeatureError as exc:
        raise UnsupportedModelError(f"{ckpt.path}: {exc}") from None
    if featurizer.n_fft != front.n_fft or featurizer.n_mels != front.n_mels:
        raise UnsupportedModelError(
            f"{ckpt.path}: the front-end buffers are for n_fft={featurizer.n_fft}, "
            f"{featurizer.n_mels} mel bands, but preprocessor says n_fft={front.n_fft}, "
            f"features={front.n_mels}"
        )
    return featurizer


def _tokenizer(
    ckpt: Checkpoint, spec: ModelSpec, checkpoint_path: Path, tokenizer_path: str | Path | None
) -> Tokenizer:
    """Characters when the config holds a vocabulary (``decoding.vocabulary`` or v1/v2's
    top-level ``labels``: ``spec`` found it), else the SentencePiece file (always for the
    official models published with one, as upstream's loader does)."""
    official = CATALOGUE.get(str(ckpt.cfg.get("model_name") or checkpoint_path.stem))
    # upstream gives the published tokenizer to the models it publishes one for (v1_rnnt,
    # e2e), whatever their config says; otherwise a vocabulary in the config means characters
    if spec.vocabulary is not None and not (official is not None and official.tokenizer):
        return load_tokenizer({"vocabulary": list(spec.vocabulary)})
    decoding = ckpt.cfg.get("decoding")
    if not isinstance(decoding, dict):
        raise ModelError(f"{checkpoint_path}: config has no decoding section")
    if tokenizer_path is not None:
        return load_tokenizer({}, tokenizer_path)
    model_path = decoding.get("model_path")
    tried = tokenizer_candidates(checkpoint_path, str(model_path) if model_path else None)
    for candidate in tried:
        if candidate.is_file():
            return load_tokenizer({}, candidate)
    raise TokenizerError(
        f"{checkpoint_path.name} needs its SentencePiece tokenizer; looked for "
        + " and ".join(str(p) for p in tried)
        + " (pass tokenizer_path / set TOKENIZER_PATH)"
    )


def _build_graphs(
    ckpt: Checkpoint, spec: ModelSpec, directory: Path, quantize_int8: bool
) -> dict[str, Any]:
    from gigaam_api.model import graph  # onnx is a heavy import: only when building

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
    tokenizer: Tokenizer,
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
        languages=_languages(name, tokenizer),
    )


def _languages(name: str, tokenizer: Tokenizer) -> tuple[str, ...]:
    """What the vocabulary can write; for an official model, only what upstream publishes it
    for (a Russian e2e vocabulary with a few Latin pieces is not an English model)."""
    written = supported_languages(tokenizer.pieces(list(range(tokenizer.blank_id))))
    known = CATALOGUE.get(name)
    if known is None:
        return written
    return tuple(code for code in written if code in known.languages)
