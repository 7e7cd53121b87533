"""Settings → a loaded model: the one wiring that the server and the CLI share.

It sits above both the downloader (:mod:`gigaam_api.weights`, which only fetches and verifies
files) and the engine (:mod:`gigaam_api.model`, which knows nothing of settings), so neither
has to know about the other.
"""

from __future__ import annotations

from gigaam_api.config import Settings
from gigaam_api.model import AsrModel, load_model
from gigaam_api.weights import model_paths

__all__ = ["load_model_from_settings"]


def load_model_from_settings(settings: Settings) -> AsrModel:
    """The model the settings ask for: ``CHECKPOINT_PATH`` or ``MODEL`` (cached or downloaded).

    Shared by the server and the CLI so both load exactly the same way. Built graphs are cached
    under ``MODELS_DIR``; the engine falls back to an uncached build if it is not writable.
    """
    checkpoint, tokenizer = model_paths(settings)
    return load_model(
        checkpoint,
        tokenizer,
        quantize_int8=settings.quantize_int8,
        num_threads=settings.num_threads,
        device=settings.device,
        cache_dir=settings.models_dir,
    )
