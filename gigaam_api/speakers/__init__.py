"""Speaker diarization: who spoke when, on numpy and ONNX Runtime (no torch).

The public face the pipeline and the doors use; the modules say why each piece is shaped as
it is, and ``docs/speakers.md`` gives the whole picture with the measurements.
"""

from gigaam_api.speakers.attribution import (
    label_segments,
    speaker_at,
    split_labelled,
    split_segments,
    with_speakers,
)
from gigaam_api.speakers.catalogue import DEFAULT_SPEAKER_MODEL, SPEAKER_MODELS, SpeakerModelInfo
from gigaam_api.speakers.clustering import (
    MAX_SPEAKERS,
    Clustering,
    SpeakerClusterer,
    SpeakerCount,
    cluster_embeddings,
    name_speakers,
    speaker_labels,
)
from gigaam_api.speakers.diarizer import Diarization, Diarizer, reference_embedding
from gigaam_api.speakers.embedder import (
    FbankOnnxEmbedder,
    Ge2eEmbedder,
    SpeakerEmbedder,
    SpeakerModelError,
    load_embedder,
)
from gigaam_api.speakers.turns import SpeakerTurn, build_turns
from gigaam_api.speakers.windows import DEFAULT_HOP, SpeechWindow, plan_windows

__all__ = [
    "DEFAULT_HOP",
    "DEFAULT_SPEAKER_MODEL",
    "MAX_SPEAKERS",
    "SPEAKER_MODELS",
    "Clustering",
    "Diarization",
    "Diarizer",
    "FbankOnnxEmbedder",
    "Ge2eEmbedder",
    "SpeakerClusterer",
    "SpeakerCount",
    "SpeakerEmbedder",
    "SpeakerModelError",
    "SpeakerModelInfo",
    "SpeakerTurn",
    "SpeechWindow",
    "build_turns",
    "cluster_embeddings",
    "label_segments",
    "load_embedder",
    "name_speakers",
    "plan_windows",
    "reference_embedding",
    "speaker_at",
    "speaker_labels",
    "split_labelled",
    "split_segments",
    "with_speakers",
]
