"""The serving policy on its own: which batches a lane's turn takes and how they become calls.

:func:`plan_turn` and :func:`plan_turn_calls` are pure functions over plain values, so each
rule of the policy (round-robin, background last and in slices, combining within a sample
budget, the second lane's short pick, calls split by length) is checked here on a ring written
out by hand, without threads. ``tests/test_scheduler.py`` checks the same rules through the
running scheduler.
"""

from __future__ import annotations

import pytest

from gigaam_api.scheduler.policy import (
    ModelCall,
    ServingPolicy,
    Take,
    TurnPlan,
    Waiting,
    WaveRef,
    background_slice,
    next_wave_seconds,
    plan_turn,
    plan_turn_calls,
)

PLAIN = ServingPolicy()
COMBINING = ServingPolicy(combine_samples=64)
OVERLAP = ServingPolicy(overlap_samples=16)


def job(*lengths: int) -> Waiting:
    return Waiting(background=True, lengths=lengths)


def request(*lengths: int) -> Waiting:
    return Waiting(background=False, lengths=lengths)


def first_lane(
    ring: list[Waiting],
    policy: ServingPolicy = PLAIN,
    *,
    interactive_admitted: int = 0,
    wave_seconds: float | None = None,
) -> TurnPlan | None:
    return plan_turn(
        ring,
        policy,
        lane=0,
        first_lane_busy=False,
        interactive_admitted=interactive_admitted,
        wave_seconds=wave_seconds,
    )


def second_lane(
    ring: list[Waiting], policy: ServingPolicy = OVERLAP, *, first_lane_busy: bool = True
) -> TurnPlan | None:
    return plan_turn(
        ring,
        policy,
        lane=1,
        first_lane_busy=first_lane_busy,
        interactive_admitted=len(ring),
        wave_seconds=None,
    )


def turn(*takes: tuple[int, int]) -> TurnPlan:
    return TurnPlan(tuple(Take(position, waves) for position, waves in takes))


# -- the first lane ------------------------------------------------------------------------


def test_an_empty_ring_gives_no_turn() -> None:
    assert first_lane([]) is None


def test_the_head_of_the_ring_is_served_whole_without_combining() -> None:
    ring = [request(4, 4, 4), request(4)]
    assert first_lane(ring) == turn((0, 3))


def test_interactive_work_goes_before_background_work_ahead_of_it_in_the_ring() -> None:
    ring = [job(4, 4), job(4), request(4), request(4)]
    assert first_lane(ring, interactive_admitted=2, wave_seconds=0.01) == turn((2, 1))


def test_background_work_runs_when_nothing_interactive_waits() -> None:
    ring = [job(4, 4, 4, 4), job(4)]
    assert first_lane(ring) == turn((0, 1))  # the first wave measures the speed


@pytest.mark.parametrize(
    ("admitted", "wave_seconds", "waves"),
    [
        (1, 0.01, 1),  # an interactive ticket is admitted: one wave, then look again
        (0, None, 1),  # no measurement yet
        (0, 0.5, 2),  # a 1 s budget holds two waves of 0.5 s
        (0, 0.3, 3),
        (0, 5.0, 1),  # at least one wave, however slow
        (0, 0.001, 4),  # never more than the batch has left
    ],
)
def test_a_background_slice_fits_the_time_budget(
    admitted: int, wave_seconds: float | None, waves: int
) -> None:
    ring = [job(4, 4, 4, 4)]
    plan = first_lane(ring, interactive_admitted=admitted, wave_seconds=wave_seconds)
    assert plan == turn((0, waves))


def test_background_slice_and_the_wave_time_average() -> None:
    budget = ServingPolicy(background_budget_s=10.0)
    assert background_slice(budget, interactive_admitted=0, wave_seconds=2.0) == 5
    assert background_slice(budget, interactive_admitted=0, wave_seconds=0.0) > 1_000_000
    assert next_wave_seconds(None, 2.0) == 2.0
    assert next_wave_seconds(1.0, 2.0) == pytest.approx(1.3)  # the newest weighs 0.3


def test_a_combining_turn_takes_the_next_batch_of_other_interactive_tickets() -> None:
    ring = [request(4), job(4), request(4, 4), request(4)]
    assert first_lane(ring, COMBINING, interactive_admitted=3) == turn((0, 1), (2, 2), (3, 1))


def test_a_batch_that_does_not_fit_is_skipped_and_later_ones_still_join() -> None:
    # 64 padded samples: "a" (4) + "big" (4 × 16) would be 80; "c" fits
    ring = [request(4), request(16, 16, 16, 16), request(4)]
    assert first_lane(ring, COMBINING) == turn((0, 1), (2, 1))


def test_combining_pads_to_the_longest_wave_taken() -> None:
    # 2 waves of 4 then one of 30: 3 × 30 = 90 > 64, so the long one waits
    ring = [request(4, 4), request(30), request(4, 4)]
    assert first_lane(ring, COMBINING) == turn((0, 2), (2, 2))


def test_a_first_batch_over_the_budget_still_runs_alone() -> None:
    # 2 × 40 = 80 > 64: the batch runs whole, and nothing joins it (any wave adds 40 or more)
    ring = [request(40, 40), request(4), request(41)]
    assert first_lane(ring, COMBINING) == turn((0, 2))


def test_without_request_combining_a_turn_holds_one_ticket() -> None:
    policy = ServingPolicy(combine_samples=64, combine_requests=False)
    assert first_lane([request(4), request(4)], policy) == turn((0, 1))


def test_background_turns_are_never_combined() -> None:
    assert first_lane([job(4), job(4)], COMBINING) == turn((0, 1))


# -- the second lane -----------------------------------------------------------------------


def test_the_second_lane_waits_while_the_first_is_idle() -> None:
    assert second_lane([request(4)], first_lane_busy=False) is None


def test_the_second_lane_takes_the_first_short_interactive_batch() -> None:
    ring = [job(4), request(20), request(4, 4)]  # 20 > 16 samples: too long
    assert second_lane(ring) == turn((2, 2))


def test_the_second_lane_never_takes_background_or_long_work() -> None:
    assert second_lane([job(4), request(4, 4, 4, 4, 4)]) is None


def test_the_second_lane_combines_within_its_own_bound() -> None:
    policy = ServingPolicy(combine_samples=64, overlap_samples=16)
    ring = [request(4, 4), request(4, 4), request(4)]
    assert second_lane(ring, policy) == turn((0, 2), (1, 2))


# -- from a turn's waves to model calls ----------------------------------------------------


def refs(*pairs: tuple[int, int]) -> ModelCall:
    return ModelCall(tuple(WaveRef(part, wave) for part, wave in pairs))


def test_without_combining_each_batch_is_one_call_whatever_its_lengths() -> None:
    assert plan_turn_calls([[40, 8], [4]], PLAIN) == (refs((0, 0), (0, 1)), refs((1, 0)))


def test_combined_waves_are_split_by_length() -> None:
    # a 4-sample clip is not padded to 16: two calls, in the order of their first wave
    calls = plan_turn_calls([[16, 16], [4], [15]], COMBINING)
    assert calls == (refs((0, 0), (0, 1), (2, 0)), refs((1, 0)))


def test_one_batch_of_mixed_lengths_is_split_too() -> None:
    calls = plan_turn_calls([[40, 8, 39, 9]], COMBINING)
    assert calls == (refs((0, 0), (0, 2)), refs((0, 1), (0, 3)))


def test_a_turn_without_waves_has_no_calls_to_make() -> None:
    assert plan_turn_calls([[]], COMBINING) == ()
    assert plan_turn_calls([[]], PLAIN) == (refs(),)  # an empty call, skipped when run


def test_a_model_call_knows_its_owners_and_their_waves() -> None:
    call = refs((2, 0), (0, 1), (2, 1), (0, 0))
    assert call.owners == (0, 2)
    assert call.of(2) == (0, 1) and call.of(0) == (1, 0) and call.of(1) == ()
    assert call.only([2]) == refs((2, 0), (2, 1))
    assert call.only([]) == refs()


# -- interim work (a live turn's re-recognition) ---------------------------------------------


def draft(*lengths: int) -> Waiting:
    return Waiting(background=False, lengths=lengths, interim=True)


def test_interactive_work_goes_before_interim_work_ahead_of_it() -> None:
    ring = [draft(4), request(4)]
    assert first_lane(ring, COMBINING) == turn((1, 1))  # the interim batch is not combined


def test_interim_work_goes_before_background_work_ahead_of_it() -> None:
    ring = [job(4, 4), draft(4, 4)]
    assert first_lane(ring) == turn((1, 2))


def test_background_work_goes_next_after_an_interim_turn() -> None:
    ring = [draft(4), job(4, 4)]
    after_interim = plan_turn(
        ring,
        PLAIN,
        lane=0,
        first_lane_busy=False,
        interactive_admitted=0,
        wave_seconds=None,
        last_was_interim=True,
    )
    assert after_interim == turn((1, 1))
    assert first_lane([draft(4)]) == turn((0, 1))  # alone, interim work runs at once


def test_interim_work_is_never_combined_nor_run_on_the_second_lane() -> None:
    assert first_lane([draft(4), draft(4)], COMBINING) == turn((0, 1))
    assert first_lane([request(4), draft(4)], COMBINING) == turn((0, 1))
    assert second_lane([draft(4)]) is None
