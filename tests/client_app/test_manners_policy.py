"""The manners policy and the hours, pure: readings and times are handed in."""

from __future__ import annotations

import pytest

from client_app.manners import HoursError, MannersConfig, Policy, Reading, parse_hours
from client_app.manners.idle import OwnInput


def at(hh_mm: str) -> float:
    h, m = hh_mm.split(":")
    return int(h) * 60 + int(m)


def test_input_pauses_at_once_and_plays_again_after_the_idle_minutes():
    policy = Policy(MannersConfig(idle_minutes=3), started=1000.0)
    assert not policy.decide(1010.0, Reading(idle_s=60.0)).paused  # input before the start: the Enter key
    verdict = policy.decide(1100.0, Reading(idle_s=0.5))  # the mouse moved after the start
    assert verdict.paused
    assert verdict.reasons == (
        "you used the keyboard or mouse 0 s ago (plays again after 3 min without input)",
    )
    assert policy.decide(1100.0 + 179.0, Reading(idle_s=179.5)).paused
    assert not policy.decide(1100.0 + 181.0, Reading(idle_s=181.0)).paused
    assert not policy.decide(1300.0, Reading(idle_s=None)).paused  # a source that cannot tell never pauses


def test_input_is_ignored_when_pausing_on_input_is_off():
    policy = Policy(MannersConfig(pause_on_input=False), started=0.0)
    assert not policy.decide(100.0, Reading(idle_s=0.0)).paused


def test_programs_and_hours_add_their_reasons():
    config = MannersConfig(pause_on_input=True, idle_minutes=0.5, hours=parse_hours("22:00-08:00"))
    policy = Policy(config, started=0.0)
    assert not policy.decide(100.0, Reading(idle_s=50.0, minute_of_day=at("23:30"))).paused
    verdict = policy.decide(100.0, Reading(idle_s=5.0, programs=("eldenring",), minute_of_day=at("12:00")))
    assert verdict.paused
    assert verdict.reasons[1:] == (
        "eldenring is running",
        "outside the hours you set (22:00-08:00; plays again at 22:00)",
    )
    assert "30 s without input" in verdict.reasons[0]
    assert str(verdict).count(";") >= 2


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("22:00-08:00", ["22:00", "23:59", "00:00", "07:59"], ["08:00", "12:00", "21:59"]),
        ("9:30-17:00", ["09:30", "16:59"], ["09:29", "17:00", "00:00"]),
        ("12:00-13:00, 22:00-24:00", ["12:30", "23:59"], ["00:00", "13:00", "21:00"]),
        ("23:00-00:30", ["23:00", "00:29"], ["00:30", "22:59"]),
    ],
)
def test_hours_ranges_including_across_midnight(text, inside, outside):
    hours = parse_hours(text)
    assert all(hours.contains(at(t)) for t in inside), [t for t in inside if not hours.contains(at(t))]
    assert not any(hours.contains(at(t)) for t in outside), [t for t in outside if hours.contains(at(t))]


def test_next_start_is_the_nearest_range_ahead():
    hours = parse_hours("12:00-13:00,22:00-08:00")
    assert hours.next_start(at("09:00")) == "12:00"
    assert hours.next_start(at("14:00")) == "22:00"
    assert str(hours) == "12:00-13:00,22:00-08:00"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no hours given"),
        ("22:00", "is not a range"),
        ("22-08", "is not a time of day; write HH:MM"),
        ("25:00-08:00", "25:00 is not a time of day"),
        ("22:60-08:00", "22:60 is not a time of day"),
        ("24:00-08:00", "24:00 is not a time of day"),
        ("08:00-08:00", "starts and ends at the same time"),
        ("22:00-08:00-09:00", "is not a range"),
        ("10pm-8am", "is not a time of day"),
    ],
)
def test_bad_hours_are_refused_with_the_reason(text, says):
    with pytest.raises(HoursError, match=says):
        parse_hours(text)


def test_describe_says_every_setting():
    config = MannersConfig(
        idle_minutes=5, pause_while=("steam", "eldenring.exe"), hours=parse_hours("22:00-8:00")
    )
    assert config.describe() == (
        "pauses on keyboard or mouse input, until 5 min without input; while steam, eldenring.exe runs; "
        "outside 22:00-08:00"
    )
    assert MannersConfig(pause_on_input=False).describe() == "never pauses by itself"


def test_the_clients_own_key_presses_are_told_apart_by_their_time():
    own = OwnInput()
    own.note(1000, 1002)
    own.note(2**32 - 5, 3)  # a call across the tick counter's wrap (49.7 days)
    assert own.is_own(1001) and own.is_own(990) and own.is_own(1015)
    assert not own.is_own(1050) and not own.is_own(900)
    assert own.is_own(1) and own.is_own(2**32 - 10)
    assert not own.is_own(100)


def test_the_agents_key_presses_through_soulsgym_are_noted_as_its_own():
    """SoulsGym presses keys through ``game_input.USER32.SendInput``; the gate notes each call's time."""
    from types import SimpleNamespace

    from client_app import gamewin
    from client_app.manners.idle import OWN_INPUT, tick_count

    def send(*args):
        pressed.append(tick_count())
        return 1

    pressed: list[int] = []
    game_input = SimpleNamespace(USER32=SimpleNamespace(SendInput=send))  # as far as the gate goes
    assert gamewin.InputGate().install(game_input)
    assert game_input.USER32.SendInput(1, "key", 40) == 1
    assert OWN_INPUT.is_own(pressed[0], slack_ms=0)
    assert not OWN_INPUT.is_own(pressed[0] + 10_000)
