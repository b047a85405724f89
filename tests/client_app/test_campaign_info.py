"""The campaign's public figures as the client's window words them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from client_app.campaign_info import ago_words, api_url, win_rate_words


def test_a_boss_fight_reads_as_a_win_rate_with_the_boss_hp_left():
    assert win_rate_words({"win_rate_recent": 0.7391, "boss_hp_left_recent": 0.18}) == (
        "74% of the last 100 fights (boss HP left 18%)"
    )
    assert (
        win_rate_words({"win_rate_recent": 0.0, "boss_hp_left_recent": None}) == "0% of the last 100 fights"
    )
    assert win_rate_words({"win_rate_recent": None}) == ""  # not a boss fight


def test_the_trend_reads_as_the_portal_cards_word_it():
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    figures = {"win_rate_recent": 0.74, "boss_hp_left_recent": 0.18, "win_rate_then": 0.12,
               "win_rate_then_at": (now - timedelta(hours=25)).isoformat(), "win_rate_trend": "up"}  # fmt: skip
    assert (
        win_rate_words(figures, now)
        == "74% of the last 100 fights (boss HP left 18%), ▲ up from 12% 1 day, 1 hour ago"
    )
    figures.update(
        win_rate_trend="down", win_rate_then=0.9, win_rate_then_at=(now - timedelta(hours=2)).isoformat()
    )
    assert win_rate_words(figures, now).endswith(", ▼ down from 90% 2 hours ago")
    figures.update(win_rate_trend="flat", win_rate_then=0.745)
    assert win_rate_words(figures, now).endswith(", ● about the same as 74% 2 hours ago")
    figures.update(win_rate_trend="", win_rate_then=None, win_rate_then_at=None)  # a young campaign: no trend
    assert win_rate_words(figures, now) == "74% of the last 100 fights (boss HP left 18%)"


def test_the_trend_dates_like_djangos_naturaltime():
    from django.contrib.humanize.templatetags.humanize import naturaltime

    now = datetime.now(UTC)
    for hours in (1, 1.5, 2, 23, 24, 25, 49, 24 * 9, 24 * 40, 24 * 400):
        then = now - timedelta(hours=hours)
        assert ago_words(then, now) == naturaltime(then).replace("\xa0", " "), hours


def test_the_public_api_address_is_built_from_the_server_and_slug():
    assert (
        api_url("http://127.0.0.1:8000", "iudex arena")
        == "http://127.0.0.1:8000/api/campaigns/iudex%20arena/"
    )
    assert api_url("wss://souls.example/", "iudex") == "https://souls.example/api/campaigns/iudex/"
