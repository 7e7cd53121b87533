"""Multichannel → mono without letting channels cancel each other.

ffmpeg's ``-ac 1`` averages the channels, which turns a stereo file whose right channel is the
inverted left into silence. Readers therefore keep every channel and mix here, as the *mean of
polarity-aligned channels*: each channel's polarity relative to the loudest one is estimated
from a running (~1 s) covariance, and a clearly anti-correlated channel (r < -0.3) is flipped
before averaging (flipped back once clearly correlated again, r > 0.3). Ordinary stereo (r > 0)
gets exactly the plain average, independent channels (a call recorded one speaker per channel,
r ≈ 0) are left alone, and only destructive interference is removed. The decision for a block
includes that block's own statistics, so even the first second is not silent.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from gigaam_api.constants import SAMPLE_RATE

__all__ = ["PolarityMixer"]


class PolarityMixer:
    """Mean of polarity-aligned channels, block by block, with state carried between blocks."""

    #: Time constant (seconds) of the running covariance the polarity decisions use: short
    #: enough to follow a polarity change within about a second, long enough that the
    #: near-zero correlation of independent channels does not flip-flop.
    TAU_S = 1.0
    #: Correlation beyond which a channel is considered clearly anti-/correlated.
    FLIP_AT = 0.3

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.signs = np.ones(channels, dtype=np.int32)
        self._cov = np.zeros((channels, channels), dtype=np.float64)

    def mix(self, frames: NDArray[np.int16]) -> NDArray[np.int16]:
        """``frames`` is ``[n, channels]`` int16 at 16 kHz; returns ``[n]`` int16."""
        if frames.shape[0] == 0:
            return np.zeros(0, dtype=np.int16)
        centred = frames.astype(np.float64)
        centred -= centred.mean(axis=0)
        decay = math.exp(-frames.shape[0] / (SAMPLE_RATE * self.TAU_S))
        self._cov *= decay
        self._cov += centred.T @ centred
        self._update_signs()
        total = frames.astype(np.int32) @ self.signs
        return np.rint(total / self.channels).astype(np.int16)

    def _update_signs(self) -> None:
        power = np.diag(self._cov)
        ref = int(np.argmax(power))
        if power[ref] <= 0.0:
            return
        for ch in range(self.channels):
            if ch == ref or power[ch] <= power[ref] * 1e-8:
                continue
            corr = self._cov[ref, ch] / math.sqrt(power[ref] * power[ch])
            # Correlation as mixed: < 0 means this channel currently cancels the reference.
            if corr * self.signs[ref] * self.signs[ch] < -self.FLIP_AT:
                self.signs[ch] = -self.signs[ch]
