"""Simulated conversations of distinct real voices from the corpus, with known turns (RTTM).

Real multi-speaker recordings with speaker labels are not in the corpus, so conversations
are assembled the accepted way (simulated conversations, e.g. Landini et al. 2022): turns cut
from single-speaker recordings of different people, placed one after another with sampled
pauses. Everything is derived from a fixed seed, so every run builds the same audio and the
same reference; nothing is stored.

Each voice's material is the speech the Silero VAD finds in its recordings (pauses inside a
recording would otherwise be counted as that speaker's speech in the reference). A turn is a
random 1.5–6 s piece of one such speech region, scaled to a random level between −26 and −20
dBFS, followed by a pause of 0.4–1.2 s (the *hard* set: −0.3 to 0.3 s, so turns overlap or
follow each other within one VAD region); the next turn is by another speaker. The reference
turns are the pieces' exact positions. DER on these is a smoke test of the whole chain, not a
benchmark against published figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from gigaam_api.speakers.clustering import SpeakerCount
from gigaam_api.speakers.diarizer import Diarization, Diarizer
from gigaam_api.speakers.embedder import SpeakerEmbedder
from gigaam_api.speakers.windows import DEFAULT_HOP
from gigaam_api.vad.detector import speech_regions
from tests.speakers_data import CORPUS_DIR, read_wav

SEED: Final = 17
SAMPLE_RATE: Final = 16000

#: Distinct voices (one person or one synthetic voice each) and their 16 kHz recordings.
VOICES: Final[dict[str, tuple[str, ...]]] = {
    "ivr_female": (
        "asterisk_ru/wav16k/prompts/demo-instruct.wav",
        "asterisk_ru/wav16k/prompts/demo-congrats.wav",
        "asterisk_ru/wav16k/prompts/vm-options.wav",
    ),
    "silero": ("silero_vad/silero_ru.wav",),
    "call_centre": ("tone/wav16k/audio_long.flac.wav",),
    "stierlitz": ("voicekit/wav16k/stierlitz.wav",),
    "neural_tts": tuple(f"speech_to_phrase/stp_ru_gen_0{k}.wav" for k in range(1, 9)),
    "pisets": ("pisets/mono_sound.wav",),
    "espeak_f3": ("longform/longform_espeak_ru.wav",),
}

#: (number of speakers, conversations of that size).
SIZES: Final = ((2, 3), (3, 3), (4, 3), (5, 2))


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Conversation:
    name: str
    audio: NDArray[np.float32]
    turns: tuple[Turn, ...]

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.turns})

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def rttm(self) -> str:
        return "".join(
            f"SPEAKER {self.name} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} "
            "<NA> <NA>\n"
            for t in self.turns
        )


def voice_material(corpus: Path = CORPUS_DIR) -> dict[str, list[NDArray[np.float32]]]:
    """Each voice's speech regions (audio), as the Silero VAD finds them in its recordings."""
    material: dict[str, list[NDArray[np.float32]]] = {}
    for voice, files in VOICES.items():
        pieces = []
        for file in files:
            wave = read_wav(corpus / file)
            for region in speech_regions([wave]):
                piece = wave[round(region.start * SAMPLE_RATE) : round(region.end * SAMPLE_RATE)]
                if len(piece) >= 1.5 * SAMPLE_RATE:
                    pieces.append(piece)
        material[voice] = pieces
    return material


def _piece(rng: np.random.Generator, regions: Sequence[NDArray[np.float32]]) -> NDArray[np.float32]:
    region = regions[int(rng.integers(len(regions)))]
    length = min(len(region), round(rng.uniform(1.5, 6.0) * SAMPLE_RATE))
    first = int(rng.integers(0, len(region) - length + 1))
    piece = region[first : first + length].astype(np.float64)
    rms = float(np.sqrt(np.mean(piece**2))) or 1.0
    level = 10 ** (rng.uniform(-26.0, -20.0) / 20)
    return (piece * (level / rms)).astype(np.float32)


#: Pauses between turns (seconds) of the plain set, and of the hard set: there a turn starts
#: up to 0.3 s before the previous one ends (overlapped speech) or at most 0.3 s after it, so
#: most speaker changes fall inside one VAD speech region.
PAUSES: Final = (0.4, 1.2)
HARD_PAUSES: Final = (-0.3, 0.3)


def build_conversations(
    corpus: Path = CORPUS_DIR,
    *,
    seed: int = SEED,
    turns_per_speaker: int = 5,
    pauses: tuple[float, float] = PAUSES,
    material: dict[str, list[NDArray[np.float32]]] | None = None,
) -> list[Conversation]:
    """The test set: for each size in :data:`SIZES`, that many conversations."""
    material = material or voice_material(corpus)
    rng = np.random.default_rng(seed)
    voices = sorted(material)
    conversations = []
    for size, number in SIZES:
        for index in range(number):
            chosen = [voices[k] for k in rng.choice(len(voices), size=size, replace=False)]
            order: list[str] = []
            for _ in range(turns_per_speaker * size):
                options = [v for v in chosen if not order or v != order[-1]]
                # Everybody speaks early on, then at random (never twice in a row).
                unheard = [v for v in options if v not in order]
                order.append(unheard[0] if unheard else options[int(rng.integers(len(options)))])
            placed: list[tuple[int, NDArray[np.float32]]] = []
            cursor = round(0.5 * SAMPLE_RATE)
            turns = []
            for voice in order:
                piece = _piece(rng, material[voice])
                turns.append(Turn(cursor / SAMPLE_RATE, (cursor + len(piece)) / SAMPLE_RATE, voice))
                placed.append((cursor, piece))
                cursor += len(piece) + round(rng.uniform(*pauses) * SAMPLE_RATE)
            end = max(start + len(piece) for start, piece in placed) + round(0.5 * SAMPLE_RATE)
            audio = np.zeros(end, dtype=np.float32)
            for start, piece in placed:
                audio[start : start + len(piece)] += piece
            conversations.append(Conversation(f"conv{size}_{index}", audio, tuple(turns)))
    return conversations


@dataclass(frozen=True)
class Score:
    """One conversation's result: DER with and without collar, speakers found vs true."""

    name: str
    der_collar: float
    der_no_collar: float
    speakers_found: int
    speakers_true: int
    windows: int


def diarize(
    conversation: Conversation,
    embedder: SpeakerEmbedder,
    count: SpeakerCount | None = None,
    *,
    hop: float = DEFAULT_HOP,
) -> Diarization:
    """The chain the pipeline runs: Silero VAD regions → windows → embeddings → clusters."""
    diarizer = Diarizer(embedder, hop=hop)
    audio = conversation.audio
    for region in speech_regions([audio]):
        first, last = round(region.start * SAMPLE_RATE), round(region.end * SAMPLE_RATE)
        diarizer.add_region(region.start, region.end, audio[first:last])
    return diarizer.finish(count)


def score(conversation: Conversation, result: Diarization) -> Score:
    """DER by pyannote.metrics, collar 0.25 s (±0.25 s around reference boundaries ignored)
    and no collar; overlapped speech is scored (one label there is at best half right)."""
    from pyannote.core import Annotation, Segment, Timeline  # type: ignore[import-untyped]
    from pyannote.metrics.diarization import (
        DiarizationErrorRate,
    )

    reference, hypothesis = Annotation(), Annotation()
    for k, said in enumerate(conversation.turns):
        reference[Segment(said.start, said.end), k] = said.speaker
    for k, found in enumerate(result.turns):
        hypothesis[Segment(found.start, found.end), k] = found.speaker
    with_collar = DiarizationErrorRate(collar=0.5)  # pyannote's collar is the total width
    no_collar = DiarizationErrorRate(collar=0.0)
    uem = Timeline([Segment(0.0, conversation.duration)])  # the whole file is scored
    return Score(
        conversation.name,
        float(with_collar(reference, hypothesis, uem=uem)),
        float(no_collar(reference, hypothesis, uem=uem)),
        len(result.speakers),
        len(conversation.speakers),
        result.windows,
    )
