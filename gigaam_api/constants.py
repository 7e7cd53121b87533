"""Facts shared by every layer: the audio format the whole pipeline speaks."""

from typing import Final

SAMPLE_RATE: Final = 16_000
"""GigaAM, Silero VAD and every reader work in 16 kHz mono: one home for the number."""
