"""Leaderboards, the read side: cached boards for pages and the API, a volunteer's own figures.

A board is computed from hourly Contribution buckets by beat and kept in Redis; a request reads that
one key. Only a cache miss (a board beat has not made yet) computes it here, from the buckets.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import TypedDict

import redis
from django.db.models import Sum
from django.utils import timezone

from portal.campaigns.models import Campaign
from portal.core import strictjson
from portal.core.redis import get_redis
from portal.leaderboards.models import Contribution

# ?period= of the leaderboard pages and API; windows are whole hours (the buckets' resolution).
PERIODS: dict[str, timedelta | None] = {"all": None, "7d": timedelta(days=7), "24h": timedelta(hours=24)}
PERIOD_LABELS = {"all": "All time", "7d": "Last 7 days", "24h": "Last 24 hours"}
BOARD_SIZE = 100

log = logging.getLogger(__name__)


class EntryDict(TypedDict):
    rank: int
    username: str  # "hidden volunteer" where the volunteer (or staff) hid the name
    public: bool  # whether /volunteers/<username>/ shows a page
    samples: int
    episodes: int
    wins: int
    campaigns: int
    credit: float  # accepted steps weighted by each campaign's seconds per step (portal.volunteers.credit)


class BoardDict(TypedDict):
    campaign: str | None  # slug; None for the global board
    period: str
    computed_at: str
    entries: list[EntryDict]


def board_cache_key(*, campaign: Campaign | None, period: str) -> str:
    scope = f"c{campaign.id}" if campaign is not None else "all"
    return f"soulsai:leaderboard:{scope}:{period}"


def board_compute(*, campaign: Campaign | None, period: str, now: datetime | None = None) -> BoardDict:
    """Sum the hourly buckets of ``period`` per volunteer, largest credit first.

    On one campaign's board credit is its steps times one weight, so the order is the steps' order;
    across campaigns credit makes an hour of the real game outweigh minutes of CartPole.
    """
    from portal.volunteers.selectors import board_name, campaign_weights, public_names

    now = now or timezone.now()
    rows = Contribution.objects.filter(user__isnull=False)  # deleted accounts: in totals, not on boards
    if campaign is not None:
        rows = rows.filter(campaign=campaign)
    else:
        rows = rows.exclude(campaign__status=Campaign.Status.DRAFT)
    span = PERIODS[period]
    if span is not None:
        rows = rows.filter(hour__gte=(now - span).replace(minute=0, second=0, microsecond=0))
    weights = campaign_weights()
    totals: dict[int, dict] = {}
    per_campaign = rows.values("user_id", "campaign_id").annotate(
        samples=Sum("samples"), episodes=Sum("episodes"), wins=Sum("wins")
    )
    for row in per_campaign:
        total = totals.setdefault(
            row["user_id"], {"samples": 0, "episodes": 0, "wins": 0, "campaigns": 0, "credit": 0.0}
        )
        for field in ("samples", "episodes", "wins"):
            total[field] += row[field] or 0
        total["campaigns"] += 1
        total["credit"] += (row["samples"] or 0) * weights.get(row["campaign_id"], 0.0)
    ordered = sorted(
        (u for u, t in totals.items() if t["samples"] > 0),
        key=lambda u: (-totals[u]["credit"], -totals[u]["samples"], u),
    )[:BOARD_SIZE]
    names = public_names(ordered)
    entries = [
        EntryDict(
            rank=i,
            username=board_name(names[u]),
            public=names[u] is not None,
            samples=totals[u]["samples"],
            episodes=totals[u]["episodes"],
            wins=totals[u]["wins"],
            campaigns=totals[u]["campaigns"],
            credit=round(totals[u]["credit"], 2),
        )
        for i, u in enumerate(ordered, start=1)
    ]
    return BoardDict(
        campaign=campaign.slug if campaign is not None else None,
        period=period,
        computed_at=now.isoformat(),
        entries=entries,
    )


def leaderboard_get(*, campaign: Campaign | None, period: str) -> BoardDict:
    """The cached board (beat keeps it fresh); computed from the hourly buckets only when missing.

    While Redis is unreachable the board is computed from the buckets: the figures as last rolled up
    (pages say so, see ``live_data_available``), not an error page.
    """
    key = board_cache_key(campaign=campaign, period=period)
    try:
        cached = get_redis().get(key)
    except redis.RedisError:
        log.warning("leaderboard: Redis unreachable; computing the board from the rolled-up buckets")
        return board_compute(campaign=campaign, period=period)
    if cached is not None:
        return json.loads(cached)
    board = board_compute(campaign=campaign, period=period)
    try:
        get_redis().set(key, strictjson.dumps(board), ex=60)
    except redis.RedisError:
        pass  # went away in between: the next request computes it again
    return board


def live_data_available() -> bool:
    """Whether Redis answers: where live figures come from. Pages show a note when it does not."""
    try:
        return bool(get_redis().ping())
    except redis.RedisError:
        return False


def user_wins_by_campaign(*, user) -> dict[int, int]:
    """Boss fights won by a volunteer's machines, per campaign id (as rolled up so far)."""
    rows = Contribution.objects.filter(user=user).values("campaign_id").annotate(wins=Sum("wins"))
    return {row["campaign_id"]: row["wins"] or 0 for row in rows}
