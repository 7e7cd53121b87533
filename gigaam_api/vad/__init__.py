"""Silero VAD (v5/v6, 16 kHz) on ONNX Runtime: speech regions from a stream of PCM blocks.

The package face. ``graph`` rebuilds the Silero network as a sequence graph from the installed
model file's weights, ``model`` runs it (one ONNX Runtime call per block of windows instead of
one per 32 ms window), ``detector`` turns the probabilities into speech regions the way
``get_speech_timestamps`` does, as the audio streams in.
"""

from __future__ import annotations

from gigaam_api.vad.detector import SileroVad, SpeechRegion, speech_regions
from gigaam_api.vad.graph import CONTEXT, WINDOW, VadModelError
from gigaam_api.vad.model import (
    BATCH_WINDOWS,
    SileroModel,
    default_model,
    model_path,
    window_probabilities,
)

__all__ = [
    "BATCH_WINDOWS",
    "CONTEXT",
    "WINDOW",
    "SileroModel",
    "SileroVad",
    "SpeechRegion",
    "VadModelError",
    "default_model",
    "model_path",
    "speech_regions",
    "window_probabilities",
]
