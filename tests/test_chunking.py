"""Chunking rules (reference long-form behaviour plus our speech-keeping fixes) on region lists."""

from __future__ import annotations

import csv
import itertools
import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from gigaam_api.chunking import SHORT_AUDIO_LIMIT, Chunk, plan_chunks, short_audio_chunk

Region = tuple[float, float]


def spans(chunks: Iterator[Chunk] | list[Chunk]) -> list[tuple[float, float]]:
    return [(round(c.start, 6), round(c.end, 6)) for c in chunks]


def reference_plan(
    regions: list[Region],
    min_duration: float = 15.0,
    max_duration: float = 22.0,
    strict_limit: float = 30.0,
    threshold: float = 0.2,
) -> list[tuple[float, float]]:
    """The upstream list-based algorithm (`segment_audio_file`), restated for comparison."""
    out: list[tuple[float, float]] = []

    def flush(start: float, end: float) -> None:
        duration = end - start
        if duration > strict_limit:
            count = int(duration / strict_limit) + 1
            step = duration / count
            for k in range(count):
                out.append((start + k * step, start + (k + 1) * step))
        else:
            out.append((start, end))

    cur_start = cur_end = cur_dur = 0.0
    for start, end in regions:
        if cur_dur == 0.0:
            cur_start = start
        elif cur_dur > threshold and (end - cur_start > max_duration or cur_dur > min_duration):
            flush(cur_start, cur_end)
            cur_start = start
        cur_end = end
        cur_dur = cur_end - cur_start
    if cur_dur > threshold:
        flush(cur_start, cur_end)
    return [(round(a, 6), round(b, 6)) for a, b in out]


def random_regions(rng: random.Random, count: int, tiny: bool) -> list[Region]:
    regions: list[Region] = []
    t = rng.uniform(0.0, 3.0)
    for _ in range(count):
        length = rng.uniform(0.3, 12.0)
        roll = rng.random()
        if tiny and roll < 0.15:
            length = rng.uniform(0.01, 0.2)
        elif roll < 0.25:
            length = rng.uniform(20.0, 95.0)
        regions.append((t, t + length))
        t += length + rng.choice([0.0, rng.uniform(0.05, 2.0), rng.uniform(5.0, 40.0)])
    return regions


# --- the reference rules ---------------------------------------------------------------------


def test_no_speech_gives_no_chunks() -> None:
    assert list(plan_chunks([])) == []
    assert list(plan_chunks([(3.0, 3.0), (7.5, 7.5)])) == []


def test_close_regions_merge_into_one_chunk_with_the_gaps_inside() -> None:
    assert spans(plan_chunks([(0.5, 5.0), (6.0, 10.0), (11.0, 14.0)])) == [(0.5, 14.0)]


def test_chunk_closes_once_it_lasts_more_than_min_duration() -> None:
    regions = [(0.0, 4.0), (5.0, 9.0), (10.0, 14.0), (15.0, 19.0), (20.0, 24.0)]
    # 0-19 is 19 s (> 15) when 20-24 arrives, so 20-24 starts a new chunk.
    assert spans(plan_chunks(regions)) == [(0.0, 19.0), (20.0, 24.0)]


def test_chunk_closes_before_a_region_would_push_it_past_max_duration() -> None:
    # 0-10 is under min_duration, but adding 12-23 would make 23 s > 22 s.
    assert spans(plan_chunks([(0.0, 10.0), (12.0, 23.0)])) == [(0.0, 10.0), (12.0, 23.0)]
    # With max_duration 25 the same regions merge.
    assert spans(plan_chunks([(0.0, 10.0), (12.0, 23.0)], max_duration=25.0)) == [(0.0, 23.0)]


@pytest.mark.parametrize(
    ("length", "pieces"), [(30.0, 1), (30.5, 2), (60.0, 3), (65.0, 3), (95.0, 4)]
)
def test_regions_over_strict_limit_are_cut_evenly(length: float, pieces: int) -> None:
    chunks = list(plan_chunks([(2.0, 2.0 + length)]))
    assert len(chunks) == pieces
    assert chunks[0].start == 2.0
    assert chunks[-1].end == 2.0 + length
    for a, b in itertools.pairwise(chunks):
        assert a.end == b.start
    for chunk in chunks:
        assert chunk.duration == pytest.approx(length / pieces)
        assert chunk.duration <= 30.0


def test_two_hour_region_is_cut_evenly_without_drift() -> None:
    total = 2 * 3600.0
    chunks = list(plan_chunks([(0.0, total)]))
    assert len(chunks) == int(total / 30.0) + 1
    assert chunks[0].start == 0.0
    assert chunks[-1].end == total
    for k, (a, b) in enumerate(itertools.pairwise(chunks)):
        assert a.end == b.start
        assert a.end == pytest.approx(total * (k + 1) / len(chunks), abs=1e-9)
    assert max(c.duration for c in chunks) <= 30.0


def test_matches_the_reference_when_no_fragment_is_tiny() -> None:
    rng = random.Random(1234)
    for _ in range(300):
        regions = random_regions(rng, rng.randint(1, 40), tiny=False)
        assert spans(plan_chunks(regions)) == reference_plan(regions), regions


def test_matches_the_reference_with_other_settings() -> None:
    rng = random.Random(99)
    for _ in range(100):
        regions = random_regions(rng, rng.randint(1, 30), tiny=False)
        ours = plan_chunks(regions, min_duration=5.0, max_duration=8.0, strict_limit=12.0)
        assert spans(ours) == reference_plan(regions, 5.0, 8.0, 12.0), regions


# --- tiny fragments: never dropped, never dragging silence along ------------------------------


def test_tiny_final_fragment_merges_into_the_previous_chunk() -> None:
    # Upstream would drop 17.0-17.1; here it joins the previous chunk.
    assert spans(plan_chunks([(0.0, 16.0), (17.0, 17.1)])) == [(0.0, 17.1)]


def test_tiny_final_fragment_far_from_the_previous_chunk_stands_alone() -> None:
    assert spans(plan_chunks([(0.0, 20.0), (100.0, 100.1)])) == [(0.0, 20.0), (100.0, 100.1)]


def test_tiny_final_fragment_after_a_strict_piece_stands_alone() -> None:
    # The last even piece is already ~29.99 s: merging would break the strict limit.
    chunks = spans(plan_chunks([(0.0, 59.98), (60.0, 60.1)]))
    assert chunks == [(0.0, 29.99), (29.99, 59.98), (60.0, 60.1)]


def test_a_lone_tiny_region_is_kept() -> None:
    assert spans(plan_chunks([(4.0, 4.15)])) == [(4.0, 4.15)]


def test_tiny_fragment_absorbs_a_close_next_region() -> None:
    assert spans(plan_chunks([(0.0, 0.1), (0.5, 5.0)])) == [(0.0, 5.0)]


def test_tiny_fragment_does_not_drag_a_long_silence_into_the_next_chunk() -> None:
    # Upstream: one 60 s chunk cut evenly at 30 s, i.e. 5 s inside the speech at 25-40.
    # Here the click joins nothing it cannot reach within max_duration.
    assert spans(plan_chunks([(0.0, 0.1), (25.0, 40.0)])) == [(0.0, 0.1), (25.0, 40.0)]
    # ...but it does join a previous chunk that is close enough.
    regions = [(0.0, 16.0), (17.0, 17.1), (60.0, 70.0)]
    assert spans(plan_chunks(regions)) == [(0.0, 17.1), (60.0, 70.0)]


def test_random_regions_keep_every_invariant() -> None:
    rng = random.Random(7)
    for _ in range(400):
        regions = random_regions(rng, rng.randint(1, 50), tiny=True)
        chunks = list(plan_chunks(regions))
        assert chunks, regions
        for chunk in chunks:
            assert 0.0 < chunk.duration <= 30.0 + 1e-9
        for a, b in itertools.pairwise(chunks):
            assert a.end <= b.start
        # Every bit of speech is inside some chunk (nothing dropped).
        for start, end in regions:
            covered = sum(max(0.0, min(end, c.end) - max(start, c.start)) for c in chunks)
            assert covered == pytest.approx(end - start, abs=1e-6), (start, end, chunks)
        # A chunk boundary falls inside a region only where a too-long stretch was cut evenly.
        for a, b in itertools.pairwise(chunks):
            if a.end == b.start:
                continue
            for start, end in regions:
                assert not (start < a.end < end), (start, end, a)


# --- streaming ------------------------------------------------------------------------------


def test_chunks_come_out_while_regions_are_still_arriving() -> None:
    pulled = 0

    def endless_speech() -> Iterator[Region]:
        nonlocal pulled
        for k in itertools.count():
            pulled += 1
            yield (k * 5.0, k * 5.0 + 4.0)

    first = list(itertools.islice(plan_chunks(endless_speech()), 3))
    assert spans(first) == [(0.0, 19.0), (20.0, 39.0), (40.0, 59.0)]
    # Only one region past the last closed chunk was needed.
    assert pulled == 13


def test_an_endless_speech_stretch_in_touching_pieces_streams_out() -> None:
    # The VAD may report a long speech stretch as touching 30 s pieces; each is a chunk.
    regions = ((k * 30.0, (k + 1) * 30.0) for k in itertools.count())
    chunks = list(itertools.islice(plan_chunks(regions), 1000))
    assert chunks[-1] == Chunk(999 * 30.0, 1000 * 30.0)


def test_parameters_are_checked_before_anything_is_consumed() -> None:
    def never() -> Iterator[Region]:
        raise AssertionError("consumed")
        yield (0.0, 1.0)

    with pytest.raises(ValueError, match="strict_limit"):
        plan_chunks(never(), strict_limit=0.0)
    with pytest.raises(ValueError, match="new_chunk_threshold"):
        plan_chunks(never(), new_chunk_threshold=-1.0)
    with pytest.raises(ValueError, match="max_duration"):
        plan_chunks(never(), max_duration=math.nan)
    with pytest.raises(ValueError, match="total_duration"):
        plan_chunks(never(), total_duration=-5.0)


# --- malformed input and clipping --------------------------------------------------------------


@pytest.mark.parametrize(
    ("regions", "message"),
    [
        ([(5.0, 6.0), (1.0, 2.0)], "sorted"),
        ([(5.0, 4.0)], "ends before it starts"),
        ([(math.nan, 1.0)], "finite"),
        ([(0.0, math.inf)], "finite"),
        ([(0.0,)], "pair"),
        ([("a", 1.0)], "number"),
    ],
)
def test_malformed_regions_raise_value_error(regions: list[Region], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        list(plan_chunks(regions))


def test_overlapping_regions_do_not_make_overlapping_chunks() -> None:
    assert spans(plan_chunks([(0.0, 5.0), (4.0, 8.0), (6.0, 7.0)])) == [(0.0, 8.0)]
    chunks = spans(plan_chunks([(0.0, 16.0), (15.5, 20.0)]))
    assert chunks == [(0.0, 16.0), (16.0, 20.0)]


def test_regions_are_clipped_to_the_file() -> None:
    regions = [(-0.5, 3.0), (8.0, 12.0), (12.5, 14.0)]
    assert spans(plan_chunks(regions, total_duration=10.0)) == [(0.0, 10.0)]
    assert list(plan_chunks([(11.0, 12.0)], total_duration=10.0)) == []


# --- short audio ------------------------------------------------------------------------------


def test_short_audio_with_speech_is_one_chunk_over_the_whole_file() -> None:
    assert SHORT_AUDIO_LIMIT == 25.0
    assert short_audio_chunk(12.5, [(3.0, 4.0), (6.0, 7.0)]) == Chunk(0.0, 12.5)


def test_short_audio_without_speech_has_no_chunk() -> None:
    assert short_audio_chunk(12.5, []) is None
    assert short_audio_chunk(12.5, [(2.0, 2.0)]) is None
    assert short_audio_chunk(12.5, [(13.0, 14.0)]) is None
    assert short_audio_chunk(0.0, [(0.0, 1.0)]) is None


def test_short_audio_stops_reading_regions_at_the_first_speech() -> None:
    regions = ((k * 1.0, k * 1.0 + 0.5) for k in itertools.count())
    assert short_audio_chunk(3.0, regions) == Chunk(0.0, 3.0)


def test_short_audio_rejects_bad_duration() -> None:
    with pytest.raises(ValueError, match="duration"):
        short_audio_chunk(-1.0, [])
    with pytest.raises(ValueError, match="duration"):
        short_audio_chunk(math.nan, [])


# --- real segment times -----------------------------------------------------------------------


def test_reference_segments_of_the_longform_corpus_are_never_cut(corpus_dir: Path) -> None:
    tables = sorted((corpus_dir / "longform").glob("*.segments.tsv"))
    assert tables
    for table in tables:
        with table.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        regions = [(float(r["speech_start_s"]), float(r["speech_end_s"])) for r in rows]
        chunks = list(plan_chunks(regions))
        assert len(chunks) >= 2, table.name
        for start, end in regions:
            holders = [c for c in chunks if c.start <= start and end <= c.end]
            assert len(holders) == 1, (table.name, start, end)
        for chunk in chunks:
            assert chunk.duration <= 22.0
