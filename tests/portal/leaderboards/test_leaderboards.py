"""Leaderboards: counters rolled up into hourly contributions, cached boards, pages and API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.leaderboards import services
from portal.leaderboards.models import Contribution
from portal.leaderboards.selectors import board_cache_key, leaderboard_get
from portal.machines.services import token_create
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db


@pytest.fixture
def machines(alice, bob, cartpole_campaign):
    a1, _ = token_create(user=alice, campaign=cartpole_campaign, name="pc")
    a2, _ = token_create(user=alice, campaign=cartpole_campaign, name="laptop")
    b1, _ = token_create(user=bob, campaign=cartpole_campaign, name="rig")
    return a1, a2, b1


def counters(redis_client, campaign, *, samples=None, episodes=None, wins=None):
    keys = CampaignKeys(campaign.id)
    for key, values in (
        (keys.machine_samples, samples),
        (keys.machine_episodes, episodes),
        (keys.machine_wins, wins),
    ):
        if values:
            redis_client.hset(key, mapping={str(k.pk): v for k, v in values.items()})


def test_rollup_credits_deltas_to_owners_hour_by_hour(cartpole_campaign, machines, alice, bob, redis_client):
    a1, a2, b1 = machines
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    counters(
        redis_client,
        cartpole_campaign,
        samples={a1: 100, a2: 50, b1: 400},
        episodes={a1: 2, b1: 5},
        wins={b1: 1},
    )
    assert services.contributions_rollup(campaign=cartpole_campaign, now=hour - timedelta(minutes=30)) == 2
    counters(redis_client, cartpole_campaign, samples={a1: 300}, episodes={a1: 3})
    services.contributions_rollup(campaign=cartpole_campaign, now=hour + timedelta(minutes=5))
    services.contributions_rollup(campaign=cartpole_campaign, now=hour + timedelta(minutes=6))  # nothing new

    rows = {(c.user.username, c.hour): (c.samples, c.episodes, c.wins) for c in Contribution.objects.all()}
    assert rows == {
        ("alice", hour - timedelta(hours=1)): (150, 2, 0),
        ("bob", hour - timedelta(hours=1)): (400, 5, 1),
        ("alice", hour): (200, 1, 0),
    }


def test_counters_that_went_back_count_again_from_zero(cartpole_campaign, machines, redis_client):
    a1, _, _ = machines
    counters(redis_client, cartpole_campaign, samples={a1: 1000})
    services.contributions_rollup(campaign=cartpole_campaign)
    redis_client.delete(CampaignKeys(cartpole_campaign.id).machine_samples)  # Redis lost its data
    counters(redis_client, cartpole_campaign, samples={a1: 30})
    services.contributions_rollup(campaign=cartpole_campaign)
    assert sum(Contribution.objects.values_list("samples", flat=True)) == 1030


def test_boards_rank_by_samples_over_each_period(cartpole_campaign, stopped_campaign, alice, bob):
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    Contribution.objects.create(campaign=cartpole_campaign, user=alice, hour=hour, samples=100, episodes=1)
    Contribution.objects.create(
        campaign=cartpole_campaign, user=bob, hour=hour - timedelta(days=3), samples=500, wins=2
    )
    Contribution.objects.create(
        campaign=stopped_campaign, user=alice, hour=hour - timedelta(days=30), samples=1000
    )
    services.leaderboards_refresh(now=now)

    def names(campaign, period):
        return [
            (e["username"], e["samples"])
            for e in leaderboard_get(campaign=campaign, period=period)["entries"]
        ]

    assert names(cartpole_campaign, "all") == [("bob", 500), ("alice", 100)]
    assert names(cartpole_campaign, "7d") == [("bob", 500), ("alice", 100)]
    assert names(cartpole_campaign, "24h") == [("alice", 100)]
    assert names(None, "all") == [("alice", 1100), ("bob", 500)]
    board = leaderboard_get(campaign=None, period="all")
    assert board["entries"][0]["campaigns"] == 2 and board["entries"][1]["wins"] == 2


def test_pages_and_api_read_the_cached_board(
    client, cartpole_campaign, alice, redis_client, django_assert_max_num_queries
):
    Contribution.objects.create(campaign=cartpole_campaign, user=alice, hour=timezone.now(), samples=77)
    services.leaderboards_refresh()
    assert redis_client.exists(board_cache_key(campaign=cartpole_campaign, period="7d"))
    with django_assert_max_num_queries(1):  # the campaign; the board itself comes from the cache
        data = client.get("/api/campaigns/cartpole-test/leaderboard/?period=7d").json()
    assert data["campaign"] == "cartpole-test" and data["period"] == "7d"
    assert data["entries"][0] == {
        "rank": 1,
        "username": "alice",
        "samples": 77,
        "episodes": 0,
        "wins": 0,
        "campaigns": 1,
        "public": True,
        "credit": 0.02,  # 77 CartPole steps of 0.0002 s (portal.volunteers.credit)
    }
    assert client.get("/api/leaderboard/").json()["entries"][0]["username"] == "alice"

    html = client.get("/campaigns/cartpole-test/leaderboard/?period=24h").content.decode()
    assert "alice" in html and "77" in html
    assert "alice" in client.get("/leaderboard/").content.decode()


def test_an_unknown_period_is_a_clear_400(client, cartpole_campaign):
    for url in ("/api/campaigns/cartpole-test/leaderboard/?period=1y", "/api/leaderboard/?period=1y"):
        response = client.get(url)
        assert response.status_code == 400
        assert response.json()["error"] == "unknown period '1y': use period=all|7d|24h"
    page = client.get("/leaderboard/?period=1y")
    assert page.status_code == 400 and "There is no period" in page.content.decode()
    assert client.get("/api/campaigns/nope/leaderboard/").status_code == 404


def test_profile_shows_wins_per_campaign(alice_client, alice, cartpole_campaign, machines):
    Contribution.objects.create(
        campaign=cartpole_campaign, user=alice, hour=timezone.now(), samples=5, wins=3
    )
    response = alice_client.get("/accounts/profile/")
    assert response.context["contributions"][0].wins == 3
