"""GigaAM speech recognition on ONNX Runtime: :func:`load_model` → :class:`AsrModel`.

The package face: it only re-exports the public API. The modules follow the data —
``checkpoint`` (safe reader, no torch) → ``spec`` (what the checkpoint is) → ``features``
(numpy log-mel front end) → ``graph`` (ONNX graphs built from the weights) → ``cache`` (built
graphs on disk) → ``engine`` (ONNX Runtime sessions) → ``decoding`` (greedy CTC / RNN-T;
``ctc_beam`` / ``rnnt_beam`` with ``keywords`` when a request gives them) → ``tokenizer``
(text, words); ``loader`` wires them into an ``asr.AsrModel``.
"""

from __future__ import annotations

from gigaam_api.model.asr import AsrModel
from gigaam_api.model.checkpoint import CheckpointError
from gigaam_api.model.decoding import Result
from gigaam_api.model.engine import DeviceError, EngineError
from gigaam_api.model.features import FeatureError
from gigaam_api.model.keywords import DEFAULT_BOOST, ContextGraph, Keyword, KeywordError
from gigaam_api.model.language import (
    LANGUAGES,
    LanguageError,
    detect_language,
    transcript_language,
)
from gigaam_api.model.loader import load_model
from gigaam_api.model.spec import ModelError, UnsupportedModelError
from gigaam_api.model.tokenizer import DecodingError, Tokenizer, TokenizerError

__all__ = [
    "DEFAULT_BOOST",
    "LANGUAGES",
    "AsrModel",
    "CheckpointError",
    "ContextGraph",
    "DecodingError",
    "DeviceError",
    "EngineError",
    "FeatureError",
    "Keyword",
    "KeywordError",
    "LanguageError",
    "ModelError",
    "Result",
    "Tokenizer",
    "TokenizerError",
    "UnsupportedModelError",
    "detect_language",
    "load_model",
    "transcript_language",
]
