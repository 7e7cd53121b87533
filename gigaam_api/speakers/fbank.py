"""Kaldi-compatible log mel filterbank in numpy: the front end of the ONNX speaker models.

WeSpeaker and 3D-Speaker models are trained on Kaldi ``fbank`` features, and sherpa-onnx (the
publisher of the ONNX files we fetch) computes them with ``kaldi-native-fbank`` using these
options: 16 kHz, 25 ms frames every 10 ms, no dither, DC offset removed, pre-emphasis 0.97, the
"povey" window, FFT size rounded up to 512, power spectrum, 80 triangular mel bins between
20 Hz and Nyquist − 400 Hz on the ``1127 ln(1 + f/700)`` scale, ``log(max(e, FLT_EPSILON))``.
sherpa-onnx's runtime keeps ``snip_edges=False`` (frames centred on multiples of the hop, the
edges reflected); torchaudio's ``kaldi.fbank`` and sherpa-onnx's Python test script use
``snip_edges=True`` (only whole frames inside the audio). Both are here; the default is the
runtime's.

``tests/test_speakers_fbank.py`` compares this with ``kaldi-native-fbank`` itself (the
dev-only reference, recorded into a fixture by ``tests/fixtures/speakers/make_fbank_reference.py``).
A pure numpy front end keeps the runtime free of another native dependency; it costs a few
milliseconds per window, small beside the network.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from gigaam_api.speakers.sparse_bank import SparseBank

__all__ = ["FBANK_BINS", "fbank", "num_frames", "subtract_mean"]

Float32Array = NDArray[np.float32]

FBANK_BINS: Final = 80
SAMPLE_RATE: Final = 16000
FRAME_LENGTH: Final = 400  # 25 ms
FRAME_SHIFT: Final = 160  # 10 ms
PADDED: Final = 512  # round_to_power_of_two
PREEMPHASIS: Final = 0.97
LOW_FREQ: Final = 20.0
HIGH_FREQ: Final = SAMPLE_RATE / 2 - 400.0  # Kaldi's high_freq = -400 means Nyquist - 400
_EPSILON: Final = float(np.finfo(np.float32).eps)


def _mel(hz: NDArray[np.floating]) -> NDArray[np.float64]:
    return np.asarray(1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0), dtype=np.float64)


def _mel_banks() -> NDArray[np.float64]:
    """Kaldi's ``MelBanks``: triangles in mel over the 256 FFT bins below Nyquist."""
    bins = PADDED // 2
    mel_low = _mel(np.array(LOW_FREQ))
    mel_high = _mel(np.array(HIGH_FREQ))
    delta = (mel_high - mel_low) / (FBANK_BINS + 1)
    fft_mel = _mel(np.arange(bins) * (SAMPLE_RATE / PADDED))
    banks = np.zeros((FBANK_BINS, PADDED // 2 + 1))
    for b in range(FBANK_BINS):
        left = mel_low + b * delta
        centre = left + delta
        right = centre + delta
        inside = (fft_mel > left) & (fft_mel < right)
        rising = (fft_mel - left) / (centre - left)
        falling = (right - fft_mel) / (right - centre)
        banks[b, :bins] = np.where(inside, np.where(fft_mel <= centre, rising, falling), 0.0)
    return banks


_BANKS: Final = _mel_banks()
#: The same bank applied without BLAS (:mod:`~gigaam_api.speakers.sparse_bank` says why).
_SPARSE_BANKS: Final = SparseBank(_BANKS)
#: Kaldi's "povey" window: a Hann window (denominator N − 1) to the power 0.85.
_WINDOW: Final = (
    0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME_LENGTH) / (FRAME_LENGTH - 1))
) ** 0.85


def num_frames(samples: int, *, snip_edges: bool = False) -> int:
    """How many frames Kaldi makes of ``samples`` samples (``NumFrames`` in feature-window.cc)."""
    if snip_edges:
        return 0 if samples < FRAME_LENGTH else 1 + (samples - FRAME_LENGTH) // FRAME_SHIFT
    return (samples + FRAME_SHIFT // 2) // FRAME_SHIFT


def _frame_indices(samples: int, frames: int, snip_edges: bool) -> NDArray[np.int64]:
    offset = 0 if snip_edges else FRAME_SHIFT // 2 - FRAME_LENGTH // 2
    index = np.arange(frames)[:, None] * FRAME_SHIFT + offset + np.arange(FRAME_LENGTH)[None, :]
    # Outside the signal Kaldi reflects: -1 → 0, -2 → 1, n → n - 1, n + 1 → n - 2.
    for _ in range(2):  # twice covers windows longer than the signal itself
        index = np.where(index < 0, -index - 1, index)
        index = np.where(index >= samples, 2 * samples - 1 - index, index)
    return np.asarray(np.clip(index, 0, max(samples - 1, 0)), dtype=np.int64)


def fbank(wave: NDArray[np.floating], *, snip_edges: bool = False) -> Float32Array:
    """80-bin log mel filterbank of a 16 kHz wave, ``[frames, 80]`` float32.

    ``wave`` is in whatever scale the model expects (sherpa-onnx multiplies by 32768 for
    WeSpeaker models, keeps [−1, 1] for 3D-Speaker ones); the caller scales it. A wave too short
    for one frame gives ``[0, 80]``.
    """
    samples = np.asarray(wave, dtype=np.float64)
    frames = num_frames(len(samples), snip_edges=snip_edges)
    if frames == 0 or len(samples) == 0:
        return np.zeros((0, FBANK_BINS), dtype=np.float32)
    windows = samples[_frame_indices(len(samples), frames, snip_edges)]
    windows -= windows.mean(axis=1, keepdims=True)
    emphasised = windows.copy()
    emphasised[:, 1:] -= PREEMPHASIS * windows[:, :-1]
    emphasised[:, 0] -= PREEMPHASIS * windows[:, 0]
    emphasised *= _WINDOW
    power = np.abs(np.fft.rfft(emphasised, n=PADDED, axis=1)) ** 2
    energies = _SPARSE_BANKS.apply(power)
    return np.log(np.maximum(energies, _EPSILON)).astype(np.float32)


def subtract_mean(features: Float32Array) -> Float32Array:
    """sherpa-onnx's ``global-mean`` normalisation: each bin minus its mean over the frames."""
    if len(features) == 0:
        return features
    centred: Float32Array = (features - features.mean(axis=0, keepdims=True)).astype(np.float32)
    return centred
