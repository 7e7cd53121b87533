"""Speaker labels in a session: the options a request gives, the model, the known voices.

A request that asks "who spoke when" gives :class:`SpeakerOptions` with its session options:
the expected number of speakers (``num_speakers`` / ``min_speakers`` / ``max_speakers``,
:class:`~gigaam_api.speakers.SpeakerCount`), up to four known speakers (a name and a short
reference clip, :class:`KnownSpeaker`), and — for a resumed job — the diarization so far.

The speaker model is loaded on first use (:class:`SpeakerModel`, owned by the model service):
a server that never diarizes never loads or downloads it. ``DIARIZATION_MODEL`` is a catalogue
name (fetched and checked like the GigaAM weights) or a local file; empty means the default.

Reference clips arrive as bytes in any format FFmpeg reads; they are decoded by the same
decoder as uploads (in a worker process: they are untrusted files) and must hold 2–10 s of
audio, as OpenAI's ``known_speaker_references[]`` must. A clip that is not audio or is too
short or too long is the client's error, named by ``param``.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from gigaam_api import audio
from gigaam_api.constants import SAMPLE_RATE
from gigaam_api.service.errors import ServiceError
from gigaam_api.speakers import (
    DEFAULT_SPEAKER_MODEL,
    SpeakerCount,
    SpeakerEmbedder,
    SpeakerModelError,
    load_embedder,
    reference_embedding,
)

__all__ = [
    "REFERENCE_MAX_S",
    "REFERENCE_MIN_S",
    "KnownSpeaker",
    "SpeakerModel",
    "SpeakerOptions",
    "reference_embeddings",
]

log = logging.getLogger(__name__)

#: Length a known speaker's reference clip must have (OpenAI's limits for the same field).
REFERENCE_MIN_S: Final = 2.0
REFERENCE_MAX_S: Final = 10.0
REFERENCE_PARAM: Final = "known_speaker_references"


@dataclass(frozen=True, slots=True)
class KnownSpeaker:
    """A speaker the client can name: the name, and a 2–10 s clip of their voice."""

    name: str
    audio: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SpeakerOptions:
    """Label speakers in this session (its presence on the session options turns it on)."""

    count: SpeakerCount = field(default_factory=SpeakerCount)
    known: tuple[KnownSpeaker, ...] = ()
    #: A resumed job's diarization so far (``Diarizer.snapshot()``), to go on from.
    state: bytes | None = field(default=None, repr=False)
    #: Report the diarization so far with every progress event (a job commits it).
    keep_state: bool = False


class SpeakerModel:
    """The speaker-embedding model of one server, loaded once, on first use (thread-safe)."""

    def __init__(
        self, model: str, models_dir: Path, *, threads: int = 1, int8: bool = False
    ) -> None:
        self.model = model or DEFAULT_SPEAKER_MODEL
        self.models_dir = models_dir
        self.threads = threads
        #: Run the checked int8 copy of an ONNX model (``DIARIZATION_INT8``).
        self.int8 = int8
        self._lock = threading.Lock()
        self._embedder: SpeakerEmbedder | None = None

    def get(self) -> SpeakerEmbedder:
        """The embedder; a :class:`ServiceError` (``not_ready``) when it cannot be had now."""
        with self._lock:
            if self._embedder is None:
                from gigaam_api.speaker_int8 import speaker_model_to_run
                from gigaam_api.speaker_weights import speaker_model_path
                from gigaam_api.weights import WeightsError

                try:
                    path = speaker_model_path(self.model, self.models_dir, progress=False)
                    path = speaker_model_to_run(
                        path, self.models_dir, int8=self.int8, threads=self.threads
                    )
                    self._embedder = load_embedder(path, threads=self.threads)
                except (WeightsError, SpeakerModelError, OSError) as exc:
                    log.error("speaker model %s cannot be loaded: %s", self.model, exc)
                    raise ServiceError(
                        "not_ready",
                        f"The speaker model is not available: {exc}",
                        code="speaker_model_unavailable",
                    ) from None
                log.info("speaker model %s loaded", self._embedder.name)
            return self._embedder


def _reference_error(index: int, name: str, what: str) -> ServiceError:
    return ServiceError(
        "invalid_audio",
        f"known_speaker_references[{index}] (for {name!r}) {what}",
        code="invalid_speaker_reference",
        param=REFERENCE_PARAM,
    )


def reference_embeddings(
    embedder: SpeakerEmbedder, known: Sequence[KnownSpeaker], tmp_dir: Path | None = None
) -> list[tuple[str, NDArray[np.float32]]]:
    """(name, unit embedding) per known speaker, each clip decoded and checked (2–10 s)."""
    out: list[tuple[str, NDArray[np.float32]]] = []
    for index, speaker in enumerate(known):
        with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="reference-") as handle:
            handle.write(speaker.audio)
            handle.flush()
            try:
                samples = audio.load_audio(handle.name, max_seconds=REFERENCE_MAX_S)
            except audio.AudioTooLong:
                raise _reference_error(
                    index, speaker.name, f"is longer than {REFERENCE_MAX_S:g} s"
                ) from None
            except audio.AudioError as exc:
                if not exc.user_error:
                    raise
                raise _reference_error(
                    index, speaker.name, f"is not usable audio: {exc.message}"
                ) from None
        seconds = samples.size / SAMPLE_RATE
        if seconds < REFERENCE_MIN_S:
            raise _reference_error(
                index, speaker.name, f"lasts {seconds:.1f} s; at least {REFERENCE_MIN_S:g} s"
            )
        out.append(
            (speaker.name, reference_embedding(embedder, samples.astype(np.float32) / 32768.0))
        )
    return out
