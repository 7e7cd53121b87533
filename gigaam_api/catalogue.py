"""The official GigaAM models: one table that settings, downloads, the CLI and the engine read.

Each entry says what a published checkpoint is (a CTC or RNN-T recogniser, or an SSL encoder /
emotion classifier that produces no text), whether a SentencePiece tokenizer file is published
beside it, the MD5 of the checkpoint as upstream lists it, the languages it transcribes, its
size and licence, and whether this engine can run it. The engine builds every recogniser's
layout from the checkpoint's own config (``gigaam_api/model/spec.py``): v3, the multilingual
models, v2 and v1. SSL encoders and the emotion classifier produce no text and are listed only
so that asking for them gets a clear answer.

Where the facts come from: names, MD5s and the CDN path pattern are upstream's loader
(``gigaam/__init__.py``; the multilingual MD5s from its 0.2.0 loader, PR #81); parameter
counts from upstream's README (v1: 242M CTC / 243M RNN-T; v2/v3: 220-240M) and the
multilingual release (220M / 600M); download sizes are given only where published (the
multilingual fp32 files: 883 MB and 2.34 GB). Licence: MIT, upstream's LICENSE since the v2
release (2024-12), which covers the weights it publishes.

This module imports nothing from the package, so every layer may depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "CATALOGUE",
    "LICENCE",
    "MULTILINGUAL_LANGUAGES",
    "NON_TRANSCRIPTION_MODELS",
    "OFFICIAL_WEIGHTS_URL",
    "RUNNABLE_MODELS",
    "TOKENIZER_SUFFIX",
    "ModelInfo",
    "tokenizer_beside",
    "tokenizer_candidates",
]

#: Where the official checkpoints are published; ``WEIGHTS_URL`` may point at a mirror.
OFFICIAL_WEIGHTS_URL: Final = "https://cdn.chatwm.opensmodel.sberdevices.ru/GigaAM"
#: A checkpoint's tokenizer file is ``<checkpoint stem>`` + this, in the checkpoint's folder.
TOKENIZER_SUFFIX: Final = "_tokenizer.model"
CHECKPOINT_SUFFIX: Final = ".ckpt"


#: The languages of the multilingual models (ISO 639-1), in upstream's order.
MULTILINGUAL_LANGUAGES: Final = ("ru", "en", "kk", "ky", "uz")
LICENCE: Final = "MIT"


@dataclass(frozen=True)
class ModelInfo:
    """One published checkpoint: what it is, what comes with it and whether we can run it."""

    name: str
    #: MD5 of ``<name>.ckpt`` as upstream publishes it (tokenizers are not hashed upstream).
    md5: str
    #: The decoder of a recogniser; ``None`` for models that produce no text (SSL, emotion).
    kind: Literal["ctc", "rnnt"] | None
    #: Whether ``<name>_tokenizer.model`` (SentencePiece) is published next to the checkpoint.
    tokenizer: bool
    #: Whether this engine can load it (every recogniser).
    runnable: bool
    #: Languages it transcribes (ISO 639-1); empty for models that produce no text.
    languages: tuple[str, ...] = ("ru",)
    #: Parameters in millions, as upstream states them (``None``: not stated).
    params_m: int | None = None
    #: Size of the published ``.ckpt`` in MB, where it is published (``None``: not stated).
    size_mb: int | None = None
    licence: str = LICENCE
    #: Family, for listings: v1, v2, v3, multilingual.
    generation: str = "v3"

    @property
    def checkpoint_file(self) -> str:
        """File name of the checkpoint, on the server and in ``MODELS_DIR``."""
        return f"{self.name}{CHECKPOINT_SUFFIX}"

    @property
    def tokenizer_file(self) -> str | None:
        """File name of the tokenizer, ``None`` for models without one."""
        return f"{self.name}{TOKENIZER_SUFFIX}" if self.tokenizer else None


def _entries(*rows: ModelInfo) -> Mapping[str, ModelInfo]:
    return {row.name: row for row in rows}


def _asr(
    name: str,
    md5: str,
    kind: Literal["ctc", "rnnt"],
    tokenizer: bool,
    *,
    params_m: int,
    languages: tuple[str, ...] = ("ru",),
    size_mb: int | None = None,
) -> ModelInfo:
    return ModelInfo(
        name,
        md5,
        kind,
        tokenizer,
        True,
        languages=languages,
        params_m=params_m,
        size_mb=size_mb,
        generation=name.split("_")[0],
    )


def _silent(name: str, md5: str) -> ModelInfo:
    return ModelInfo(name, md5, None, False, False, languages=(), generation=name.split("_")[0])


_ML: Final = MULTILINGUAL_LANGUAGES

#: Every published checkpoint. Tokenizers are published for the e2e models and for v1_rnnt
#: (upstream's rule); recognisers are listed first, in the order settings offer them: v3,
#: multilingual, v2, v1.
CATALOGUE: Final[Mapping[str, ModelInfo]] = _entries(
    _asr("v3_ctc", "73413e7be9c6a5935827bfab5c0dd678", "ctc", False, params_m=220),
    _asr("v3_e2e_ctc", "367074d6498f426d960b25f49531cf68", "ctc", True, params_m=220),
    _asr("v3_rnnt", "0fd2c9a1ff66abd8d32a3a07f7592815", "rnnt", False, params_m=220),
    _asr("v3_e2e_rnnt", "2730de7545ac43ad256485a462b0a27a", "rnnt", True, params_m=220),
    _asr(
        "multilingual_ctc",
        "5379d887c53ccd9cb95981e2a1832720",
        "ctc",
        False,
        languages=_ML,
        params_m=220,
        size_mb=883,
    ),
    _asr(
        "multilingual_large_ctc",
        "79a9adde50dd7f35bbf70927cb6557d0",
        "ctc",
        False,
        languages=_ML,
        params_m=600,
        size_mb=2340,
    ),
    _asr("v2_ctc", "e00f59cb5d39624fb30d1786044795bf", "ctc", False, params_m=240),
    _asr("v2_rnnt", "547460139acfebd842323f59ed54ab54", "rnnt", False, params_m=240),
    _asr("v1_ctc", "f027f199e590a391d015aeede2e66174", "ctc", False, params_m=242),
    _asr("v1_rnnt", "02c758999bcdc6afcb2087ef256d47ef", "rnnt", True, params_m=243),
    _silent("v1_ssl", "dc7f7b231f7f91c4968dc21910e7b396"),
    _silent("v2_ssl", "cd4cf819c8191a07b9d7edcad111668e"),
    _silent("v3_ssl", "70cbf5ed7303a0ed242ddb257e9dc6a6"),
    _silent("emo", "7ce76f9535cb254488985057c0d33006"),
)

#: Names the engine can load: what settings, the CLI and ``/v1/models`` may offer.
RUNNABLE_MODELS: Final[tuple[str, ...]] = tuple(n for n, m in CATALOGUE.items() if m.runnable)
#: Published models that produce embeddings or emotions, not text.
NON_TRANSCRIPTION_MODELS: Final[tuple[str, ...]] = tuple(
    n for n, m in CATALOGUE.items() if m.kind is None
)


def tokenizer_beside(checkpoint: Path) -> Path:
    """``<stem>_tokenizer.model`` in the checkpoint's folder: where a tokenizer is looked for."""
    return checkpoint.with_name(f"{checkpoint.stem}{TOKENIZER_SUFFIX}")


def tokenizer_candidates(checkpoint: Path, configured: str | None = None) -> Sequence[Path]:
    """Where to look for a checkpoint's SentencePiece tokenizer, in order.

    ``configured`` is the checkpoint config's ``decoding.model_path``: upstream stores the path
    it downloaded to, never one usable here, so only its file name is tried, in the
    checkpoint's folder. Then :func:`tokenizer_beside`, which covers renamed fine-tunes.
    """
    tried = []
    if configured:
        tried.append(checkpoint.parent / Path(configured).name)
    tried.append(tokenizer_beside(checkpoint))
    return tried
