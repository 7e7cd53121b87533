"""One file's diarization as a stream: speech regions with their audio in, speaker turns out.

:class:`Diarizer` is what the pipeline drives during its single decoding pass: for each speech
region the VAD closes it is handed the region's samples (:meth:`Diarizer.add_region`), plans
the region's windows (:mod:`~gigaam_api.speakers.windows`), embeds them in batches and feeds
the embeddings to the streaming clusterer (:mod:`~gigaam_api.speakers.clustering`); nothing
else of the audio is kept. At the end :meth:`Diarizer.finish` decides the speakers (guided by
:class:`~gigaam_api.speakers.clustering.SpeakerCount`), names the ones that match known
speakers' references and returns the turns (:mod:`~gigaam_api.speakers.turns`).

Time: the windows are embedded on a thread of their own while the caller goes on (the
pipeline sends the next chunks to the recogniser), as they come, in order. The speaker model
runs on one thread; embedded between the recogniser's calls on the request's thread it would
leave the other core idle for as long as it runs, so on a 2-core machine it added its whole
time to the wall time. Overlapped, the two models share the cores (``benchmarks/
diarization_e2e.py``, ``docs/speakers.md``). The caller waits only when :data:`BACKLOG`
windows are waiting for the model; :meth:`Diarizer.finish` waits for the last one (and raises
what the model raised).

A snapshot (what a job commits with each chunk) does not wait either: it holds the clusterer
as far as the model has got and the timings of the windows still waiting, and
:meth:`Diarizer.restore` reads those windows' audio again from the file and embeds them
first. (Waiting for them at every chunk put the model back in line with the recogniser.)

Memory: at most :data:`BACKLOG` windows of audio, one clustering block, and per window two
floats of timing and one small integer.
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from gigaam_api.constants import SAMPLE_RATE
from gigaam_api.speakers.clustering import (
    SpeakerClusterer,
    SpeakerCount,
    name_speakers,
    speaker_labels,
)
from gigaam_api.speakers.embedder import SpeakerEmbedder
from gigaam_api.speakers.turns import SpeakerTurn, build_turns
from gigaam_api.speakers.windows import DEFAULT_HOP, SpeechWindow, plan_windows

__all__ = ["BACKLOG", "BATCH", "Diarization", "Diarizer", "SpanReader", "reference_embedding"]

#: Most windows one ``embed`` call takes (the embedder may split it further: calls of 4 for
#: the CAM++ network, ``embedder.RUN_BATCH``).
BATCH: Final = 32
#: Windows waiting for the speaker model before :meth:`Diarizer.add_region` waits for it: the
#: speech of one recogniser batch (4 chunks of up to 22 s) fits, so the pipeline goes on; their
#: audio is at most 64 × 1.5 s of float32, 6 MB.
BACKLOG: Final = 64

#: Reads stretches (start, end) of the file again in seconds, 16 kHz mono, one array each
#: (:meth:`Diarizer.restore`).
SpanReader = Callable[[list[tuple[float, float]]], list[NDArray[Any]]]


@dataclass(frozen=True)
class Diarization:
    """The outcome: turns in time order and the labels in order of first appearance."""

    turns: list[SpeakerTurn]
    speakers: list[str]
    windows: int


class Diarizer:
    """Streaming diarization of one file (module doc). Not thread-safe: one per run."""

    def __init__(
        self,
        embedder: SpeakerEmbedder,
        *,
        hop: float = DEFAULT_HOP,
        threshold: float | None = None,
        overlap: bool = True,
    ) -> None:
        self.embedder = embedder
        self.hop = hop
        #: Embed on a thread of its own (module doc); False: on the caller's, :data:`BATCH`
        #: windows at a time.
        self.overlap = overlap
        self._clusterer = SpeakerClusterer(
            threshold=embedder.same_speaker_similarity if threshold is None else threshold
        )
        self._regions: list[tuple[float, float]] = []
        self._windows: list[SpeechWindow] = []
        # What the caller and the embedding thread share, under ``_state``: the windows'
        # audio waiting for the model, how many the model is embedding now, the thread (None
        # when nothing waits), and the error that stopped it (kept: a broken run stays broken).
        self._state = threading.Condition()
        self._waiting: deque[NDArray[np.float32]] = deque()
        self._embedding = 0
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None

    def add_region(self, start: float, end: float, samples: NDArray[Any]) -> None:
        """One speech region (seconds in the file) with its 16 kHz samples, in time order.

        int16 samples are scaled to [-1, 1]; float samples are taken as they are.
        """
        if self._regions and start < self._regions[-1][1] - 1e-6:
            raise ValueError("regions must be added in time order without overlap")
        wave = _as_float(samples)
        self._regions.append((start, end))
        for window in plan_windows(
            [(start, end)], window=self.embedder.window_seconds, hop=self.hop
        ):
            self._windows.append(window)
            self._submit(_cut(wave, start, window))

    def _submit(self, window: NDArray[np.float32]) -> None:
        """Queue one window's audio for the model (waiting while :data:`BACKLOG` do)."""
        with self._state:
            while len(self._waiting) + self._embedding >= BACKLOG and self._error is None:
                self._state.wait()
            self._raise_error()
            self._waiting.append(window)
            if not self.overlap:
                if len(self._waiting) >= BATCH:
                    self._embed_waiting()
                return
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._embed_waiting, name="diarizer-embed", daemon=True
                )
                self._worker.start()

    def _embed_waiting(self) -> None:
        """Embed the waiting windows in order until none wait: the embedding thread's whole
        life (it ends when the queue is empty; the next window starts another), or the
        caller's turn without overlap."""
        while True:
            with self._state:
                if not self._waiting or self._error is not None:
                    self._worker = None
                    self._state.notify_all()
                    return
                batch = [self._waiting.popleft() for _ in range(min(BATCH, len(self._waiting)))]
                self._embedding = len(batch)
            try:
                rows = self.embedder.embed(batch)
            except BaseException as exc:  # raised again on the caller's thread
                with self._state:
                    self._error = exc
                    self._waiting.clear()
                    self._embedding = 0
                    self._worker = None
                    self._state.notify_all()
                return
            with self._state:
                self._clusterer.add(rows)
                self._embedding = 0
                self._state.notify_all()

    def _drain(self) -> None:
        """Until every window is in the clusterer; raise what embedding raised."""
        if not self.overlap:
            self._embed_waiting()
        with self._state:
            while (self._waiting or self._embedding) and self._error is None:
                self._state.wait()
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def snapshot(self) -> bytes:
        """The diarization so far, as bytes a resumed job keeps with its committed chunks.

        It does not wait for the model (module doc) and holds no audio: the regions and windows
        (timings), the clusterer's state as far as the model has got (micro-cluster sums, one
        integer per embedded window, the open block's embeddings) and which model made them;
        the windows after the embedded ones are those :meth:`restore` reads again. About 4 KB
        per micro-cluster (CAM++) plus 20 bytes per window.
        """
        with self._state:
            self._raise_error()
            arrays = {
                **{f"clusterer_{k}": v for k, v in self._clusterer.state().items()},
                "regions": np.array(self._regions, dtype=np.float64).reshape(-1, 2),
                "windows": np.array(self._windows, dtype=np.float64).reshape(-1, 2),
                "hop": np.array(self.hop),
                "model": np.array(f"{self.embedder.name}/{self.embedder.dimension}"),
            }
            buffer = io.BytesIO()
            np.savez(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def restore(
        cls, embedder: SpeakerEmbedder, data: bytes, read: SpanReader | None = None
    ) -> Diarizer:
        """A diarizer that goes on from :meth:`snapshot`'s bytes: add the regions after the
        last one it had, then finish as if it had never stopped. The windows the model had not
        embedded when the snapshot was taken are read again with ``read`` and queued first.
        Raises ValueError for bytes that are not a snapshot, one made with another model, or
        one with windows to read again and no ``read``."""
        if not data.startswith(b"PK"):
            raise ValueError("not a diarization snapshot: the bytes are not an npz archive")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                arrays = {k: stored[k] for k in stored.files}
            model = str(arrays["model"])
            prefix = "clusterer_"
            state = {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}
            diarizer = cls(embedder, hop=float(arrays["hop"]))
            if model != f"{embedder.name}/{embedder.dimension}":
                raise ValueError(f"the snapshot was made with {model}, not {embedder.name}")
            diarizer._clusterer = SpeakerClusterer.from_state(state)
            diarizer._regions = [(float(a), float(b)) for a, b in arrays["regions"]]
            diarizer._windows = [SpeechWindow(float(a), float(b)) for a, b in arrays["windows"]]
        except (OSError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"not a diarization snapshot: {exc}") from exc
        if len(diarizer._windows) < diarizer._clusterer.windows:
            raise ValueError("inconsistent diarization snapshot")
        unembedded = diarizer._windows[diarizer._clusterer.windows :]
        if unembedded:
            if read is None:
                raise ValueError("the snapshot has windows to embed: their audio must be read")
            waves = read([(window.start, window.end) for window in unembedded])
            if len(waves) != len(unembedded):
                raise ValueError("the windows to embed could not all be read again")
            for wave in waves:
                diarizer._submit(_as_float(wave))
        return diarizer

    def finish(
        self,
        count: SpeakerCount | None = None,
        known: Sequence[tuple[str, NDArray[Any]]] = (),
    ) -> Diarization:
        """Speakers and turns; ``known`` are (name, :func:`reference_embedding`) pairs."""
        self._drain()
        clustering = self._clusterer.finish(count)
        names = name_speakers(clustering.centroids, known, threshold=self._clusterer.threshold)
        labels = speaker_labels(clustering.speakers, names)
        speakers = [labels[int(k)] for k in clustering.labels]
        turns = build_turns(self._regions, self._windows, speakers)
        return Diarization(turns, labels, len(self._windows))


def _as_float(samples: NDArray[Any]) -> NDArray[np.float32]:
    """16 kHz samples as float32: int16 scaled to [-1, 1], floats as they are."""
    wave = np.asarray(samples)
    if wave.dtype == np.int16:
        return wave.astype(np.float32) / 32768.0
    return wave.astype(np.float32, copy=False)


def _cut(wave: NDArray[np.float32], start: float, window: SpeechWindow) -> NDArray[np.float32]:
    """``window``'s samples out of ``wave``, which starts at ``start`` seconds in the file."""
    first = max(0, round((window.start - start) * SAMPLE_RATE))
    last = min(len(wave), round((window.end - start) * SAMPLE_RATE))
    return wave[first:last]


def reference_embedding(
    embedder: SpeakerEmbedder, samples: NDArray[Any], *, hop: float = DEFAULT_HOP
) -> NDArray[np.float32]:
    """One unit vector for a known speaker's reference audio (16 kHz, 2–10 s): the mean of
    its windows' embeddings, as Resemblyzer's ``embed_utterance`` averages its partials."""
    wave = np.asarray(samples, dtype=np.float32)
    seconds = len(wave) / SAMPLE_RATE
    windows = list(plan_windows([(0.0, seconds)], window=embedder.window_seconds, hop=hop))
    if not windows:
        raise ValueError("the reference audio is too short to embed")
    rows = embedder.embed(
        [wave[round(w.start * SAMPLE_RATE) : round(w.end * SAMPLE_RATE)] for w in windows]
    )
    mean = rows.mean(axis=0)
    unit: NDArray[np.float32] = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
    return unit
