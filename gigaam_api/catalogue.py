"""The official GigaAM models: one table that settings, downloads, the CLI and the engine read.

Each entry says what a published checkpoint is (a CTC or RNN-T recogniser, or an SSL encoder /
emotion classifier that produces no text), whether a SentencePiece tokenizer file is published
beside it, the MD5 of the checkpoint as upstream lists it, and whether this engine can run it.
Only v3 recognisers can be run: the graph builder (``gigaam_api/model/spec.py``) refuses the
v1/v2 layouts, so nothing that offers model names (settings, the CLI) offers those.

This module imports nothing from the package, so every layer may depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "CATALOGUE",
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
    #: Whether this engine can load it (v3 recognisers only).
    runnable: bool

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


#: Every published checkpoint. Tokenizers are published for the e2e models and for v1_rnnt
#: (upstream's rule); the v3 recognisers are listed first, in the order settings offer them.
CATALOGUE: Final[Mapping[str, ModelInfo]] = _entries(
    ModelInfo("v3_ctc", "73413e7be9c6a5935827bfab5c0dd678", "ctc", False, True),
    ModelInfo("v3_e2e_ctc", "367074d6498f426d960b25f49531cf68", "ctc", True, True),
    ModelInfo("v3_rnnt", "0fd2c9a1ff66abd8d32a3a07f7592815", "rnnt", False, True),
    ModelInfo("v3_e2e_rnnt", "2730de7545ac43ad256485a462b0a27a", "rnnt", True, True),
    ModelInfo("v2_ctc", "e00f59cb5d39624fb30d1786044795bf", "ctc", False, False),
    ModelInfo("v2_rnnt", "547460139acfebd842323f59ed54ab54", "rnnt", False, False),
    ModelInfo("v1_ctc", "f027f199e590a391d015aeede2e66174", "ctc", False, False),
    ModelInfo("v1_rnnt", "02c758999bcdc6afcb2087ef256d47ef", "rnnt", True, False),
    ModelInfo("v1_ssl", "dc7f7b231f7f91c4968dc21910e7b396", None, False, False),
    ModelInfo("v2_ssl", "cd4cf819c8191a07b9d7edcad111668e", None, False, False),
    ModelInfo("v3_ssl", "70cbf5ed7303a0ed242ddb257e9dc6a6", None, False, False),
    ModelInfo("emo", "7ce76f9535cb254488985057c0d33006", None, False, False),
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
