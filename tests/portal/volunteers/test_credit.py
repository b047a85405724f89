"""Credit maths (portal.volunteers.credit) against hand-computed values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal.volunteers import credit


def test_an_hour_of_the_real_game_outweighs_minutes_of_cartpole():
    game_hour = 36_000 * credit.seconds_per_step("SoulsGymIudex-v0")
    cartpole_ten_minutes = 600 * 5_000 * credit.seconds_per_step("CartPole-v1")  # 5,000 steps/s
    assert game_hour == pytest.approx(3_600)
    assert cartpole_ten_minutes == pytest.approx(600)
    assert credit.seconds_per_step("SoulsGymIudex-v0", {"game_speed": 2}) == pytest.approx(0.05)
    assert credit.seconds_per_step("SoulsGymIudex-v0", {"game_speed": "fast"}) == pytest.approx(0.1)
    assert credit.seconds_per_step("MountainCar-v0") == credit.DEFAULT_STEP_SECONDS


def test_recent_credit_of_a_steady_volunteer_is_their_credit_per_day():
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    steady = [credit.Bucket(now - timedelta(hours=h), 100.0) for h in range(24 * 70)]  # 2,400 a day
    assert credit.recent_credit(steady, now=now) == pytest.approx(2_400, rel=0.01)
    # One burst a half-life ago weighs half what the same burst today would.
    burst_old = credit.recent_credit([credit.Bucket(now - timedelta(days=7, minutes=30), 1000.0)], now=now)
    burst_new = credit.recent_credit([credit.Bucket(now - timedelta(minutes=30), 1000.0)], now=now)
    assert burst_old == pytest.approx(burst_new / 2)


def test_badges_for_milestones_and_top_shares():
    assert credit.milestone_badges(59) == []
    assert credit.milestone_badges(3_600) == ["First minute", "One hour"]
    assert [credit.top_share_badge(r, 200) for r in (1, 2, 3, 10, 11, 50, 51)] == [
        "Top 1%", "Top 1%", "Top 5%", "Top 5%", "Top 25%", "Top 25%", None,
    ]  # fmt: skip
    assert credit.top_share_badge(1, 3) == "Top 1%"  # the best of a few is still the best
