"""Windows, clustering, turns and attribution on synthetic embeddings and plain values.

Synthetic speakers are random unit directions with per-window noise, so the truth is known
exactly and the cases that matter can be built on purpose: a stray window, a speaker that
speaks little, a file longer than many clustering blocks.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from gigaam_api.speakers import clustering
from gigaam_api.speakers.attribution import speaker_at, split_segments, with_speakers
from gigaam_api.speakers.clustering import (
    SpeakerClusterer,
    SpeakerCount,
    cluster_embeddings,
    name_speakers,
    speaker_labels,
)
from gigaam_api.speakers.turns import SpeakerTurn, build_turns
from gigaam_api.speakers.windows import SpeechWindow, plan_windows
from gigaam_api.transcript import Segment, Word


def _speakers(rng: np.random.Generator, n: int, dim: int = 64) -> NDArray[np.float64]:
    centres = rng.standard_normal((n, dim))
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def _windows(
    rng: np.random.Generator, centres: NDArray[np.float64], truth: list[int], noise: float = 0.35
) -> NDArray[np.float32]:
    rows = centres[truth] + noise * rng.standard_normal((len(truth), centres.shape[1])) / np.sqrt(
        centres.shape[1]
    )
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _same_partition(found: NDArray[np.int64], truth: list[int]) -> bool:
    pairs = {(int(f), t) for f, t in zip(found, truth, strict=True)}
    return len(pairs) == len({t for _, t in pairs}) == len({f for f, _ in pairs})


# --- windows -------------------------------------------------------------------------------------


def test_windows_cover_each_region_and_stay_inside() -> None:
    regions = [(0.0, 0.3), (1.0, 2.0), (3.0, 7.0)]
    windows = list(plan_windows(regions, window=1.5, hop=0.75))
    assert windows[0] == SpeechWindow(1.0, 2.0)  # shorter than a window: one of its own length
    inner = windows[1:]
    assert inner[0].start == 3.0 and inner[-1].end == 7.0  # the tail is covered
    assert all(w.start >= 3.0 and w.end <= 7.0 and w.end - w.start == 1.5 for w in inner)
    assert [w.start for w in inner[:-1]] == [3.0, 3.75, 4.5, 5.25]
    sparse = list(plan_windows([(0.0, 10.0)], window=1.5, hop=3.0))
    assert [w.start for w in sparse] == [0.0, 3.0, 6.0, 8.5]  # gaps between, the end covered
    with pytest.raises(ValueError, match="hop"):
        list(plan_windows(regions, window=1.5, hop=0.0))


# --- clustering ----------------------------------------------------------------------------------


@pytest.mark.parametrize("speakers", [1, 2, 3, 5])
def test_automatic_count_finds_the_speakers(speakers: int) -> None:
    rng = np.random.default_rng(speakers)
    centres = _speakers(rng, speakers)
    truth = [int(k) for k in np.repeat(np.arange(speakers), 8)[rng.permutation(8 * speakers)]]
    result = cluster_embeddings(_windows(rng, centres, truth), threshold=0.5)
    assert result.speakers == speakers
    assert _same_partition(result.labels, truth)
    assert result.labels[0] == 0  # numbered by first appearance
    assert list(dict.fromkeys(result.labels.tolist())) == list(range(speakers))


def test_a_stray_window_is_not_a_speaker_and_counts_can_be_forced() -> None:
    rng = np.random.default_rng(3)
    centres = _speakers(rng, 4)
    truth = [0] * 30 + [1] * 30 + [2] * 30
    rows = _windows(rng, centres, truth)
    rows[45] = _windows(rng, centres, [3])[0]  # one window of somebody else
    result = cluster_embeddings(rows, threshold=0.5)
    assert result.speakers == 3
    assert result.labels[45] in {0, 1, 2}
    forced = cluster_embeddings(rows, threshold=0.5, count=SpeakerCount(num_speakers=2))
    assert forced.speakers == 2
    capped = cluster_embeddings(rows, threshold=0.99, count=SpeakerCount(max_speakers=3))
    assert capped.speakers == 3
    floored = cluster_embeddings(rows, threshold=-0.9, count=SpeakerCount(min_speakers=3))
    assert floored.speakers == 3
    with pytest.raises(ValueError, match="min_speakers"):
        SpeakerCount(min_speakers=4, max_speakers=2).bounds()
    with pytest.raises(ValueError, match="at least 1"):
        SpeakerCount(num_speakers=0).bounds()


def test_long_input_is_clustered_in_blocks_with_bounded_matrices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many blocks, and more micro-clusters than one final matrix may hold: the file is
    reduced in groups, and no similarity matrix is ever larger than a block's or the limit's."""
    largest: list[int] = []
    real_merges = clustering._merges

    def recording(sums: NDArray[np.float64], **kwargs: object) -> list[tuple[int, int, float]]:
        largest.append(len(sums))
        return real_merges(sums, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(clustering, "_merges", recording)
    monkeypatch.setattr(clustering, "FINAL_LIMIT", 60)
    rng = np.random.default_rng(5)
    centres = _speakers(rng, 3)
    truth = [int(k) for k in rng.integers(0, 3, size=4000)]
    clusterer = SpeakerClusterer(threshold=0.5, block_size=100)
    rows = _windows(rng, centres, truth, noise=1.2)  # noisy: blocks leave many micro-clusters
    for start in range(0, len(rows), 37):  # added in uneven pieces, as a stream would
        clusterer.add(rows[start : start + 37])
    result = clusterer.finish()
    assert max(largest) <= 100
    assert len(largest) > 4000 // 100 + 1  # blocks, reduction groups, then the speakers
    assert result.speakers == 3
    assert _same_partition(result.labels, truth)


def test_nothing_added_gives_no_speakers() -> None:
    result = SpeakerClusterer(threshold=0.5).finish()
    assert result.speakers == 0 and len(result.labels) == 0


def test_known_speakers_are_named_and_the_rest_lettered() -> None:
    rng = np.random.default_rng(9)
    centres = _speakers(rng, 4)
    references = [("Анна", centres[2]), ("Борис", centres[0]), ("Никто", centres[3])]
    names = name_speakers(centres[:3], references, threshold=0.5)
    assert names == {2: "Анна", 0: "Борис"}  # nobody here sounds like the third reference
    assert speaker_labels(3, names) == ["Борис", "A", "Анна"]
    assert speaker_labels(28)[25:] == ["Z", "AA", "AB"]
    # a known speaker called like a letter: the letters skip it, no two speakers share a label
    assert speaker_labels(3, {1: "A"}) == ["B", "A", "C"]
    with pytest.raises(ValueError, match="distinct"):
        name_speakers(centres, [("X", centres[0]), ("X", centres[1])], threshold=0.5)


# --- turns and attribution -----------------------------------------------------------------------


def test_turns_change_half_way_between_window_centres() -> None:
    regions = [(0.0, 4.0), (5.0, 5.3), (6.0, 8.0)]
    windows = list(plan_windows(regions, window=1.5, hop=0.75))
    speakers = ["A"] * 2 + ["B"] * (len(windows) - 2)
    turns = build_turns(regions, windows, speakers)
    change = (windows[1].centre + windows[2].centre) / 2
    assert turns == [
        SpeakerTurn(0.0, change, "A"),
        SpeakerTurn(change, 4.0, "B"),
        SpeakerTurn(5.0, 5.3, "B"),  # too short for a window: the nearest window's speaker
        SpeakerTurn(6.0, 8.0, "B"),
    ]


def test_words_take_the_turn_of_their_midpoint_and_segments_split() -> None:
    turns = [SpeakerTurn(0.0, 2.0, "A"), SpeakerTurn(2.0, 4.0, "B"), SpeakerTurn(6.0, 7.0, "A")]
    words = (
        Word("раз", 0.2, 0.6),
        Word("два", 1.7, 2.2),  # midpoint 1.95: still A
        Word("три", 1.9, 2.5),  # midpoint 2.2: B
        Word("четыре", 4.5, 4.9),  # in a gap, nearer B's end than A's next start
    )
    assert [w.speaker for w in with_speakers(words, turns)] == ["A", "A", "B", "B"]
    assert speaker_at(turns, 5.6) == "A" and speaker_at([], 1.0) is None
    segments = [
        Segment(7, 0.2, 4.9, "раз два три четыре", words),
        Segment(8, 6.1, 6.5, "пять"),
    ]
    out = split_segments(segments, turns)
    assert [(s.id, s.speaker, s.text, s.start, s.end) for s in out] == [
        (7, "A", "раз два", 0.2, 2.2),
        (8, "B", "три четыре", 1.9, 4.9),
        (9, "A", "пять", 6.1, 6.5),
    ]
    assert out[0].words[1].speaker == "A"


def test_clusterer_state_round_trip_mid_block() -> None:
    """Stopped after two and a half blocks and rebuilt from its state, the clusterer ends
    exactly as one that never stopped."""
    rng = np.random.default_rng(11)
    centres = _speakers(rng, 3)
    truth = [int(k) for k in np.repeat(rng.integers(0, 3, size=30), 10)]
    rows = _windows(rng, centres, truth)
    whole = SpeakerClusterer(threshold=0.5, block_size=40)
    whole.add(rows)
    first = SpeakerClusterer(threshold=0.5, block_size=40)
    first.add(rows[:100])
    state = {k: v.copy() for k, v in first.state().items()}
    resumed = SpeakerClusterer.from_state(state)
    assert resumed.windows == 100
    resumed.add(rows[100:])
    a, b = whole.finish(), resumed.finish()
    assert np.array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.centroids, b.centroids, atol=1e-6)
    assert _same_partition(b.labels, truth)
    broken = dict(state, micro_sizes=state["micro_sizes"][:1])
    with pytest.raises(ValueError, match="inconsistent"):
        SpeakerClusterer.from_state(broken)
