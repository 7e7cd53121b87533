"""The speaker-embedding models this service can fetch by name: where each comes from and why.

Each entry is a single ONNX file published by sherpa-onnx (Apache-2.0) in its GitHub release
``speaker-recongition-models`` (the tag is spelled that way upstream), downloadable with no
account or token. The SHA-256 and size are the ones several independent projects pin for the
same release asset (sherpa-onnx publishes no checksum file beside it; GitHub shows the asset's
SHA-256 digest on the release page): a download that does not match is deleted and refused.

* ``campplus_voxceleb`` (the default): 3D-Speaker's CAM++ trained on VoxCeleb (ModelScope
  ``iic/speech_campplus_sv_en_voxceleb_16k``, Apache-2.0), 512-dimensional, ~7 M parameters,
  about a quarter of ResNet34's compute per second of audio (CAM++ paper: 1.7 vs 6.8 GFLOPs),
  which is what the diarization budget (≤ 15 % of int8 transcription time) needs on 2 cores.
* ``wespeaker_resnet34_lm``: WeSpeaker's ResNet34 with large-margin fine-tuning on VoxCeleb
  (the embedding pyannote 3.1 uses), 256-dimensional; CC-BY-4.0 (attribution required: the
  VoxCeleb-trained WeSpeaker models follow the dataset's licence).

Both take 80-bin Kaldi fbank (:mod:`gigaam_api.speakers.fbank`); the file's own ONNX metadata
(``normalize_samples``, ``feature_normalize_type``, ``output_dim``) says how, as sherpa-onnx
reads it. Resemblyzer's GE2E encoder (:mod:`gigaam_api.speakers.ge2e`) is not listed: it is
loaded from a local path (its wheel or ``pretrained.pt``), which is how the tests use it.

This module imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_SPEAKER_MODEL", "SPEAKER_MODELS", "SpeakerModelInfo"]

_RELEASE: Final = (
    "https://github.com/k2-fsa/sherpa-onnx/releases/download/speaker-recongition-models"
)


@dataclass(frozen=True)
class SpeakerModelInfo:
    """One downloadable speaker-embedding model."""

    name: str
    #: File name in the release and in ``MODELS_DIR``.
    file: str
    url: str
    #: SHA-256 of the file (hex), checked after every download.
    sha256: str
    #: Size in bytes, for the download's progress and a quick sanity check.
    size: int
    licence: str
    #: Who trained it and where the original lives.
    source: str


def _entries(*rows: SpeakerModelInfo) -> Mapping[str, SpeakerModelInfo]:
    return {row.name: row for row in rows}


SPEAKER_MODELS: Final[Mapping[str, SpeakerModelInfo]] = _entries(
    SpeakerModelInfo(
        name="campplus_voxceleb",
        file="3dspeaker_speech_campplus_sv_en_voxceleb_16k.onnx",
        url=f"{_RELEASE}/3dspeaker_speech_campplus_sv_en_voxceleb_16k.onnx",
        sha256="357a834f702b80161e5b981182c038e18553c1f2ca752ed6cec2052365d4129b",
        size=29_596_978,
        licence="Apache-2.0",
        source="3D-Speaker CAM++ (ModelScope iic/speech_campplus_sv_en_voxceleb_16k), "
        "exported to ONNX by sherpa-onnx",
    ),
    SpeakerModelInfo(
        name="wespeaker_resnet34_lm",
        file="wespeaker_en_voxceleb_resnet34_LM.onnx",
        url=f"{_RELEASE}/wespeaker_en_voxceleb_resnet34_LM.onnx",
        sha256="e9848563da86f263117134dfd7ad63c92355b37de492b55e325400c9d9c39012",
        size=26_530_550,
        licence="CC-BY-4.0",
        source="WeSpeaker ResNet34-LM trained on VoxCeleb (wenet-e2e/wespeaker), "
        "ONNX with metadata by sherpa-onnx",
    ),
)

#: The model diarization uses unless ``DIARIZATION_MODEL`` names another or a local file.
DEFAULT_SPEAKER_MODEL: Final = "campplus_voxceleb"
