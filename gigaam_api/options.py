"""The knobs of one transcription run, grouped by the step they tune.

The pipeline takes a :class:`PipelineOptions` rather than the whole service ``Settings``, so it
says exactly what it reads and can be driven by any caller (the server, the CLI, a benchmark,
a test) without building settings. :func:`gigaam_api.config.pipeline_options` is the one place
that maps settings onto these. The defaults here are the single home of each number: the
settings and the chunking/segmentation functions take theirs from these classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ChunkingOptions", "PipelineOptions", "SegmentationOptions", "VadOptions"]


@dataclass(frozen=True)
class VadOptions:
    """Silero VAD: what counts as speech."""

    #: Speech probability above which a 32 ms window is speech (Silero's own default).
    threshold: float = 0.5


@dataclass(frozen=True)
class ChunkingOptions:
    """How speech regions are merged into recognition chunks (the reference's long-form rule).

    GigaAM recognises at most ~25 s well in one pass, so long audio is cut along the speech
    regions the VAD finds; :mod:`gigaam_api.chunking` has the exact rules.
    """

    #: Seconds after which the open chunk is closed before the next region is added.
    min_duration: float = 15.0
    #: Seconds the open chunk may not grow past by adding another region.
    max_duration: float = 22.0
    #: A closed chunk longer than this (seconds) is cut into even pieces. Also the VAD's cap
    #: on one speech region, so the VAD never holds more open speech than this.
    strict_limit: float = 30.0
    #: Seconds a chunk must last before it may be closed; shorter final fragments are merged
    #: into the previous chunk rather than recognised alone.
    new_chunk_threshold: float = 0.2


@dataclass(frozen=True)
class SegmentationOptions:
    """How a chunk's words are grouped into subtitle-grade segments.

    The limits follow common subtitle practice: a cue readable in one glance (two lines of
    42 characters) and short enough to stay in sync with the speech.
    """

    #: Longest segment, in seconds, before it is cut between words.
    max_duration: float = 7.0
    #: Longest segment text, in characters (two subtitle lines of 42).
    max_chars: int = 84
    #: A pause between words of at least this many seconds always starts a new segment.
    gap: float = 0.6


@dataclass(frozen=True)
class PipelineOptions:
    """Everything :func:`gigaam_api.pipeline.transcribe_file` needs besides the file and model."""

    vad: VadOptions = field(default_factory=VadOptions)
    chunking: ChunkingOptions = field(default_factory=ChunkingOptions)
    segmentation: SegmentationOptions = field(default_factory=SegmentationOptions)
    #: Chunks handed to the model per ``infer`` call.
    batch_size: int = 4
    #: Longest audio accepted, in seconds (0 = unlimited); checked before and while decoding.
    max_audio_seconds: float = 0.0
