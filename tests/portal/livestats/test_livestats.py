"""Live stats: snapshots with derived rates, thinning, the stats API, and the browsers' websocket."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from portal.campaigns.models import Campaign
from portal.livestats import services
from portal.livestats.models import CampaignSnapshot

pytestmark = pytest.mark.django_db


def _set(campaign, **figures):
    Campaign.objects.filter(pk=campaign.pk).update(**figures)
    campaign.refresh_from_db()
    return campaign


def test_snapshots_derive_rates_from_the_previous_one(cartpole_campaign):
    t0 = timezone.now() - timedelta(seconds=20)
    _set(
        cartpole_campaign,
        samples_total=1000,
        updates_total=10,
        clients_active=2,
        model_version=1,
        mean_return_recent=20.0,
    )
    first = services.snapshot_take(campaign=cartpole_campaign, at=t0)
    assert first.samples_per_s is None and first.win_rate is None  # nothing to compare with; not a boss fight
    _set(cartpole_campaign, samples_total=3000, updates_total=50, model_version=2, mean_return_recent=35.5)
    second = services.snapshot_take(campaign=cartpole_campaign, at=t0 + timedelta(seconds=10))
    assert second.samples_per_s == pytest.approx(200.0)
    assert second.updates_per_s == pytest.approx(4.0)
    assert (second.model_version, second.mean_return, second.clients_active) == (2, 35.5, 2)


def test_a_boss_fight_charts_the_same_recent_win_rate_as_its_headline(cartpole_campaign):
    # One "recent" window everywhere: the chart plots the last 100 fights' win rate, as the figures say.
    boss = _set(cartpole_campaign, env_id="SoulsGymIudex-v0", episodes_total=10, wins_total=1, win_rate_recent=0.1)
    t0 = timezone.now() - timedelta(minutes=10)
    services.snapshot_take(campaign=boss, at=t0)
    _set(boss, episodes_total=30, wins_total=6, win_rate_recent=0.2)
    later = services.snapshot_take(campaign=boss, at=t0 + timedelta(minutes=6))
    assert later.wins_total == 6
    assert later.win_rate == pytest.approx(0.2) == boss.win_rate_recent


def test_a_boss_fight_snapshot_keeps_the_boss_hp_left_and_the_stats_api_serves_it(client, cartpole_campaign):
    # Before the first wins, the boss's HP going down is what shows an agent learning.
    boss = _set(cartpole_campaign, env_id="soulsai/IudexArena-v0", episodes_total=40, boss_hp_left_recent=0.62)
    services.snapshot_take(campaign=boss, at=timezone.now() - timedelta(seconds=20))
    _set(boss, episodes_total=80, boss_hp_left_recent=0.31)
    assert services.snapshot_take(campaign=boss).boss_hp_left == pytest.approx(0.31)
    points = client.get(f"/api/campaigns/{boss.slug}/stats/?window=1h").json()["points"]
    assert [p["boss_hp_left"] for p in points] == [0.62, 0.31]
    # CartPole has no boss: its snapshots leave it out even if a figure were there.
    cartpole = _set(boss, env_id="CartPole-v1")
    assert services.snapshot_take(campaign=cartpole).boss_hp_left is None


def test_a_tick_snapshots_live_campaigns_at_most_every_interval(
    cartpole_campaign, stopped_campaign, settings
):
    settings.SOULSAI_SNAPSHOT_SECONDS = 10
    now = timezone.now()
    assert services.stats_tick(now=now) == 1  # the running one; stopped campaigns do not change
    assert services.stats_tick(now=now + timedelta(seconds=2)) == 0
    assert services.stats_tick(now=now + timedelta(seconds=10)) == 1
    assert CampaignSnapshot.objects.filter(campaign=cartpole_campaign).count() == 2
    assert not CampaignSnapshot.objects.filter(campaign=stopped_campaign).exists()


def test_old_snapshots_are_thinned_and_recent_ones_kept(cartpole_campaign):
    now = timezone.now().replace(second=0, microsecond=0)
    for i in range(12):  # two days ago, every 10 s for 2 minutes: thinned to one per minute
        services.snapshot_take(
            campaign=cartpole_campaign, at=now - timedelta(days=2) + timedelta(seconds=10 * i)
        )
    for i in range(6):  # the last minute: all kept
        services.snapshot_take(campaign=cartpole_campaign, at=now - timedelta(seconds=10 * i))
    deleted = services.snapshots_thin(campaign=cartpole_campaign, now=now)
    assert deleted == 10
    assert CampaignSnapshot.objects.filter(campaign=cartpole_campaign).count() == 8


def test_stats_api_returns_the_series_and_refuses_unknown_windows(client, cartpole_campaign, draft_campaign):
    t0 = timezone.now() - timedelta(minutes=5)
    for i in range(3):
        _set(cartpole_campaign, samples_total=100 * (i + 1))
        services.snapshot_take(campaign=cartpole_campaign, at=t0 + timedelta(seconds=10 * i))
    services.snapshot_take(campaign=cartpole_campaign, at=t0 - timedelta(hours=2))  # outside 1h
    data = client.get("/api/campaigns/cartpole-test/stats/?window=1h").json()
    assert data["slug"] == "cartpole-test" and data["window"] == "1h"
    assert [p["samples_total"] for p in data["points"]] == [100, 200, 300]
    assert data["points"][1]["samples_per_s"] == pytest.approx(10.0)
    assert data["figures"]["samples_total"] == 300
    assert len(client.get("/api/campaigns/cartpole-test/stats/").json()["points"]) == 4  # 24h by default

    bad = client.get("/api/campaigns/cartpole-test/stats/?window=forever")
    assert bad.status_code == 400
    assert "unknown window 'forever'" in bad.json()["error"] and "24h" in bad.json()["error"]
    assert client.get("/api/campaigns/secret-draft/stats/").status_code == 404


def _ws(asgi_server, slug: str):
    # With the page's Origin, as a browser sends it (test_browser_socket.py: others are refused).
    url = f"{asgi_server.url.replace('http', 'ws', 1)}/ws/campaigns/{slug}/"
    return connect(url, origin=asgi_server.url, open_timeout=10)


@pytest.mark.django_db(transaction=True)
def test_browsers_get_pushed_figures_and_points_over_the_websocket(asgi_server, cartpole_campaign):
    with _ws(asgi_server, cartpole_campaign.slug) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello" and hello["figures"]["status"] == "running"

        Campaign.objects.filter(pk=cartpole_campaign.pk).update(samples_total=4242, model_version=7)
        assert services.stats_tick() == 1
        update = json.loads(ws.recv(timeout=10))
        assert update["type"] == "update"
        assert update["figures"]["samples_total"] == 4242 and update["figures"]["model_version"] == 7
        assert update["point"]["samples_total"] == 4242


@pytest.mark.django_db(transaction=True)
def test_the_websocket_refuses_unknown_and_draft_campaigns(asgi_server, draft_campaign):
    for slug in ("secret-draft", "no-such-campaign"):
        with pytest.raises(InvalidStatus) as refused:  # closed before accept: the handshake is refused
            _ws(asgi_server, slug)
        assert refused.value.response.status_code == 403, slug
