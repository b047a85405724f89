"""The campaign's public figures as the client's window words them."""

from __future__ import annotations

from client_app.campaign_info import api_url, win_rate_words


def test_a_boss_fight_reads_as_a_win_rate_with_the_boss_hp_left():
    assert win_rate_words({"win_rate_recent": 0.7391, "boss_hp_left_recent": 0.18}) == (
        "74% of the last 100 fights (boss HP left 18%)"
    )
    assert win_rate_words({"win_rate_recent": 0.0, "boss_hp_left_recent": None}) == "0% of the last 100 fights"
    assert win_rate_words({"win_rate_recent": None}) == ""  # not a boss fight


def test_the_public_api_address_is_built_from_the_server_and_slug():
    assert api_url("http://127.0.0.1:8000", "iudex arena") == "http://127.0.0.1:8000/api/campaigns/iudex%20arena/"
    assert api_url("wss://souls.example/", "iudex") == "https://souls.example/api/campaigns/iudex/"
