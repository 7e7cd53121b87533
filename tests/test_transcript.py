"""Word placement and subtitle-grade segmentation on synthetic word lists."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from gigaam_api.transcript import Segment, Transcript, Word, build_segments, place_words


def words_at(
    text: str, *, start: float = 0.0, step: float = 0.4, length: float = 0.3
) -> list[Word]:
    """Evenly spaced words: a 0.1 s pause between them unless step/length say otherwise."""
    return [
        Word(token, start + i * step, start + i * step + length)
        for i, token in enumerate(text.split())
    ]


def texts(segments: list[Segment]) -> list[str]:
    return [s.text for s in segments]


# --- place_words ------------------------------------------------------------------------------


def test_place_words_applies_the_chunk_offset() -> None:
    placed = place_words([Word("да", 0.5, 0.9), Word("нет", 1.2, 1.6)], offset=30.0, duration=60.0)
    assert placed == [Word("да", 30.5, 30.9), Word("нет", 31.2, 31.6)]


def test_place_words_makes_times_monotonic() -> None:
    raw = [Word("a", 1.0, 2.0), Word("b", 1.5, 1.4), Word("c", 1.8, 2.5)]
    placed = place_words(raw, offset=0.0, duration=None)
    assert [(w.start, w.end) for w in placed] == [(1.0, 2.0), (2.0, 2.0), (2.0, 2.5)]


def test_place_words_continues_after_the_previous_chunk() -> None:
    placed = place_words([Word("a", 0.0, 0.3)], offset=10.0, duration=None, previous_end=10.2)
    assert placed == [Word("a", 10.2, 10.3)]


def test_place_words_clips_to_the_file() -> None:
    raw = [Word("a", -0.2, 0.1), Word("b", 4.8, 5.3), Word("c", 5.4, 5.6)]
    placed = place_words(raw, offset=0.0, duration=5.0)
    assert [(w.start, w.end) for w in placed] == [(0.0, 0.1), (4.8, 5.0), (5.0, 5.0)]
    assert [w.text for w in placed] == ["a", "b", "c"]


def test_place_words_random_lists_are_inside_and_ordered() -> None:
    rng = random.Random(3)
    for _ in range(200):
        offset = rng.uniform(0.0, 100.0)
        duration = offset + rng.uniform(0.0, 30.0)
        raw = [
            Word("w", s, s + rng.uniform(-0.1, 0.8))
            for s in sorted(rng.uniform(-1.0, 32.0) for _ in range(rng.randint(0, 30)))
        ]
        placed = place_words(raw, offset=offset, duration=duration, previous_end=offset + 0.1)
        for word in placed:
            assert 0.0 <= word.start <= word.end <= duration
        for a, b in itertools.pairwise(placed):
            assert a.end <= b.start


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"offset": math.nan, "duration": 1.0}, "offset"),
        ({"offset": 0.0, "duration": -1.0}, "duration"),
        ({"offset": 0.0, "duration": math.inf}, "duration"),
    ],
)
def test_place_words_rejects_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        place_words([Word("a", 0.0, 1.0)], **kwargs)


def test_place_words_rejects_non_finite_word_times() -> None:
    with pytest.raises(ValueError, match="word #1 end"):
        place_words([Word("a", 0.0, 1.0), Word("b", 1.0, math.nan)], offset=0.0, duration=None)


# --- build_segments: where segments break ---------------------------------------------------------


def test_no_words_no_segments() -> None:
    assert build_segments([], start_id=0) == []
    assert build_segments([Word(" ", 0.0, 1.0)], start_id=0) == []


def test_close_words_form_one_segment_with_first_start_and_last_end() -> None:
    words = words_at("привет как дела")
    [segment] = build_segments(words, start_id=5)
    assert segment == Segment(5, 0.0, 1.1, "привет как дела", tuple(words))


def test_pause_of_at_least_gap_starts_a_new_segment() -> None:
    words = [Word("раз", 0.0, 0.4), Word("два", 0.5, 0.9), Word("три", 1.5, 1.9)]
    segments = build_segments(words, start_id=0)
    assert texts(segments) == ["раз два", "три"]
    assert [(s.start, s.end) for s in segments] == [(0.0, 0.9), (1.5, 1.9)]
    # A pause just under the gap does not split.
    assert texts(build_segments(words, start_id=0, gap=0.61)) == ["раз два три"]


def test_sentence_punctuation_ends_a_segment() -> None:
    words = words_at("Привет. Как дела? Хорошо! Ну… ладно «вот так». (Конец.) Ещё")
    assert texts(build_segments(words, start_id=0)) == [
        "Привет.",
        "Как дела?",
        "Хорошо!",
        "Ну…",
        "ладно «вот так».",
        "(Конец.)",
        "Ещё",
    ]


def test_segments_stay_within_seven_seconds() -> None:
    words = words_at(" ".join(["слово"] * 60), step=0.5, length=0.45)
    segments = build_segments(words, start_id=0)
    assert len(segments) > 1
    for segment in segments:
        assert segment.end - segment.start <= 7.0
    assert [w for s in segments for w in s.words] == words


def test_segments_stay_within_84_characters() -> None:
    words = words_at(" ".join(["длинноватое"] * 40), step=0.1, length=0.08)
    segments = build_segments(words, start_id=0)
    assert len(segments) > 1
    for segment in segments:
        assert len(segment.text) <= 84
        # Full enough: the next word would not have fit.
        assert len(segment.text) + len(" длинноватое") > 84 or segment is segments[-1]


def test_over_long_segment_breaks_after_a_comma_rather_than_mid_phrase() -> None:
    text = "мы шли долго по дороге домой, а потом сели на скамейку и долго смотрели на реку"
    words = words_at(text, step=0.45, length=0.4)
    segments = build_segments(words, start_id=0)
    assert texts(segments)[0] == "мы шли долго по дороге домой,"
    assert all(s.end - s.start <= 7.0 for s in segments)


def test_over_long_segment_breaks_at_the_longest_pause() -> None:
    words = words_at("а б в г д е ж з и к л м н о п р с т", step=0.4, length=0.3)
    # Widen the pause after "з" (index 7) to 0.4 s: still below the 0.6 s gap.
    words = [w if i <= 7 else Word(w.text, w.start + 0.3, w.end + 0.3) for i, w in enumerate(words)]
    segments = build_segments(words, start_id=0)
    assert texts(segments)[0] == "а б в г д е ж з"


def test_a_break_never_leaves_a_tiny_head() -> None:
    # The comma after the first word is too early to break at: the head would be one word.
    words = words_at("итак, " + " ".join(["слово"] * 30), step=0.5, length=0.45)
    first = build_segments(words, start_id=0)[0]
    assert first.text.startswith("итак, слово")
    assert first.end - first.start > 3.5


def test_a_single_huge_word_is_its_own_segment_and_never_cut() -> None:
    huge = "а" * 120
    words = [Word("до", 0.0, 0.2), Word(huge, 0.3, 9.0), Word("после", 9.1, 9.4)]
    assert texts(build_segments(words, start_id=0)) == ["до", huge, "после"]


def test_ids_count_up_from_start_id() -> None:
    words = words_at("Раз. Два. Три.")
    assert [s.id for s in build_segments(words, start_id=17)] == [17, 18, 19]


def test_word_text_whitespace_is_normalised() -> None:
    words = [Word(" привет ", 0.0, 0.3), Word("", 0.35, 0.36), Word("мир\n", 0.4, 0.7)]
    [segment] = build_segments(words, start_id=0)
    assert segment.text == "привет мир"
    assert [w.text for w in segment.words] == ["привет", "мир"]


def test_random_words_respect_every_rule() -> None:
    rng = random.Random(11)
    vocabulary = ["да", "нет", "может", "быть", "конечно,", "ладно.", "почему?", "длинноватое"]
    for _ in range(200):
        t = 0.0
        words: list[Word] = []
        for _ in range(rng.randint(1, 120)):
            t += rng.choice([0.02, 0.1, 0.3, 0.7])
            length = rng.uniform(0.1, 0.9)
            words.append(Word(rng.choice(vocabulary), t, t + length))
            t += length
        segments = build_segments(words, start_id=0)
        assert [w for s in segments for w in s.words] == words  # nothing lost, order kept
        for k, segment in enumerate(segments):
            assert segment.id == k
            assert segment.start == segment.words[0].start
            assert segment.end == segment.words[-1].end
            assert segment.text == " ".join(w.text for w in segment.words)
            if len(segment.words) > 1:
                assert segment.end - segment.start <= 7.0
                assert len(segment.text) <= 84
            for a, b in itertools.pairwise(segment.words):
                assert b.start - a.end < 0.6
                assert not a.text.endswith((".", "?"))
        transcript = Transcript(segments=segments, duration=t)
        assert transcript.text == " ".join(w.text for w in words)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_duration": 0.0}, "max_duration"),
        ({"max_duration": math.nan}, "max_duration"),
        ({"max_chars": 0}, "max_chars"),
        ({"gap": 0.0}, "gap"),
    ],
)
def test_build_segments_rejects_bad_limits(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_segments(words_at("a b"), start_id=0, **kwargs)  # type: ignore[arg-type]
