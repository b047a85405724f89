"""Volunteers and teams, the read side: credit tables, a volunteer's and a team's page, team boards,
the public credit export.

The credit table (every volunteer's total and recent credit, ranks) is computed from the hourly
contribution buckets and cached in Redis for a minute, like the leaderboards.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TypedDict

import redis
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from portal.campaigns.models import Campaign
from portal.core import strictjson
from portal.core.redis import get_redis
from portal.leaderboards.models import Contribution
from portal.leaderboards.selectors import BOARD_SIZE, PERIODS
from portal.machines.models import MachineToken
from portal.volunteers import credit
from portal.volunteers.models import HIDDEN_NAME, Profile, Team

log = logging.getLogger(__name__)
CREDIT_TABLE_KEY = "soulsai:credit-table"
CREDIT_TABLE_TTL = 60


def campaign_weights() -> dict[int, float]:
    """Credit per accepted step, per campaign id (portal.volunteers.credit)."""
    return {
        pk: credit.seconds_per_step(env_id, kwargs)
        for pk, env_id, kwargs in Campaign.objects.values_list("pk", "env_id", "env_kwargs")
    }


def profile_of(user) -> Profile | None:
    return Profile.objects.filter(user=user).select_related("team").first()


def public_names(user_ids) -> dict[int, str | None]:
    """User id -> the name boards show, None where the name is hidden (the volunteer's or staff's choice)."""
    User = get_user_model()
    hidden = set(
        Profile.objects.filter(Q(hidden=True) | Q(name_hidden=True), user_id__in=user_ids).values_list(
            "user_id", flat=True
        )
    )
    names = dict(User.objects.filter(pk__in=user_ids).values_list("pk", "username"))
    return {pk: (None if pk in hidden else names.get(pk)) for pk in user_ids}


def board_name(name: str | None) -> str:
    return HIDDEN_NAME if name is None else name


# ---- the credit table ----------------------------------------------------------------------------


class CreditRow(TypedDict):
    total: float
    recent: float
    rank: int  # by total credit, 1 = most
    recent_rank: int | None  # by recent credit; None without any


class CreditTable(TypedDict):
    computed_at: str
    population: int  # volunteers with recent credit (the top-share badges' denominator)
    users: dict[str, CreditRow]  # user id (a JSON key) -> row


def credit_table_compute(*, now: datetime | None = None) -> CreditTable:
    now = now or timezone.now()
    weights = campaign_weights()
    rows = Contribution.objects.filter(user__isnull=False).exclude(campaign__status=Campaign.Status.DRAFT)
    totals: dict[int, float] = defaultdict(float)
    for row in rows.values("user_id", "campaign_id").annotate(samples=Sum("samples")):
        totals[row["user_id"]] += (row["samples"] or 0) * weights.get(row["campaign_id"], 0.0)
    buckets: dict[int, list[credit.Bucket]] = defaultdict(list)
    recent_rows = rows.filter(hour__gte=now - credit.RECENT_HORIZON).values_list(
        "user_id", "campaign_id", "hour", "samples"
    )
    for user_id, campaign_id, hour, samples in recent_rows:
        buckets[user_id].append(credit.Bucket(hour, samples * weights.get(campaign_id, 0.0)))
    recent = {user_id: credit.recent_credit(b, now=now) for user_id, b in buckets.items()}
    by_total = sorted((u for u in totals if totals[u] > 0), key=lambda u: (-totals[u], u))
    by_recent = sorted((u for u in recent if recent[u] > 0), key=lambda u: (-recent[u], u))
    recent_rank = {u: i for i, u in enumerate(by_recent, start=1)}
    users = {
        str(u): CreditRow(total=totals[u], recent=recent.get(u, 0.0), rank=i, recent_rank=recent_rank.get(u))
        for i, u in enumerate(by_total, start=1)
    }
    return CreditTable(computed_at=now.isoformat(), population=len(by_recent), users=users)


def credit_table_get() -> CreditTable:
    try:
        cached = get_redis().get(CREDIT_TABLE_KEY)
    except redis.RedisError:
        return credit_table_compute()
    if cached is not None:
        return json.loads(cached)
    table = credit_table_compute()
    try:
        get_redis().set(CREDIT_TABLE_KEY, strictjson.dumps(table), ex=CREDIT_TABLE_TTL)
    except redis.RedisError:
        pass
    return table


def badges(*, row: CreditRow | None, population: int) -> list[str]:
    if row is None:
        return []
    names = credit.milestone_badges(row["total"])
    top = credit.top_share_badge(row["recent_rank"] or 0, population)
    return [top, *names] if top else names


# ---- a volunteer's page --------------------------------------------------------------------------


class CampaignCredit(TypedDict):
    slug: str
    name: str
    env_id: str
    steps: int
    episodes: int
    wins: int
    credit: float


class VolunteerDict(TypedDict):
    username: str
    joined: str
    team: dict | None
    machines: int
    credit: float
    recent_credit: float
    rank: int | None
    badges: list[str]
    campaigns: list[CampaignCredit]


def volunteer_get_public(*, username: str):
    """The user behind a public volunteer page, or None (no such user, inactive, or hidden)."""
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        return None
    profile = profile_of(user)
    if profile is not None and not profile.is_public:
        return None
    return user


def volunteer_summary(*, user) -> VolunteerDict:
    weights = campaign_weights()
    rows = (
        Contribution.objects.filter(user=user)
        .exclude(campaign__status=Campaign.Status.DRAFT)
        .values("campaign_id", "campaign__slug", "campaign__name", "campaign__env_id")
        .annotate(steps=Sum("samples"), episodes=Sum("episodes"), wins=Sum("wins"))
    )
    campaigns = [
        CampaignCredit(
            slug=row["campaign__slug"],
            name=row["campaign__name"],
            env_id=row["campaign__env_id"],
            steps=row["steps"] or 0,
            episodes=row["episodes"] or 0,
            wins=row["wins"] or 0,
            credit=round((row["steps"] or 0) * weights.get(row["campaign_id"], 0.0), 2),
        )
        for row in rows
    ]
    campaigns.sort(key=lambda c: (-c["credit"], c["name"]))
    table = credit_table_get()
    row = table["users"].get(str(user.pk))
    profile = profile_of(user)
    team = profile.team if profile is not None else None
    return VolunteerDict(
        username=user.username,
        joined=user.date_joined.date().isoformat(),
        team=None if team is None or team.name_hidden else {"name": team.name, "slug": team.slug},
        machines=MachineToken.objects.filter(user=user).count(),
        credit=round(row["total"], 2) if row else 0.0,
        recent_credit=round(row["recent"], 2) if row else 0.0,
        rank=row["rank"] if row else None,
        badges=badges(row=row, population=table["population"]),
        campaigns=campaigns,
    )


# ---- teams ---------------------------------------------------------------------------------------


class TeamEntry(TypedDict):
    rank: int
    name: str
    slug: str | None  # None for a hidden team (no page)
    members: int
    steps: int
    credit: float


def team_board(*, period: str, now: datetime | None = None) -> list[TeamEntry]:
    """Teams by the credit their members gave while in them, over ``period`` (leaderboards.PERIODS)."""
    now = now or timezone.now()
    weights = campaign_weights()
    rows = Contribution.objects.filter(team__isnull=False).exclude(campaign__status=Campaign.Status.DRAFT)
    span = PERIODS[period]
    if span is not None:
        rows = rows.filter(hour__gte=(now - span).replace(minute=0, second=0, microsecond=0))
    steps: dict[int, int] = defaultdict(int)
    credits: dict[int, float] = defaultdict(float)
    for row in rows.values("team_id", "campaign_id").annotate(samples=Sum("samples")):
        steps[row["team_id"]] += row["samples"] or 0
        credits[row["team_id"]] += (row["samples"] or 0) * weights.get(row["campaign_id"], 0.0)
    teams = Team.objects.annotate(n=Count("members")).in_bulk(list(credits))
    ordered = sorted((t for t in credits if credits[t] > 0), key=lambda t: (-credits[t], teams[t].name))
    return [
        TeamEntry(
            rank=i,
            name=teams[t].public_name,
            slug=None if teams[t].name_hidden else teams[t].slug,
            members=teams[t].n,
            steps=steps[t],
            credit=round(credits[t], 2),
        )
        for i, t in enumerate(ordered[:BOARD_SIZE], start=1)
    ]


def team_list() -> QuerySet[Team]:
    return Team.objects.filter(name_hidden=False).annotate(n=Count("members")).order_by("name")


def team_get_public(*, slug: str) -> Team | None:
    return Team.objects.filter(slug=slug, name_hidden=False).first()


class TeamDict(TypedDict):
    name: str
    slug: str
    description: str
    created: str
    credit: float
    steps: int
    members: list[dict]


def team_summary(*, team: Team) -> TeamDict:
    weights = campaign_weights()
    rows = (
        Contribution.objects.filter(team=team)
        .exclude(campaign__status=Campaign.Status.DRAFT)
        .values("user_id", "campaign_id")
        .annotate(samples=Sum("samples"))
    )
    per_user: dict[int | None, float] = defaultdict(float)
    steps = 0
    for row in rows:
        steps += row["samples"] or 0
        per_user[row["user_id"]] += (row["samples"] or 0) * weights.get(row["campaign_id"], 0.0)
    member_ids = list(Profile.objects.filter(team=team).values_list("user_id", flat=True))
    names = public_names(member_ids)
    members = [
        {
            "name": board_name(names[u]),
            "public": names[u] is not None,
            "credit": round(per_user.get(u, 0.0), 2),
        }
        for u in member_ids
    ]
    members.sort(key=lambda m: (-m["credit"], m["name"]))
    return TeamDict(
        name=team.name,
        slug=team.slug,
        description=team.description,
        created=team.created.date().isoformat(),
        credit=round(sum(per_user.values()), 2),
        steps=steps,
        members=members,
    )


# ---- the public export ---------------------------------------------------------------------------


def credit_export() -> dict:
    """Every public volunteer's and team's credit (docs/api.md "Credit export")."""
    table = credit_table_get()
    ids = [int(u) for u in table["users"]]
    names = public_names(ids)
    volunteers = [
        {
            "name": names[int(u)],
            "credit": round(row["total"], 2),
            "recent_credit": round(row["recent"], 2),
            "rank": row["rank"],
            "badges": badges(row=row, population=table["population"]),
        }
        for u, row in table["users"].items()
        if names.get(int(u)) is not None
    ]
    volunteers.sort(key=lambda v: v["rank"])
    return {
        "computed_at": table["computed_at"],
        "credit_unit": "one second of a volunteer machine's time (see /leaderboard/#credit)",
        "recent_half_life_days": credit.HALF_LIFE / timedelta(days=1),
        "volunteers": volunteers,
        "teams": team_board(period="all"),
        "deleted_volunteers_credit": round(_deleted_credit(), 2),
    }


def _deleted_credit() -> float:
    weights = campaign_weights()
    rows = (
        Contribution.objects.filter(user__isnull=True).values("campaign_id").annotate(samples=Sum("samples"))
    )
    return sum((r["samples"] or 0) * weights.get(r["campaign_id"], 0.0) for r in rows)
