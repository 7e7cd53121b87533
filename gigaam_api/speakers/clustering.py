"""Who is who: window embeddings → speakers, in bounded memory whatever the file's length.

Ten hours of two-person talk at a 0.75 s hop is ~40 k windows; an all-pairs matrix over them
would be 6.4 GB (float32), and agglomerative clustering over it hours of CPU. So clustering is
two-level, and the first level runs while the file streams:

1. **Blocks.** :meth:`SpeakerClusterer.add` collects windows in time order; every
   :data:`BLOCK_SIZE` windows the block is clustered on its own (centroid-linkage
   agglomerative clustering on cosine similarity) at a *strict* similarity, into at most
   :data:`MAX_MICRO` "micro-clusters" per block. Only each micro-cluster's vector sum and size
   are kept, plus one small integer per window (its micro-cluster): the embeddings themselves
   are dropped with the block. Memory: one block's embeddings and its 500 x 500 similarity
   matrix (1 MB), plus 4 bytes per window and one vector per micro-cluster.
2. **Speakers.** :meth:`SpeakerClusterer.finish` builds the merge tree of the micro-cluster
   centroids (weighted by their sizes, same linkage). Only clusters holding at least
   :data:`MIN_SHARE` of the windows (at least :data:`MIN_WINDOWS`, at most
   :data:`MAX_MIN_WINDOWS`) count as speakers; the tree is cut where merging reaches the
   model's same-speaker similarity, moved coarser or finer until the number of such speakers
   is what the caller asked (``num_speakers``, or within ``min_speakers``..``max_speakers``),
   and the small clusters (a laugh, a cough, two people at once) are folded into the most
   similar speaker. Too many micro-clusters (a very long, very varied file) are first reduced
   the same way in time-ordered groups of :data:`FINAL_LIMIT`, so no matrix is ever larger
   than that squared.

Every step is pure numpy; the work is O(n) in windows plus O(block²) per block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BLOCK_SIZE",
    "MAX_SPEAKERS",
    "Clustering",
    "SpeakerClusterer",
    "SpeakerCount",
    "cluster_embeddings",
    "name_speakers",
    "speaker_labels",
]

Float32Array = NDArray[np.float32]
Float64Array = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Windows clustered together in the first level (500 x 0.75 s ≈ 6 minutes of speech).
BLOCK_SIZE: Final = 500
#: Most micro-clusters one block may leave.
MAX_MICRO: Final = 40
#: Most centroids the final level clusters in one matrix.
FINAL_LIMIT: Final = 1200
#: The strict first-level similarity sits this share of the way from the model's speaker
#: threshold to 1 (a block over-segments; the second level puts the pieces together).
MICRO_STRICTNESS: Final = 0.5
#: A cluster with fewer windows than this share of the file's (at least :data:`MIN_WINDOWS`,
#: at most :data:`MAX_MIN_WINDOWS`) is not taken for a speaker of its own: a few seconds of
#: one voice that scored apart (a laugh, a shout, two people at once) are not a new person.
MIN_SHARE: Final = 0.02
MIN_WINDOWS: Final = 3
#: 40 windows at a 0.75 s hop is 30 s of speech: in a long file, anyone who speaks longer
#: than that keeps their own label however small their share.
MAX_MIN_WINDOWS: Final = 40
#: The most speakers an automatic count may find.
MAX_SPEAKERS: Final = 20


@dataclass(frozen=True)
class SpeakerCount:
    """What the caller knows about the number of speakers (OpenAI-style options)."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None

    def bounds(self) -> tuple[int, int]:
        """(fewest, most) speakers to find; raises ValueError for impossible options."""
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.num_speakers is not None:
            return self.num_speakers, self.num_speakers
        low = self.min_speakers or 1
        high = self.max_speakers or max(MAX_SPEAKERS, low)
        if low > high:
            raise ValueError(f"min_speakers ({low}) is more than max_speakers ({high})")
        return low, high


@dataclass(frozen=True)
class Clustering:
    """The result: one speaker index per window (0 = the first to speak, 1 = the next...) and
    each speaker's unit-length centroid, row ``i`` for speaker ``i``."""

    labels: IntArray
    centroids: Float32Array

    @property
    def speakers(self) -> int:
        return len(self.centroids)


def _unit(rows: NDArray[Any]) -> Float64Array:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return np.asarray(rows / np.maximum(norms, 1e-12), dtype=np.float64)


def _merges(
    sums: Float64Array, *, stop_below: float = -np.inf, most: int | None = None
) -> list[tuple[int, int, float]]:
    """Centroid-linkage agglomerative clustering of vectors (sums of unit embeddings).

    Repeatedly merges the two clusters whose centroids are most cosine-similar (the merged
    cluster keeps the lower index), while that similarity is at least ``stop_below`` or more
    than ``most`` clusters remain. Returns the merges in order as (kept, merged, similarity).
    One similarity matrix of ``len(sums)`` squared is the memory; each merge costs one pass
    over it.
    """
    m = len(sums)
    history: list[tuple[int, int, float]] = []
    if m < 2:
        return history
    sums = sums.astype(np.float64, copy=True)
    unit = _unit(sums)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    alive = np.ones(m, dtype=bool)
    limit = m if most is None else most
    for active in range(m, 1, -1):
        flat = int(np.argmax(similarity))
        i, j = divmod(flat, m)
        best = float(similarity[i, j])
        if not np.isfinite(best) or (best < stop_below and active <= limit):
            break
        if j < i:
            i, j = j, i
        history.append((i, j, best))
        sums[i] += sums[j]
        alive[j] = False
        similarity[j, :] = -np.inf
        similarity[:, j] = -np.inf
        unit[i] = _unit(sums[i])
        # einsum's own loop, not a BLAS gemv: numpy's OpenBLAS splits a product this size
        # over its threads, which then spin against the recogniser (speakers/sparse_bank.py).
        row = np.einsum("kd,d->k", unit, unit[i])
        row[~alive] = -np.inf
        row[i] = -np.inf
        similarity[i, :] = row
        similarity[:, i] = row
    return history


def _labels_after(m: int, history: Sequence[tuple[int, int, float]]) -> IntArray:
    """Cluster index per row (0..k-1 in order of first row) after ``history``'s merges."""
    owner = np.arange(m)
    for kept, merged, _ in history:
        owner[owner == merged] = kept
    _, labels = np.unique(owner, return_inverse=True)
    first: dict[int, int] = {}
    for label in labels:
        first.setdefault(int(label), len(first))
    return np.array([first[int(label)] for label in labels], dtype=np.int64)


def _agglomerate(sums: Float64Array, *, stop_below: float, most: int | None = None) -> IntArray:
    """:func:`_merges` then the labels it leaves."""
    return _labels_after(len(sums), _merges(sums, stop_below=stop_below, most=most))


class SpeakerClusterer:
    """Streaming two-level clustering (module doc). Add windows in time order, then finish."""

    def __init__(self, *, threshold: float, block_size: int = BLOCK_SIZE) -> None:
        if not -1.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (-1, 1), got {threshold!r}")
        if block_size < 2:
            raise ValueError(f"block_size must be at least 2, got {block_size}")
        self.threshold = threshold
        self.block_size = block_size
        self._micro_threshold = threshold + (1.0 - threshold) * MICRO_STRICTNESS
        self._pending: list[Float32Array] = []
        self._pending_count = 0
        self._micro_sums: list[Float64Array] = []
        self._micro_sizes: list[int] = []
        self._window_micro: list[NDArray[np.int32]] = []
        self.windows = 0

    def add(self, embeddings: NDArray[Any]) -> None:
        """Append windows' embeddings (``[n, d]``, unit rows) in time order."""
        rows = np.asarray(embeddings, dtype=np.float32)
        if rows.ndim != 2:
            raise ValueError("embeddings must be a [n, d] matrix")
        start = 0
        while start < len(rows):
            take = min(len(rows) - start, self.block_size - self._pending_count)
            self._pending.append(rows[start : start + take])
            self._pending_count += take
            start += take
            if self._pending_count >= self.block_size:
                self._close_block()
        self.windows += len(rows)

    def _close_block(self) -> None:
        if not self._pending_count:
            return
        block = np.concatenate(self._pending).astype(np.float64)
        self._pending, self._pending_count = [], 0
        labels = _agglomerate(block, stop_below=self._micro_threshold, most=MAX_MICRO)
        offset = len(self._micro_sums)
        for label in range(int(labels.max()) + 1):
            members = labels == label
            self._micro_sums.append(block[members].sum(axis=0))
            self._micro_sizes.append(int(members.sum()))
        self._window_micro.append((labels + offset).astype(np.int32))

    def state(self) -> dict[str, NDArray[Any]]:
        """Everything added so far as plain arrays (for :meth:`from_state`): the open block's
        embeddings, the micro-clusters' sums and sizes, each window's micro-cluster."""
        dimension = self._dimension()
        pending = (
            np.concatenate(self._pending).astype(np.float32)
            if self._pending
            else np.zeros((0, dimension), np.float32)
        )
        sums = np.stack(self._micro_sums) if self._micro_sums else np.zeros((0, dimension))
        micro = np.concatenate(self._window_micro) if self._window_micro else np.zeros(0, np.int32)
        return {
            "threshold": np.array(self.threshold),
            "block_size": np.array(self.block_size),
            "pending": pending,
            "micro_sums": sums,
            "micro_sizes": np.array(self._micro_sizes, dtype=np.int64),
            "window_micro": micro,
        }

    @classmethod
    def from_state(cls, state: dict[str, NDArray[Any]]) -> SpeakerClusterer:
        """A clusterer that goes on exactly where the one that gave ``state`` stopped."""
        clusterer = cls(threshold=float(state["threshold"]), block_size=int(state["block_size"]))
        sums = np.asarray(state["micro_sums"], dtype=np.float64)
        sizes = np.asarray(state["micro_sizes"], dtype=np.int64)
        micro = np.asarray(state["window_micro"], dtype=np.int32)
        pending = np.asarray(state["pending"], dtype=np.float32)
        if len(sums) != len(sizes) or (len(micro) and int(micro.max()) >= len(sums)):
            raise ValueError("inconsistent clustering state")
        clusterer._micro_sums = list(sums)
        clusterer._micro_sizes = [int(n) for n in sizes]
        clusterer._window_micro = [micro] if len(micro) else []
        clusterer.windows = len(micro)
        if len(pending):
            clusterer.add(pending)
        return clusterer

    def _dimension(self) -> int:
        if self._pending:
            return int(self._pending[0].shape[1])
        return len(self._micro_sums[0]) if self._micro_sums else 0

    def finish(self, count: SpeakerCount | None = None) -> Clustering:
        """Cluster what was added into speakers (see the module doc); call once at the end."""
        fewest, most = (count or SpeakerCount()).bounds()
        self._close_block()
        if not self._micro_sums:
            return Clustering(np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
        sums = np.stack(self._micro_sums)
        sizes = np.array(self._micro_sizes)
        micro = np.concatenate(self._window_micro).astype(np.int64)
        groups = _reduce(sums, self._micro_threshold)
        sums = np.stack([sums[groups == g].sum(axis=0) for g in range(int(groups.max()) + 1)])
        sizes = np.bincount(groups, weights=sizes).astype(np.int64)
        micro = groups[micro]
        speakers = _speakers(sums, sizes, self.threshold, fewest, most)
        return _ordered(speakers[micro], sums, speakers)


def _reduce(sums: Float64Array, micro_threshold: float) -> IntArray:
    """Fewer than :data:`FINAL_LIMIT` groups of centroids, merged in time-ordered chunks."""
    groups = np.arange(len(sums))
    current = sums
    while len(current) > FINAL_LIMIT:
        merged: list[Float64Array] = []
        mapping = np.zeros(len(current), dtype=np.int64)
        for start in range(0, len(current), FINAL_LIMIT):
            chunk = current[start : start + FINAL_LIMIT]
            labels = _agglomerate(chunk, stop_below=micro_threshold, most=FINAL_LIMIT // 4)
            mapping[start : start + len(chunk)] = labels + len(merged)
            merged.extend(chunk[labels == g].sum(axis=0) for g in range(int(labels.max()) + 1))
        groups = mapping[groups]
        current = np.stack(merged)
    return groups


def _speakers(
    sums: Float64Array, sizes: IntArray, threshold: float, fewest: int, most: int
) -> IntArray:
    """Speaker index per centroid (see the module doc).

    The whole merge tree is built once. Only *large* clusters (:func:`_smallest` windows or
    more) count as speakers; small ones are folded into the most similar large one at the
    end. The cut is where merging stops at ``threshold``, moved coarser while more than
    ``most`` large clusters remain, or finer while fewer than ``fewest`` do — so a stray
    window cannot take the place of a speaker the caller said is there.
    """
    m = len(sums)
    history = _merges(sums)
    smallest = _smallest(int(sizes.sum()))
    # Large clusters after each number of merges t (t = 0: every centroid on its own).
    cluster_size = sizes.astype(np.int64).copy()
    large = [int((cluster_size >= smallest).sum())]
    for kept, merged, _ in history:
        cluster_size[kept] += cluster_size[merged]
        cluster_size[merged] = 0
        large.append(int((cluster_size >= smallest).sum()))
    cut = next((t for t, (_, _, sim) in enumerate(history) if sim < threshold), len(history))
    while cut < len(history) and large[cut] > most:
        cut += 1
    while cut > 0 and large[cut] < fewest:
        cut -= 1
    labels = _labels_after(m, history[:cut])
    count = int(labels.max()) + 1
    totals = np.bincount(labels, weights=sizes, minlength=count)
    # Promote the biggest small clusters when there are still too few speakers.
    keep = totals >= smallest
    wanted = min(fewest, count)
    for c in np.argsort(-totals, kind="stable"):
        if keep.sum() >= wanted:
            break
        keep[c] = True
    if keep.all():
        return labels
    cluster_sums = np.stack([sums[labels == c].sum(axis=0) for c in range(count)])
    unit = _unit(cluster_sums)
    speakers = np.flatnonzero(keep)
    for c in np.flatnonzero(~keep):
        labels[labels == c] = speakers[int(np.argmax(unit[speakers] @ unit[c]))]
    _, labels = np.unique(labels, return_inverse=True)
    return labels.astype(np.int64)


def _smallest(windows: int) -> int:
    """Fewest windows a cluster needs to count as a speaker in a file of ``windows``."""
    return min(max(MIN_WINDOWS, math.ceil(MIN_SHARE * windows)), MAX_MIN_WINDOWS)


def _ordered(labels: IntArray, sums: Float64Array, speakers: IntArray) -> Clustering:
    """Renumber speakers by first appearance in time and compute their centroids."""
    order: dict[int, int] = {}
    for label in labels:
        order.setdefault(int(label), len(order))
    for label in speakers:  # a speaker with no window left (cannot happen, but stay total)
        order.setdefault(int(label), len(order))
    renumber = np.array([order[k] for k in range(len(order))], dtype=np.int64)
    centroids = np.zeros((len(order), sums.shape[1]), dtype=np.float64)
    np.add.at(centroids, renumber[speakers], sums)
    return Clustering(renumber[labels], _unit(centroids).astype(np.float32))


def cluster_embeddings(
    embeddings: NDArray[Any],
    *,
    threshold: float,
    count: SpeakerCount | None = None,
    block_size: int = BLOCK_SIZE,
) -> Clustering:
    """All at once: :class:`SpeakerClusterer` over ``embeddings`` (``[n, d]``, time order)."""
    clusterer = SpeakerClusterer(threshold=threshold, block_size=block_size)
    clusterer.add(embeddings)
    return clusterer.finish(count)


def name_speakers(
    centroids: NDArray[Any],
    references: Sequence[tuple[str, NDArray[Any]]],
    *,
    threshold: float,
) -> dict[int, str]:
    """Give known speakers' names to the clusters their reference voices match.

    ``references`` are (name, unit embedding of the reference audio). Pairs are taken from the
    most similar down, each name and each cluster at most once, and only while the cosine
    similarity is at least ``threshold`` (the model's same-speaker similarity): a reference that
    matches nobody well names nobody. Returns speaker index → name.
    """
    if not len(references) or not len(centroids):
        return {}
    names = [name for name, _ in references]
    if len(set(names)) != len(names):
        raise ValueError("known speaker names must be distinct")
    vectors = _unit(np.stack([np.asarray(v, dtype=np.float64) for _, v in references]))
    similarity = _unit(np.asarray(centroids, dtype=np.float64)) @ vectors.T
    named: dict[int, str] = {}
    used: set[int] = set()
    for flat in np.argsort(-similarity, axis=None):
        cluster, ref = divmod(int(flat), len(names))
        if similarity[cluster, ref] < threshold:
            break
        if cluster in named or ref in used:
            continue
        named[cluster] = names[ref]
        used.add(ref)
    return named


def speaker_labels(speakers: int, names: dict[int, str] | None = None) -> list[str]:
    """Labels for speakers 0..n-1 (already in order of first appearance): known names where
    given, else ``A``, ``B``, … ``Z``, ``AA``, ``AB``… in order among the unnamed. A letter a
    known speaker is already called (someone named ``B``) is skipped, so two speakers never
    share a label."""
    names = names or {}
    taken = set(names.values())
    labels: list[str] = []
    letter = 0
    for index in range(speakers):
        if index in names:
            labels.append(names[index])
            continue
        while _letters(letter) in taken:
            letter += 1
        labels.append(_letters(letter))
        letter += 1
    return labels


def _letters(index: int) -> str:
    text = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        text = chr(ord("A") + rest) + text
    return text
