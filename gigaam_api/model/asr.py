"""The loaded recogniser: features → encoder (ONNX Runtime) → greedy decoding → results.

:class:`AsrModel` only runs what :func:`gigaam_api.model.load_model` (``loader.py``) put
together; it knows nothing of checkpoints, graph building or the cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from threading import Lock
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from gigaam_api.constants import SAMPLE_RATE
from gigaam_api.model.cache import GraphFiles
from gigaam_api.model.ctc_beam import ctc_beam_search
from gigaam_api.model.decoding import (
    Hypothesis,
    Result,
    StepOutput,
    ctc_greedy,
    make_result,
    rnnt_greedy,
)
from gigaam_api.model.engine import EncoderSession, StepSession
from gigaam_api.model.features import FeatureError, FeatureExtractor
from gigaam_api.model.keywords import (
    ContextGraph,
    Keyword,
    KeywordVocabulary,
    compile_keywords,
)
from gigaam_api.model.language import LanguageError, allowed_classes, normalize_language
from gigaam_api.model.rnnt_beam import rnnt_beam_search_batch
from gigaam_api.model.spec import ModelError
from gigaam_api.model.tokenizer import SentencePieceTokenizer, Tokenizer

__all__ = ["AsrModel", "Keywords"]

#: What :meth:`AsrModel.transcribe` takes as ``keywords``: one graph for every wave, or one
#: (or ``None``) per wave, or ``None`` (greedy decoding for all).
Keywords = ContextGraph | Sequence[ContextGraph | None] | None

#: Compiled keyword lists kept per model (the same server-wide list comes with every request).
_GRAPH_CACHE_SIZE = 32


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
        tokenizer: Tokenizer,
        blank_id: int,
        quantized: bool,
        num_threads: int,
        graphs: GraphFiles | None,
        languages: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        #: ISO 639-1 codes ``transcribe(language=...)`` accepts (see ``language.py``).
        self.languages = languages
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
        self._masks: dict[str, NDArray[np.bool_] | None] = {}
        self._graphs: OrderedDict[tuple[tuple[Keyword, ...], float], ContextGraph] = OrderedDict()
        self._graphs_lock = Lock()
        self._keyword_vocabulary: KeywordVocabulary | None = None

    def __repr__(self) -> str:
        precision = "int8" if self.quantized else "fp32"
        return f"<AsrModel {self.name} {self.kind} {precision} on {self.device}>"

    @property
    def encoder(self) -> EncoderSession:
        """The encoder + head session that :meth:`transcribe` runs (for tests and tools)."""
        return self._encoder

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

    def language_mask(self, language: str) -> NDArray[np.bool_] | None:
        """The classes ``language`` allows (``None``: all of them, nothing to restrict).

        Raises :class:`LanguageError` for a language this model does not serve.
        """
        code = normalize_language(language)
        if code not in self.languages:
            raise LanguageError(code, self.languages, self.name)
        if code not in self._masks:
            pieces = self.tokenizer.pieces(list(range(self.blank_id)))
            mask = allowed_classes(pieces, code)
            self._masks[code] = None if mask.all() else mask
        return self._masks[code]

    def compile_keywords(self, keywords: Sequence[Keyword], default_boost: float) -> ContextGraph:
        """The context graph of ``keywords`` in this model's tokens (``keywords.py``).

        Raises :class:`KeywordError` naming the first phrase the model cannot write. Cheap to
        call for every request: the last few lists compiled are kept.
        """
        key = (tuple(keywords), float(default_boost))
        with self._graphs_lock:
            graph = self._graphs.get(key)
            if graph is not None:
                self._graphs.move_to_end(key)
                return graph
        graph = compile_keywords(keywords, default_boost, self._vocabulary())
        with self._graphs_lock:
            self._graphs[key] = graph
            while len(self._graphs) > _GRAPH_CACHE_SIZE:
                self._graphs.popitem(last=False)
        return graph

    def _vocabulary(self) -> KeywordVocabulary:
        if self._keyword_vocabulary is None:
            pieces = tuple(self.tokenizer.pieces(list(range(self.blank_id))))
            tokenizer = self.tokenizer
            encoder = tokenizer if isinstance(tokenizer, SentencePieceTokenizer) else None
            self._keyword_vocabulary = KeywordVocabulary(pieces, encoder)
        return self._keyword_vocabulary

    def transcribe(
        self,
        waves: Sequence[NDArray[Any]],
        language: str | Sequence[str | None] | None = None,
        keywords: Keywords = None,
    ) -> list[Result]:
        """Decode a batch of float32 mono 16 kHz waves in [-1, 1]; one :class:`Result` each.

        ``language`` (ISO 639-1, one of :attr:`languages`) restricts the output to that
        language's alphabet: classes with other letters are removed before each greedy
        decision (``language.py``). ``None`` lets the model choose, as upstream does. A
        sequence gives each wave its own (``None`` entries unrestricted), so one model call
        may combine requests that asked for different languages.

        ``keywords`` (graphs from :meth:`compile_keywords`: one for every wave, or one or
        ``None`` per wave) switches the waves that have one to beam search with that graph
        (``ctc_beam.py``, ``rnnt_beam.py``); the others, and every wave when it is ``None``,
        are decoded greedily exactly as without it. A language restriction applies to both.

        A wave shorter than one STFT window gives an empty result; bad input (not 1-D float,
        NaN/inf) raises :class:`FeatureError`, an unserved language :class:`LanguageError`
        (before any work is done).
        """
        masks = self._masks_for(language, len(waves))
        graphs = self._graphs_for(keywords, len(waves))
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
            row_masks = [masks[row] for row in live.tolist()]
            row_graphs = [graphs[row] for row in live.tolist()]
            restricted = any(m is not None for m in row_masks)
            searched = any(g is not None for g in row_graphs)
            need_log_probs = (restricted or searched) and self._step is None
            head, enc_lengths = self._encoder.run(
                features,
                lengths,
                ["log_probs" if need_log_probs else self._head_output, "encoded_lengths"],
            )
            if self._step is None:
                if restricted:
                    head = np.array(head)
                    for i, mask in enumerate(row_masks):
                        if mask is not None:
                            head[i][:, ~mask] = -np.inf
                hyps = ctc_greedy(head, enc_lengths, self.blank_id)
                for i, graph in enumerate(row_graphs):
                    if graph is not None:
                        hyps[i] = ctc_beam_search(
                            head[i], int(enc_lengths[i]), self.blank_id, graph
                        )
            else:
                hyps = self._rnnt(head, enc_lengths, row_masks, row_graphs)
            for i, (row, (ids, frames)) in enumerate(zip(live.tolist(), hyps, strict=True)):
                n_samples = int(np.shape(waves[row])[0])
                results[row] = make_result(
                    ids, frames, self.tokenizer, n_samples, int(enc_lengths[i])
                )
        empty = make_result([], [], self.tokenizer, 0, 0)
        return [r if r is not None else empty for r in results]

    def _masks_for(
        self, language: str | Sequence[str | None] | None, n_waves: int
    ) -> list[NDArray[np.bool_] | None]:
        """One class mask (or ``None``: unrestricted) per wave; validates every language."""
        if language is None or isinstance(language, str):
            mask = None if language is None else self.language_mask(language)
            return [mask] * n_waves
        languages = list(language)
        if len(languages) != n_waves:
            raise ModelError(f"{len(languages)} languages for {n_waves} waves")
        return [None if code is None else self.language_mask(code) for code in languages]

    def _graphs_for(self, keywords: Keywords, n_waves: int) -> list[ContextGraph | None]:
        """One keyword graph (or ``None``: greedy) per wave."""
        if keywords is None or isinstance(keywords, ContextGraph):
            return [keywords] * n_waves
        graphs = list(keywords)
        if len(graphs) != n_waves:
            raise ModelError(f"{len(graphs)} keyword graphs for {n_waves} waves")
        for graph in graphs:
            if graph is not None and not isinstance(graph, ContextGraph):
                raise ModelError(f"keywords must be ContextGraph or None, got {type(graph)}")
        return graphs

    def _rnnt(
        self,
        enc_proj: NDArray[np.float32],
        enc_lengths: NDArray[np.int32],
        masks: list[NDArray[np.bool_] | None],
        graphs: list[ContextGraph | None],
    ) -> list[Hypothesis]:
        """Greedy RNN-T, rows grouped by their restriction (each group one batched search);
        rows with keywords by beam search, likewise grouped (one step call per frame)."""
        assert self._step is not None
        groups: dict[int, list[int]] = {}
        searched: dict[int, list[int]] = {}
        hyps: list[Hypothesis] = [([], [])] * len(masks)
        for i, (mask, graph) in enumerate(zip(masks, graphs, strict=True)):
            group = searched if graph is not None else groups
            group.setdefault(-1 if mask is None else id(mask), []).append(i)
        for rows in searched.values():  # beam search, a group's rows in lockstep
            mask = masks[rows[0]]
            step_all: Any = self._step if mask is None else _RestrictedStep(self._step, mask)
            index = np.asarray(rows)
            found = rnnt_beam_search_batch(
                enc_proj[index],
                enc_lengths[index].tolist(),
                step_all,
                self.blank_id,
                [graphs[row] for row in rows],
                hidden_size=self._step.hidden_size,
            )
            for row, hyp in zip(rows, found, strict=True):
                hyps[row] = hyp
        for rows in groups.values():
            mask = masks[rows[0]]
            step: Any = self._step if mask is None else _RestrictedStep(self._step, mask)
            index = np.asarray(rows)
            found = rnnt_greedy(
                enc_proj[index] if len(rows) < len(masks) else enc_proj,
                enc_lengths[index],
                step,
                self.blank_id,
                hidden_size=self._step.hidden_size,
            )
            for row, hyp in zip(rows, found, strict=True):
                hyps[row] = hyp
        return hyps

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


class _RestrictedStep:
    """An RNN-T step whose scores exclude the classes a language does not allow."""

    def __init__(self, step: StepSession, allowed: NDArray[np.bool_]) -> None:
        self._step = step
        self._allowed = allowed
        self.hidden_size = step.hidden_size

    def __call__(
        self,
        labels: NDArray[np.int64],
        h: NDArray[np.float32],
        c: NDArray[np.float32],
        enc: NDArray[np.float32],
    ) -> StepOutput:
        scores, h_new, c_new = self._step(labels, h, c, enc)
        return np.where(self._allowed, scores, np.float32(-np.inf)), h_new, c_new
