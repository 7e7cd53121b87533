"""The live session's pure turn logic (``service/live_turns.py``): where turns start, end and
are cut, the idle timeout, and which interim words may be sent."""

from __future__ import annotations

from gigaam_api.service.live_turns import (
    WINDOW_MS,
    IdleTimeout,
    TurnDetection,
    TurnDetector,
    TurnEnded,
    TurnStarted,
    cut_point,
    final_delta,
    stable_delta,
)

SPEECH, QUIET = 0.9, 0.05


def windows(ms: int, prob: float) -> list[float]:
    return [prob] * (ms // WINDOW_MS)


def test_a_turn_starts_with_its_prefix_and_ends_after_the_silence() -> None:
    detector = TurnDetector(
        TurnDetection(prefix_padding_ms=300, silence_duration_ms=480), max_turn_ms=20_000
    )
    changes = detector.feed(windows(1024, QUIET) + windows(960, SPEECH) + windows(640, QUIET))
    assert changes == [TurnStarted(1024 - 300, 1024), TurnEnded(1024 + 960 + 480)]
    assert not detector.in_turn


def test_the_prefix_never_reaches_into_the_previous_turn() -> None:
    detector = TurnDetector(
        TurnDetection(prefix_padding_ms=1000, silence_duration_ms=320), max_turn_ms=20_000
    )
    changes = detector.feed(
        windows(640, SPEECH) + windows(320, QUIET) + windows(64, QUIET) + windows(320, SPEECH)
    )
    ended = next(c for c in changes if isinstance(c, TurnEnded))
    second = [c for c in changes if isinstance(c, TurnStarted)][1]
    assert second.start_ms == ended.end_ms


def test_a_pause_inside_a_turn_is_visible() -> None:
    detector = TurnDetector(TurnDetection(silence_duration_ms=500), max_turn_ms=20_000)
    detector.feed(windows(320, SPEECH))
    assert not detector.pausing
    detector.feed(windows(64, QUIET))
    assert detector.pausing
    detector.feed(windows(32, SPEECH))
    assert not detector.pausing


def test_probabilities_between_the_thresholds_keep_the_state() -> None:
    detector = TurnDetector(
        TurnDetection(threshold=0.5, silence_duration_ms=320), max_turn_ms=20_000
    )
    changes = detector.feed(windows(320, SPEECH) + windows(2000, 0.4))  # above 0.35: still speech
    assert changes == [TurnStarted(0, 0)]


def test_an_overlong_turn_is_cut_at_its_quietest_stretch() -> None:
    detector = TurnDetector(TurnDetection(silence_duration_ms=500), max_turn_ms=3200)
    probs = windows(2400, SPEECH) + windows(192, 0.4) + windows(1600, SPEECH)
    changes = detector.feed(probs)
    cut = next(c for c in changes if isinstance(c, TurnEnded))
    assert cut.cut and 2400 <= cut.end_ms < 2400 + 192
    assert changes[changes.index(cut) + 1] == TurnStarted(cut.end_ms, cut.end_ms)
    assert detector.in_turn


def test_cut_point_prefers_the_second_half() -> None:
    probs = [0.0] + [SPEECH] * 9 + [0.3] + [SPEECH] * 9
    assert cut_point(probs, 1000) == 1000 + 10 * WINDOW_MS


def test_idle_timeout_fires_once_per_silence() -> None:
    detector = TurnDetector(TurnDetection(idle_timeout_ms=1024), max_turn_ms=20_000)
    changes = detector.feed(windows(2048 + 64, QUIET))
    assert changes == [IdleTimeout(0, 1024), IdleTimeout(1024, 2048)]


def test_reset_forgets_the_open_turn() -> None:
    detector = TurnDetector(TurnDetection(), max_turn_ms=20_000)
    detector.feed(windows(320, SPEECH))
    detector.reset(320)
    assert not detector.in_turn and detector.floor_ms == 320
    assert detector.feed(windows(64, SPEECH)) == [TurnStarted(320, 320)]


def test_only_words_two_hypotheses_agree_on_are_sent() -> None:
    assert stable_delta("", None, "привет как") == ""
    assert stable_delta("", "привет ка", "привет как дела") == "привет"
    assert stable_delta("привет", "привет как дела", "привет как дела у") == " как дела"
    assert stable_delta("привет как", "привет кот", "привет как") == ""  # revised: wait


def test_the_final_adds_what_the_interim_text_lacks() -> None:
    assert final_delta("", "привет мир") == "привет мир"
    assert final_delta("привет", "привет мир") == " мир"
    assert final_delta("привет", "превед мир") == ""
    assert final_delta("привет мир", "привет мир") == ""
