"""Live stats, the write side: take snapshots of campaigns, thin old ones, push figures to browsers.

Browsers on a campaign page join the Channels group ``campaign_group(id)``; every tick of beat's
``stats_tick`` sends each group one small ``stats.update`` event (docs/api.md, "Live stats").
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from portal.campaigns.models import Campaign
from portal.livestats.models import CampaignSnapshot
from portal.livestats.selectors import live_figures, snapshot_dict

log = logging.getLogger(__name__)

# Resolution kept as snapshots age: (older than, one snapshot per this many seconds).
THINNING = ((timedelta(days=1), 60), (timedelta(days=7), 600))


def campaign_group(campaign_id: int) -> str:
    """The Channels group of a campaign's live page."""
    return f"campaign-stats.{campaign_id}"


def is_boss_fight(campaign: Campaign) -> bool:
    """Win rates only mean something where there is a boss to beat: SoulsGym's fights and the arena."""
    from client_app.envs import is_iudex, is_soulsgym

    return is_soulsgym(campaign.env_id) or is_iudex(campaign.env_id)


def _rate(now_value: float, then_value: float, seconds: float) -> float | None:
    if seconds <= 0 or now_value < then_value:  # a counter that went back: Redis lost its data
        return None
    return (now_value - then_value) / seconds


def snapshot_take(*, campaign: Campaign, at: datetime | None = None) -> CampaignSnapshot:
    """Record the campaign's current figures (as sync_stats last rolled them up) with derived rates."""
    at = at or timezone.now()
    # sync_stats rolls wins up with the episodes they are a share of: both from the same moment.
    wins = campaign.wins_total
    previous = CampaignSnapshot.objects.filter(campaign=campaign, at__lt=at).order_by("-at").first()
    snapshot = CampaignSnapshot(
        campaign=campaign,
        at=at,
        samples_total=campaign.samples_total,
        episodes_total=campaign.episodes_total,
        updates_total=campaign.updates_total,
        wins_total=wins,
        clients_active=campaign.clients_active,
        model_version=campaign.model_version,
        mean_return=campaign.mean_return_recent,
        eval_return=campaign.eval_return,
    )
    if previous is not None:
        seconds = (at - previous.at).total_seconds()
        snapshot.samples_per_s = _rate(campaign.samples_total, previous.samples_total, seconds)
        snapshot.updates_per_s = _rate(campaign.updates_total, previous.updates_total, seconds)
    if is_boss_fight(campaign):
        # The same window as the headline figures (the last 100 fights): one "recent" everywhere.
        snapshot.boss_hp_left = campaign.boss_hp_left_recent  # progress a chart shows before the first wins
        snapshot.win_rate = campaign.win_rate_recent
    snapshot.save()
    return snapshot


def snapshots_thin(*, campaign: Campaign, now: datetime | None = None) -> int:
    """Keep one snapshot per minute after a day and one per ten minutes after a week; the number deleted."""
    now = now or timezone.now()
    deleted = 0
    for age, seconds in THINNING:
        rows = CampaignSnapshot.objects.filter(campaign=campaign, at__lt=now - age).values_list("id", "at")
        kept_buckets: set[int] = set()
        doomed: list[int] = []
        for pk, at in rows.order_by("at").iterator(chunk_size=2000):
            bucket = int(at.timestamp()) // seconds
            if bucket in kept_buckets:
                doomed.append(pk)
            else:
                kept_buckets.add(bucket)
        for start in range(0, len(doomed), 500):
            deleted += CampaignSnapshot.objects.filter(pk__in=doomed[start : start + 500]).delete()[0]
    return deleted


def live_push(*, campaign: Campaign, snapshot: CampaignSnapshot | None) -> None:
    """Tell the campaign's open pages its current figures, and the new chart point if there is one."""
    layer = get_channel_layer()
    if layer is None:
        return
    event = {
        "type": "stats.update",
        "figures": live_figures(campaign=campaign),
        "point": snapshot_dict(snapshot) if snapshot is not None else None,
    }
    try:
        async_to_sync(layer.group_send)(campaign_group(campaign.id), event)
    except Exception:  # browsers' live view is best-effort: never let it break the beat task
        log.exception("live stats push failed for campaign %s", campaign.pk)


def stats_tick(*, now: datetime | None = None) -> int:
    """One beat tick: snapshot each live campaign when its last snapshot is old enough, push figures.

    Returns the number of snapshots taken.
    """
    now = now or timezone.now()
    every = timedelta(seconds=settings.SOULSAI_SNAPSHOT_SECONDS)
    taken = 0
    live = Campaign.objects.filter(status__in=[Campaign.Status.RUNNING, Campaign.Status.PAUSED])
    for campaign in live:
        last = (
            CampaignSnapshot.objects.filter(campaign=campaign)
            .order_by("-at")
            .values_list("at", flat=True)
            .first()
        )
        snapshot = None
        # A little slack: beat's ticks jitter, and a tick that comes a hair early should still count.
        if last is None or now - last >= every - timedelta(milliseconds=500):
            snapshot = snapshot_take(campaign=campaign, at=now)
            taken += 1
        live_push(campaign=campaign, snapshot=snapshot)
    return taken
