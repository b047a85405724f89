"""Boss fights lead with the fight: the win rate of the last 100 fights, its trend, boss HP left, first win."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.campaigns.models import Campaign
from portal.campaigns.selectors import community_totals, fight_summary
from portal.campaigns.services import campaign_create, campaign_launch
from portal.campaigns.tasks import outcomes_rollup, stats_sync_campaign
from portal.community.models import CampaignListing
from portal.livestats.models import CampaignSnapshot
from portal.machines.models import MachineToken
from portal.machines.services import token_create

pytestmark = pytest.mark.django_db


def _arena(slug: str = "arena", **figures) -> Campaign:
    campaign = campaign_launch(
        campaign=campaign_create(slug=slug, name="Arena", env_id="soulsai/IudexArena-v0")
    )
    Campaign.objects.filter(pk=campaign.pk).update(**figures)
    campaign.refresh_from_db()
    return campaign


def test_stalled_fights_are_counted_apart_from_lost_ones():
    # won; lost after a real fight; two stalled (neither side lost HP); one without HP figures.
    entries = [b"1 0.0000 0.5000", b"0 0.4000 0.0000", b"0 1.0000 1.0000", b"0 1.0000 1.0000", b"0"]
    figures = outcomes_rollup(entries)
    assert figures["win_rate_recent"] == pytest.approx(0.2)
    assert figures["stalled_rate_recent"] == pytest.approx(0.5)  # of the four with HP figures


def test_the_first_win_is_dated_once(redis_client):
    from trainer.keys import CampaignKeys

    arena = _arena()
    stats_sync_campaign(campaign=arena)
    assert arena.first_win_at is None
    redis_client.hset(CampaignKeys(arena.id).stats, mapping={"episodes": 3, "wins": 1})
    stats_sync_campaign(campaign=arena)
    first = Campaign.objects.get(pk=arena.pk).first_win_at
    assert first is not None
    redis_client.hset(CampaignKeys(arena.id).stats, mapping={"episodes": 9, "wins": 4})
    stats_sync_campaign(campaign=arena)
    assert Campaign.objects.get(pk=arena.pk).first_win_at == first


def test_the_win_rate_trend_compares_with_a_day_ago(client):
    arena = _arena(win_rate_recent=0.74, boss_hp_left_recent=0.18, episodes_total=5000, wins_total=2100,
                   first_win_at=timezone.now() - timedelta(days=2))  # fmt: skip
    now = timezone.now()
    for hours, rate in ((30, 0.05), (25, 0.12), (2, 0.6)):
        CampaignSnapshot.objects.create(campaign=arena, at=now - timedelta(hours=hours), win_rate=rate)
    summary = fight_summary(campaign=arena)
    assert (summary.then_rate, summary.trend) == (0.12, "up")
    api = client.get(f"/api/campaigns/{arena.slug}/").json()  # the client's window shows the same trend
    assert (api["win_rate_then"], api["win_rate_trend"]) == (0.12, "up")
    assert api["win_rate_then_at"] == summary.then_at.isoformat()
    html = client.get("/").content.decode()
    assert "74%" in html and "of the last 100 fights won" in html and "up from 12% 1" in html
    assert "Boss HP left" in html and "18%" in html and "First win" in html
    assert "mean return" not in html.lower()  # the return is for the details, not the card
    page = client.get(arena.get_absolute_url()).content.decode()
    assert page.index("of the last 100 fights won") < page.index('id="live-stats"')
    assert page.index('id="chart-winrate"') < page.index('id="chart-return"')  # the first chart
    assert page.index('id="details"') < page.index("Learner updates")  # the learner's terms: in details


def test_a_young_campaign_has_no_trend_and_says_it_is_not_beaten_yet(client):
    arena = _arena(win_rate_recent=0.0, episodes_total=40, stalled_rate_recent=0.25)
    CampaignSnapshot.objects.create(campaign=arena, at=timezone.now() - timedelta(minutes=10), win_rate=0.0)
    assert fight_summary(campaign=arena).trend == ""  # ten minutes is no trend
    api = client.get(f"/api/campaigns/{arena.slug}/").json()
    assert (api["win_rate_then"], api["win_rate_then_at"], api["win_rate_trend"]) == (None, None, "")
    html = client.get(arena.get_absolute_url()).content.decode()
    assert "Not beaten yet in 40 fights" in html
    assert "25% of those fights stalled: neither side lost any HP" in html


def test_counts_are_honest_listed_campaigns_and_people_apart_from_machines(alice):
    shown, hidden = _arena("shown"), _arena("hidden")
    CampaignListing.objects.create(campaign=hidden, visibility=CampaignListing.Visibility.UNLISTED)
    for name in ("desktop", "laptop"):
        token, _ = token_create(user=alice, campaign=shown, name=name)
        MachineToken.objects.filter(pk=token.pk).update(last_seen=timezone.now())
    totals = community_totals()
    assert totals.campaigns_running == 1  # the unlisted one is not on the page
    assert (totals.volunteers_active, totals.machines_active) == (1, 2)


def test_every_campaign_page_says_what_it_needs(client):
    game = campaign_launch(campaign=campaign_create(slug="iudex", name="Iudex", env_id="SoulsGymIudex-v0"))
    arena = _arena()
    pole = campaign_launch(campaign=campaign_create(slug="pole", name="Pole", env_id="CartPole-v1"))
    page = client.get(game.get_absolute_url()).content.decode()
    assert "What you need, what it uses" in page
    assert "Windows" in page and "1.15.2" in page and "offline mode" in page and "risks a ban" in page
    assert "game window and your keyboard" in page and "CPU" in page
    for other in (arena, pole):
        page = client.get(other.get_absolute_url()).content.decode()
        assert "Any PC" in page and "no game" in page and "1.15.2" not in page
    home = client.get("/").content.decode()
    assert "What you need, what it uses" in home and "1.15.2" in home and "Any PC" in home
