"""The streaming detector: speech regions from a stream of PCM blocks, as they close.

**The region logic is ``get_speech_timestamps``'s** (the ``silero-vad`` package's offline
function), with its defaults (threshold 0.5, negative threshold = threshold - 0.15, min speech
250 ms, min silence 100 ms, speech pad 30 ms, optional max speech duration cut at the longest
pause), run window by window as the probabilities arrive. A region is reported as soon as it is
closed and its padding is known (with the defaults: at the window that closes it), so memory
stays constant and the chunker can start before the file ends; :attr:`SileroVad.pending_start`
tells the caller how much audio it still has to keep. Regions are identical to the package's
offline function on the whole file (tested in ``tests/test_vad.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from gigaam_api.constants import SAMPLE_RATE
from gigaam_api.vad.graph import CONTEXT, WINDOW
from gigaam_api.vad.model import BATCH_WINDOWS, SileroModel, as_float, default_model

__all__ = ["SileroVad", "SpeechRegion", "speech_regions"]

#: A pause must be longer than this to be a cut point for ``max_speech_s`` (package default).
MIN_SILENCE_AT_MAX_SPEECH_MS: Final = 98

Float32Array = NDArray[np.float32]


class SpeechRegion(NamedTuple):
    """A stretch of speech, in seconds from the start of the stream (padding included)."""

    start: float
    end: float


class SileroVad:
    """Feed PCM blocks of any size, get :class:`SpeechRegion` s back as soon as they close.

    ::

        vad = SileroVad(threshold=settings.vad_threshold)
        for block in reader:
            for region in vad.feed(block):
                ...
        for region in vad.flush():   # the region still open at the end, if any
            ...

    ``feed`` accepts int16 PCM (scaled by 1/32768) or float PCM in [-1, 1], 16 kHz mono. Memory
    is bounded by the block size: nothing but the LSTM state, < 1 window of samples and at most
    one region awaiting its padding is kept between calls. One instance per stream; the model
    behind it is shared.

    ``max_speech_s`` (default: none) is the package's ``max_speech_duration_s``: a region that
    grows longer is cut at its longest inner pause (> 98 ms), or right there if it has none.
    Without it one endless region (hours of music or noise scored as speech) would stay open,
    and everything after its start would have to be kept by the caller.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        *,
        neg_threshold: float | None = None,
        min_speech_ms: float = 250,
        min_silence_ms: float = 100,
        speech_pad_ms: float = 30,
        max_speech_s: float | None = None,
        model: SileroModel | None = None,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        if neg_threshold is None:
            neg_threshold = max(threshold - 0.15, 0.01)
        if not 0.0 < neg_threshold <= threshold:
            raise ValueError(f"neg_threshold must be in (0, threshold], got {neg_threshold!r}")
        for name, value in (
            ("min_speech_ms", min_speech_ms),
            ("min_silence_ms", min_silence_ms),
            ("speech_pad_ms", speech_pad_ms),
        ):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        self.threshold = float(threshold)
        self.neg_threshold = float(neg_threshold)
        self._min_speech = SAMPLE_RATE * min_speech_ms / 1000
        self._min_silence = SAMPLE_RATE * min_silence_ms / 1000
        self._pad = round(SAMPLE_RATE * speech_pad_ms / 1000)
        if max_speech_s is not None and not max_speech_s > 0:
            raise ValueError(f"max_speech_s must be > 0 or None, got {max_speech_s!r}")
        self.max_speech_s = max_speech_s
        self._max_speech = (
            math.inf
            if max_speech_s is None
            else SAMPLE_RATE * max_speech_s - WINDOW - 2 * self._pad
        )
        self._min_silence_at_max_speech = SAMPLE_RATE * MIN_SILENCE_AT_MAX_SPEECH_MS / 1000
        self._model = model or default_model()
        self.reset()

    def reset(self) -> None:
        """Forget everything: ready for a new stream."""
        self._state = self._model.initial_state()
        self._buffer = np.zeros(CONTEXT, dtype=np.float32)  # context + not yet scored samples
        self._windows = 0  # windows scored so far
        self._samples = 0  # samples fed so far
        self._triggered = False
        self._start = 0  # speech start (samples) of the open region
        self._temp_end = 0  # first silent window inside the open region, 0 when none
        self._held: tuple[int, int] | None = None  # closed region waiting for its end padding
        self._possible_ends: list[tuple[int, int]] = []  # pauses in the open region: (at, length)
        self._flushed = False

    @property
    def seconds(self) -> float:
        """Seconds of audio fed so far."""
        return self._samples / SAMPLE_RATE

    @property
    def pending_start(self) -> float:
        """No region reported from now on starts before this time (seconds).

        Audio before it is no longer needed by anything downstream of the VAD, so a caller
        that keeps PCM for the chunks it will cut can drop everything earlier. It is the
        padded start of the region held for its padding, else of the open region, else of a
        region that would start at the next window.
        """
        earliest = self._windows * WINDOW - self._pad
        if self._triggered:
            earliest = min(earliest, self._start - self._pad)
        if self._held is not None:
            earliest = min(earliest, self._held[0])
        return max(0, earliest) / SAMPLE_RATE

    def feed(self, pcm: NDArray[Any]) -> list[SpeechRegion]:
        """Score the new samples; return the regions that became final (in order)."""
        if self._flushed:
            raise RuntimeError("flush() was called: reset() before feeding a new stream")
        audio = as_float(pcm)
        if audio.size == 0:
            return []
        self._samples += audio.size
        buffer = np.concatenate([self._buffer, audio])
        windows = (buffer.size - CONTEXT) // WINDOW
        out: list[SpeechRegion] = []
        for first in range(0, windows, BATCH_WINDOWS):
            count = min(BATCH_WINDOWS, windows - first)
            part = buffer[first * WINDOW : (first + count) * WINDOW + CONTEXT]
            probs, self._state = self._model.run(part, self._state)
            self._advance(probs, out)
        self._buffer = buffer[windows * WINDOW :].copy()
        return out

    def flush(self) -> list[SpeechRegion]:
        """End of stream: score the last partial window, close and return what is left."""
        if self._flushed:
            return []
        self._flushed = True
        out: list[SpeechRegion] = []
        if self._buffer.size > CONTEXT:  # a partial window, zero-padded like the reference
            part = np.zeros(CONTEXT + WINDOW, dtype=np.float32)
            part[: self._buffer.size] = self._buffer
            probs, self._state = self._model.run(part, self._state)
            self._advance(probs, out, final=True)
        total = self._samples
        if self._triggered and total - self._start > self._min_speech:
            self._accept(self._start, total, out)
        self._triggered = False
        if self._held is not None:
            start, end = self._held
            self._held = None
            out.append(self._region(start, min(total, end + self._pad)))
        return out

    # -- get_speech_timestamps, one window at a time --------------------------------------------

    def _advance(self, probs: Float32Array, out: list[SpeechRegion], final: bool = False) -> None:
        for prob in probs.tolist():
            sample = self._windows * WINDOW
            self._windows += 1
            self._step(prob, sample, out)
            if self._held is not None and not final:
                self._release_held(out)

    def _step(self, prob: float, sample: int, out: list[SpeechRegion]) -> None:
        """One window of ``get_speech_timestamps`` (its default max-speech strategy included)."""
        speech = prob >= self.threshold
        if speech and self._temp_end:
            silence = sample - self._temp_end
            if self._max_speech != math.inf and silence > self._min_silence_at_max_speech:
                self._possible_ends.append((self._temp_end, silence))
            self._temp_end = 0
        if speech and not self._triggered:
            self._triggered = True
            self._start = sample
            return
        if self._triggered and sample - self._start > self._max_speech:
            if self._possible_ends:
                # cut at the longest pause inside the region; the region goes on after it
                end, silence = max(self._possible_ends, key=lambda item: item[1])
                self._accept(self._start, end, out)  # no min-speech filter here, as upstream
                self._start = end + silence
                self._temp_end = 0
                self._possible_ends = []
            else:
                self._accept(self._start, sample, out)
                self._triggered = False
                self._temp_end = 0
                self._possible_ends = []
                return
        if prob < self.neg_threshold and self._triggered:
            if not self._temp_end:
                self._temp_end = sample
            if sample - self._temp_end < self._min_silence:
                return
            if self._temp_end - self._start > self._min_speech:
                self._accept(self._start, self._temp_end, out)
            self._temp_end = 0
            self._triggered = False
            self._possible_ends = []

    def _accept(self, start: int, end: int, out: list[SpeechRegion]) -> None:
        """A region passed the min-speech filter: pad its neighbour and hold it for its own end."""
        if self._held is not None:
            held_start, held_end = self._held
            gap = start - held_end
            if gap < 2 * self._pad:
                held_end += gap // 2
                start = max(0, start - gap // 2)
            else:
                held_end += self._pad
                start = max(0, start - self._pad)
            out.append(self._region(held_start, held_end))
        else:
            start = max(0, start - self._pad)
        self._held = (start, end)

    def _release_held(self, out: list[SpeechRegion]) -> None:
        """Report the held region once no later region can start within 2 pads of its end."""
        assert self._held is not None
        start, end = self._held
        earliest_next = self._start if self._triggered else self._windows * WINDOW
        if earliest_next - end >= 2 * self._pad:
            self._held = None
            out.append(self._region(start, end + self._pad))

    @staticmethod
    def _region(start: int, end: int) -> SpeechRegion:
        return SpeechRegion(start / SAMPLE_RATE, end / SAMPLE_RATE)


def speech_regions(
    blocks: Iterable[NDArray[Any]],
    *,
    threshold: float = 0.5,
    model: SileroModel | None = None,
) -> Iterator[SpeechRegion]:
    """Lazily turn a stream of PCM blocks into speech regions (the pipeline's VAD step)."""
    vad = SileroVad(threshold, model=model)
    for block in blocks:
        yield from vad.feed(block)
    yield from vad.flush()
