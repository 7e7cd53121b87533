"""Resampled PCM of any channel count → 16 kHz mono int16 blocks: the one conversion.

Both ways audio enters the server end here, so the model hears the same samples whichever way
they came: the decoder worker (:mod:`~gigaam_api.audio.decoder_worker`) feeds it FFmpeg's
decoded frames of an uploaded file, and pushed audio (:mod:`~gigaam_api.audio.pushed`) feeds it
the raw PCM a door receives (a Wyoming utterance, later a live session). libswresample
(through PyAV, imported only when a conversion is needed) resamples to 16 kHz keeping every
channel; the resampled frames are cut into blocks of ``block_samples`` and each block is mixed
by :class:`~gigaam_api.audio.mix.PolarityMixer`. The mixer keeps a running state and decides
per block, so the block cut is part of the conversion: it lives here once, not in each caller.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from gigaam_api.audio.mix import PolarityMixer
from gigaam_api.constants import SAMPLE_RATE

__all__ = ["BlockMixer", "new_resampler"]


def new_resampler(av: Any, layout: Any, block_samples: int) -> Any:
    """libswresample to 16 kHz signed 16-bit, keeping ``layout``; frames of a whole block.

    ``av`` is the imported PyAV module (callers import it lazily). Whole-block output frames
    mean one Python step per block, not per (tiny, e.g. 576-sample MP3) codec frame.
    """
    return av.AudioResampler(
        format="s16", layout=layout, rate=SAMPLE_RATE, frame_size=block_samples
    )


class BlockMixer:
    """Collects ``[n, channels]`` int16 frames at 16 kHz; gives mono blocks of ``block_samples``.

    ``skip`` output samples are dropped first (a resumed job decodes from the beginning and
    drops what precedes its start: exact for every codec, unlike a container seek).
    """

    def __init__(self, channels: int, block_samples: int, *, skip: int = 0) -> None:
        self.channels = channels
        self.block_samples = block_samples
        self._mixer = PolarityMixer(channels) if channels > 1 else None
        self._skip = skip
        self._pending: list[NDArray[np.int16]] = []
        self._pending_frames = 0

    def add(self, frames: NDArray[np.int16]) -> list[NDArray[np.int16]]:
        """Take resampled frames; return the mono blocks that are now complete."""
        frames = frames.reshape(-1, self.channels)
        if self._skip:
            dropped = min(self._skip, frames.shape[0])
            self._skip -= dropped
            frames = frames[dropped:]
        if frames.shape[0]:
            self._pending.append(frames.astype(np.int16, copy=False))
            self._pending_frames += frames.shape[0]
        if self._pending_frames >= self.block_samples:
            return self._emit(final=False)
        return []

    def finish(self) -> list[NDArray[np.int16]]:
        """The rest, as a last (shorter) block."""
        return self._emit(final=True)

    def _emit(self, final: bool) -> list[NDArray[np.int16]]:
        if not self._pending:
            return []
        data = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        blocks: list[NDArray[np.int16]] = []
        taken = 0
        while data.shape[0] - taken >= self.block_samples or (final and taken < data.shape[0]):
            chunk = data[taken : taken + self.block_samples]
            taken += chunk.shape[0]
            blocks.append(self._mixer.mix(chunk) if self._mixer is not None else chunk[:, 0])
        self._pending = [data[taken:]] if taken < data.shape[0] else []
        self._pending_frames = data.shape[0] - taken
        return blocks
