"""One file's diarization as a stream: speech regions with their audio in, speaker turns out.

:class:`Diarizer` is what the pipeline drives during its single decoding pass: for each speech
region the VAD closes it is handed the region's samples (:meth:`Diarizer.add_region`), plans
the region's windows (:mod:`~gigaam_api.speakers.windows`), embeds them in batches and feeds
the embeddings to the streaming clusterer (:mod:`~gigaam_api.speakers.clustering`); nothing
else of the audio is kept. At the end :meth:`Diarizer.finish` decides the speakers (guided by
:class:`~gigaam_api.speakers.clustering.SpeakerCount`), names the ones that match known
speakers' references and returns the turns (:mod:`~gigaam_api.speakers.turns`).

Time: a full batch is embedded on a thread of its own while the caller goes on (the pipeline
sends the next chunks to the recogniser), one batch at a time. The speaker model runs on one
thread; embedded between the recogniser's calls on the request's thread it would leave the
other core idle for as long as it runs, so on a 2-core machine it added its whole time to the
wall time. Overlapped, the two models share the cores (``benchmarks/diarization_e2e.py``,
``docs/speakers.md``). Batches still reach the clusterer in order: a flush first waits for the
batch before it; :meth:`Diarizer.snapshot` and :meth:`Diarizer.finish` wait for the last one
(and raise what it raised).

Memory: the windows waiting for a batch and the batch being embedded (at most 2 × :data:`BATCH`
windows of audio), one clustering block, and per window two floats of timing and one small
integer.
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Sequence
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

__all__ = ["BATCH", "Diarization", "Diarizer", "reference_embedding"]

#: Windows embedded per model call.
BATCH: Final = 32


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
        #: Embed full batches on a thread of their own (module doc); False: on the caller's.
        self.overlap = overlap
        self._job: threading.Thread | None = None
        self._error: BaseException | None = None
        self._clusterer = SpeakerClusterer(
            threshold=embedder.same_speaker_similarity if threshold is None else threshold
        )
        self._regions: list[tuple[float, float]] = []
        self._windows: list[SpeechWindow] = []
        self._pending: list[NDArray[np.float32]] = []

    def add_region(self, start: float, end: float, samples: NDArray[Any]) -> None:
        """One speech region (seconds in the file) with its 16 kHz samples, in time order.

        int16 samples are scaled to [-1, 1]; float samples are taken as they are.
        """
        if self._regions and start < self._regions[-1][1] - 1e-6:
            raise ValueError("regions must be added in time order without overlap")
        wave = np.asarray(samples)
        if wave.dtype == np.int16:
            wave = wave.astype(np.float32) / 32768.0
        wave = wave.astype(np.float32, copy=False)
        self._regions.append((start, end))
        for window in plan_windows(
            [(start, end)], window=self.embedder.window_seconds, hop=self.hop
        ):
            first = max(0, round((window.start - start) * SAMPLE_RATE))
            last = min(len(wave), round((window.end - start) * SAMPLE_RATE))
            self._windows.append(window)
            self._pending.append(wave[first:last])
            if len(self._pending) >= BATCH:
                self._flush()

    def _flush(self) -> None:
        """Embed the pending windows: on a thread of their own once the batch before is in."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self._wait()
        if not self.overlap:
            self._embed(batch)
            self._wait()
            return
        self._job = threading.Thread(
            target=self._embed, args=(batch,), name="diarizer-embed", daemon=True
        )
        self._job.start()

    def _embed(self, batch: list[NDArray[np.float32]]) -> None:
        try:
            self._clusterer.add(self.embedder.embed(batch))
        except BaseException as exc:  # raised again on the caller's thread by _wait
            self._error = exc

    def _wait(self) -> None:
        """Until the batch being embedded is in the clusterer; raise what embedding raised."""
        if self._job is not None:
            self._job.join()
            self._job = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def snapshot(self) -> bytes:
        """The diarization so far, as bytes a resumed job keeps with its committed chunks.

        Windows still waiting for a batch are embedded first, so the snapshot holds no audio:
        the regions and windows (timings), the clusterer's state (micro-cluster sums, one
        integer per window, the open block's embeddings) and which model made them. About
        4 KB per micro-cluster (CAM++) plus 20 bytes per window.
        """
        self._flush()
        self._wait()
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
    def restore(cls, embedder: SpeakerEmbedder, data: bytes) -> Diarizer:
        """A diarizer that goes on from :meth:`snapshot`'s bytes: add the regions after the
        last one it had, then finish as if it had never stopped. Raises ValueError for bytes
        that are not a snapshot, or one made with another model."""
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
        if len(diarizer._windows) != diarizer._clusterer.windows:
            raise ValueError("inconsistent diarization snapshot")
        return diarizer

    def finish(
        self,
        count: SpeakerCount | None = None,
        known: Sequence[tuple[str, NDArray[Any]]] = (),
    ) -> Diarization:
        """Speakers and turns; ``known`` are (name, :func:`reference_embedding`) pairs."""
        self._flush()
        self._wait()
        clustering = self._clusterer.finish(count)
        names = name_speakers(clustering.centroids, known, threshold=self._clusterer.threshold)
        labels = speaker_labels(clustering.speakers, names)
        speakers = [labels[int(k)] for k in clustering.labels]
        turns = build_turns(self._regions, self._windows, speakers)
        return Diarization(turns, labels, len(self._windows))


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
