"""Turns of live speech and the interim text shown while one is spoken: pure logic, no I/O.

A live session (:mod:`gigaam_api.service.live`) scores its audio with Silero VAD, one speech
probability per 32 ms window, and hands the probabilities to a :class:`TurnDetector`, which
says where turns start and end in OpenAI's ``server_vad`` terms:

* a turn **starts** at the first window whose probability reaches ``threshold``; its audio
  begins ``prefix_padding_ms`` earlier (never before the end of the previous turn);
* it **ends** once the probability has stayed below ``threshold - 0.15`` (Silero's own
  hysteresis) for ``silence_duration_ms``; the turn's audio runs to that moment, the silence
  included, so the recogniser sees the whole last word;
* a turn that grows longer than the model's window (``max_turn_ms``) is **cut at a pause**:
  at the quietest stretch (probabilities smoothed over 160 ms) of its second half, and the
  speech goes on as a new turn from there. Every turn is then one pass of the model, so its
  interim re-recognitions stay cheap and its final text is what ``POST
  /v1/audio/transcriptions`` gives for the same audio;
* ``idle_timeout_ms``: after that long without speech, an :class:`IdleTimeout` (OpenAI's
  ``input_audio_buffer.timeout_triggered``), once per silence.

Times are integer milliseconds from the start of the session's audio, so a client can cut
exactly the turn's audio out of what it sent (``audio_start_ms * rate / 1000``).

Interim text: a growing turn is re-recognised about once a second, and each hypothesis may
revise the last words of the one before. OpenAI's ``delta`` events are appended by clients,
so only text that will not be taken back may be sent: :func:`stable_delta` sends the words
two successive hypotheses agree on (the *local agreement* rule of streaming recognisers),
and :func:`final_delta` what the final text adds to that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

__all__ = [
    "WINDOW_MS",
    "IdleTimeout",
    "TurnDetection",
    "TurnDetector",
    "TurnEnded",
    "TurnStarted",
    "final_delta",
    "stable_delta",
]

#: One Silero window (512 samples at 16 kHz).
WINDOW_MS: Final = 32
#: Windows the probabilities are smoothed over when looking for a pause to cut at (160 ms).
_SMOOTH_WINDOWS: Final = 5


@dataclass(frozen=True, slots=True)
class TurnDetection:
    """OpenAI's ``server_vad`` parameters (their defaults are OpenAI's)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    #: Milliseconds without speech before an :class:`IdleTimeout`; ``None``: never.
    idle_timeout_ms: int | None = None


@dataclass(frozen=True, slots=True)
class TurnStarted:
    #: Where the turn's audio begins (the prefix padding included).
    start_ms: int
    #: Where speech was heard.
    speech_ms: int


@dataclass(frozen=True, slots=True)
class TurnEnded:
    end_ms: int
    #: Cut at a pause because the turn reached ``max_turn_ms`` (a new turn follows at once).
    cut: bool = False


@dataclass(frozen=True, slots=True)
class IdleTimeout:
    #: The silence that timed out: from the end of the last turn (or the start) to now.
    start_ms: int
    end_ms: int


TurnChange = TurnStarted | TurnEnded | IdleTimeout


class TurnDetector:
    """Window probabilities in, turn boundaries out (see the module doc). Not thread-safe."""

    def __init__(self, params: TurnDetection, *, max_turn_ms: int, start_ms: int = 0) -> None:
        if max_turn_ms < 4 * WINDOW_MS:
            raise ValueError("max_turn_ms is too short")
        self.params = params
        self.max_turn_ms = max_turn_ms
        #: End of the audio scored so far.
        self.now_ms = start_ms
        #: No turn starts before this (the end of the last turn, or a clear).
        self.floor_ms = start_ms
        self._in_turn = False
        self._turn_start = 0
        self._speech_start = 0
        self._silence_since: int | None = None
        self._idle_from = start_ms
        #: Probabilities of the open turn's windows since speech was heard (for cutting).
        self._probs: list[float] = []

    @property
    def in_turn(self) -> bool:
        return self._in_turn

    @property
    def pausing(self) -> bool:
        """The open turn has been silent since some window (it may be about to end)."""
        return self._in_turn and self._silence_since is not None

    @property
    def turn_start_ms(self) -> int | None:
        """Where the open turn's audio begins; ``None`` when no turn is open."""
        return self._turn_start if self._in_turn else None

    @property
    def negative_threshold(self) -> float:
        return max(self.params.threshold - 0.15, 0.01)

    def reset(self, at_ms: int) -> None:
        """Forget the open turn (the client cleared the buffer); nothing starts before ``at_ms``."""
        self._in_turn = False
        self._silence_since = None
        self._probs = []
        self.floor_ms = self._idle_from = max(self.floor_ms, at_ms)

    def end_turn(self, at_ms: int) -> None:
        """The open turn was ended by the client (a commit): the next starts after ``at_ms``."""
        self.reset(at_ms)

    def feed(self, probs: Sequence[float]) -> list[TurnChange]:
        """The changes the next windows' probabilities make, in order."""
        out: list[TurnChange] = []
        for prob in probs:
            start = self.now_ms
            self.now_ms += WINDOW_MS
            if self._in_turn:
                self._in_turn_window(prob, start, out)
            else:
                self._idle_window(prob, start, out)
        return out

    def _idle_window(self, prob: float, start: int, out: list[TurnChange]) -> None:
        if prob >= self.params.threshold:
            padded = max(self.floor_ms, start - self.params.prefix_padding_ms, 0)
            self._open(padded, start, out)
            self._probs.append(prob)
            return
        timeout = self.params.idle_timeout_ms
        if timeout is not None and self.now_ms - self._idle_from >= timeout:
            out.append(IdleTimeout(self._idle_from, self.now_ms))
            self._idle_from = self.now_ms

    def _open(self, start_ms: int, speech_ms: int, out: list[TurnChange]) -> None:
        self._in_turn = True
        self._turn_start = start_ms
        self._speech_start = speech_ms
        self._silence_since = None
        self._probs = []
        out.append(TurnStarted(start_ms, speech_ms))

    def _close(self, end_ms: int, out: list[TurnChange], *, cut: bool = False) -> None:
        self._in_turn = False
        self._probs = []
        self.floor_ms = self._idle_from = end_ms
        out.append(TurnEnded(end_ms, cut=cut))

    def _in_turn_window(self, prob: float, start: int, out: list[TurnChange]) -> None:
        self._probs.append(prob)
        if prob >= self.params.threshold:
            self._silence_since = None
        elif prob < self.negative_threshold and self._silence_since is None:
            self._silence_since = start
        if (
            self._silence_since is not None
            and self.now_ms - self._silence_since >= self.params.silence_duration_ms
        ):
            self._close(self.now_ms, out)
            return
        if self.now_ms - self._turn_start >= self.max_turn_ms:
            self._cut(out)

    def _cut(self, out: list[TurnChange]) -> None:
        """Cut the overlong open turn at the quietest stretch of its second half."""
        cut_ms = cut_point(self._probs, self._speech_start)
        if cut_ms <= self._turn_start:  # defensive: never an empty turn
            cut_ms = self.now_ms
        kept = self._probs[(cut_ms - self._speech_start) // WINDOW_MS :]
        silence = self._silence_since
        self._close(cut_ms, out, cut=True)
        self._open(cut_ms, cut_ms, out)
        self._probs = kept
        self._silence_since = silence if silence is not None and silence >= cut_ms else None


def cut_point(probs: Sequence[float], first_ms: int) -> int:
    """Where to cut a turn whose windows from ``first_ms`` have ``probs``: the start of the
    quietest window (smoothed over 160 ms) of the second half."""
    values = np.asarray(probs, dtype=np.float32)
    if values.size < 2:
        return first_ms + WINDOW_MS * int(values.size)
    kernel = np.ones(_SMOOTH_WINDOWS, dtype=np.float32) / _SMOOTH_WINDOWS
    half_kernel = _SMOOTH_WINDOWS // 2  # edges padded with their own values: no edge dip
    padded = np.pad(values, half_kernel, mode="edge")
    smooth = np.convolve(padded, kernel, mode="valid")
    half = values.size // 2
    index = half + int(np.argmin(smooth[half:]))
    return first_ms + WINDOW_MS * index


# -- interim text ---------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


def stable_delta(sent: str, previous: str | None, current: str) -> str:
    """Text to append to ``sent`` now: the words ``previous`` and ``current`` agree on beyond
    it ("" when nothing new is agreed, or when the agreement no longer starts with ``sent``).
    """
    if previous is None:
        return ""
    agreed: list[str] = []
    for old, new in zip(_words(previous), _words(current), strict=False):
        if old != new:
            break
        agreed.append(new)
    done = _words(sent)
    if len(agreed) <= len(done) or agreed[: len(done)] != done:
        return ""
    extra = " ".join(agreed[len(done) :])
    return f" {extra}" if done else extra


def final_delta(sent: str, transcript: str) -> str:
    """What the final ``transcript`` adds to the interim text ``sent`` ("" if it revises it)."""
    done = _words(sent)
    words = _words(transcript)
    if len(words) <= len(done) or words[: len(done)] != done:
        return ""
    extra = " ".join(words[len(done) :])
    return f" {extra}" if done else extra
