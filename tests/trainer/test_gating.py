"""The roll-out gate's rule (trainer.gating), against hand-computed values."""

from __future__ import annotations

import pytest

from trainer.gating import Evaluated, best_of, held_back_reason, wilson_interval


def fights(version: int, wins: int, n: int) -> Evaluated:
    return Evaluated(version=version, episodes=n, mean_return=0.0, wins=wins)


def test_wilson_interval_matches_the_textbook_values():
    # 8 of 40 and 22 of 40 at z = 1.96 (Wilson 1927; e.g. Newcombe 1998's method 3).
    assert wilson_interval(8, 40) == pytest.approx((0.1050, 0.3476), abs=2e-4)
    assert wilson_interval(22, 40) == pytest.approx((0.3983, 0.6930), abs=2e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_a_checkpoint_clearly_worse_in_enough_fights_is_held_back_with_the_evidence():
    reason = held_back_reason(fights(12, 8, 40), fights(9, 22, 40), margin=0.1)
    assert reason == "held back: v12 won 20% of 40 fights vs best v9's 55% of 40"


def test_the_same_rates_over_too_few_fights_are_not_enough_to_tell():
    # 1 of 5 vs 3 of 5: 40 points apart, but the intervals overlap widely.
    assert held_back_reason(fights(12, 1, 5), fights(9, 3, 5), margin=0.1) is None


def test_a_difference_within_the_margin_rolls_out_however_many_fights():
    # 500 of 1000 vs 580 of 1000: clear statistically (intervals apart), but 8 points < 10.
    assert held_back_reason(fights(12, 500, 1000), fights(9, 580, 1000), margin=0.1) is None
    assert held_back_reason(fights(12, 500, 1000), fights(9, 580, 1000), margin=0.05) is not None


def test_returns_need_the_margin_and_z_standard_errors():
    best = Evaluated(version=9, episodes=20, mean_return=400.0, return_std=50.0)
    # 100 below (25 % of 400 > 10 %), standard error sqrt(2 * 50²/20) = 15.8: held back.
    worse = Evaluated(version=12, episodes=20, mean_return=300.0, return_std=50.0)
    assert held_back_reason(worse, best, margin=0.1) == (
        "held back: v12 returned 300 ± 50 over 20 episodes vs best v9's 400 ± 50 over 20"
    )
    # The same means with a spread of 250: standard error 79, 1.96 of them 155 > 100: cannot tell.
    noisy = Evaluated(version=12, episodes=20, mean_return=300.0, return_std=250.0)
    assert held_back_reason(noisy, dataclass_replace(best, return_std=250.0), margin=0.1) is None
    # 30 below is within 10 % of 400, however tight.
    close = Evaluated(version=12, episodes=20, mean_return=370.0, return_std=1.0)
    assert held_back_reason(close, dataclass_replace(best, return_std=1.0), margin=0.1) is None
    # No spread recorded: nothing held back.
    assert held_back_reason(dataclass_replace(worse, return_std=None), best, margin=0.1) is None


def test_a_better_or_equal_checkpoint_is_never_held_back():
    assert held_back_reason(fights(12, 30, 40), fights(9, 22, 40), margin=0.0) is None
    assert held_back_reason(fights(9, 22, 40), fights(9, 22, 40), margin=0.0) is None


def test_the_best_is_the_highest_win_rate_then_return_then_newest():
    assert best_of([fights(3, 10, 40), fights(6, 22, 40), fights(9, 22, 40)]).version == 9
    assert best_of([Evaluated(1, 10, 50.0), Evaluated(2, 10, 80.0), Evaluated(3, 10, 70.0)]).version == 2
    assert best_of([]) is None


def dataclass_replace(e: Evaluated, **changes) -> Evaluated:
    import dataclasses

    return dataclasses.replace(e, **changes)
