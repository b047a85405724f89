"""Campaigns: the read side (pages, JSON API, profile figures). Writes live in services.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from django.db.models import Case, Count, IntegerField, Q, QuerySet, Sum, Value, When
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from portal.campaigns.models import Campaign, ModelVersion
from portal.community.selectors import listed
from portal.leaderboards.selectors import user_wins_by_campaign
from portal.machines.models import MachineToken

# A volunteer counts as active on the home page when one of their machines was seen this recently.
VOLUNTEER_ACTIVE_WINDOW = timedelta(hours=24)


def campaign_list_public() -> QuerySet[Campaign]:
    """Every campaign but drafts: running first, then paused, then stopped; newest first within each."""
    order = {Campaign.Status.RUNNING: 0, Campaign.Status.PAUSED: 1, Campaign.Status.STOPPED: 2}
    rank = Case(
        *(When(status=s, then=Value(r)) for s, r in order.items()),
        default=Value(9),
        output_field=IntegerField(),
    )
    return listed(Campaign.objects.public()).annotate(status_rank=rank).order_by("status_rank", "-created")


def campaign_list_running() -> QuerySet[Campaign]:
    """Running campaigns that are listed (not unlisted), newest launch first."""
    return listed(Campaign.objects.running()).order_by("-launched_at", "-created")


def campaign_get_public(*, slug: str, include_drafts: bool = False) -> Campaign | None:
    """The campaign with this slug, or None if there is none or it is a draft (unless ``include_drafts``)."""
    queryset = Campaign.objects.all() if include_drafts else Campaign.objects.public()
    return queryset.filter(slug=slug).first()


def campaign_status_get(*, campaign_id: int) -> str:
    """A campaign's status as the database has it now (the relay checks it at every hello)."""
    return Campaign.objects.values_list("status", flat=True).get(pk=campaign_id)


def checkpoint_list(*, campaign: Campaign, limit: int | None = None) -> QuerySet[ModelVersion]:
    """The campaign's checkpoints (model versions kept for good), newest first."""
    queryset = campaign.model_versions.filter(is_checkpoint=True).order_by("-version")
    return queryset[:limit] if limit is not None else queryset


def model_version_get_public(*, slug: str, version: int) -> ModelVersion | None:
    """A published model version of a non-draft campaign whose weights file is still stored."""
    model = (
        ModelVersion.objects.select_related("campaign")
        .filter(campaign__slug=slug, version=version)
        .exclude(campaign__status=Campaign.Status.DRAFT)
        .first()
    )
    if model is None or not model.weights or not model.weights.storage.exists(model.weights.name):
        return None  # unknown, or pruned by portal.campaigns.tasks.prune_models
    return model


@dataclass(frozen=True)
class CommunityTotals:
    samples: int
    episodes: int
    campaigns_running: int  # running and listed: the ones the home page can show
    machines_connected: int  # clients connected now, summed over running campaigns (from Redis)
    volunteers_active: int  # people (not machines) with a machine seen within VOLUNTEER_ACTIVE_WINDOW
    machines_active: int  # their machines seen within the same window


def community_totals() -> CommunityTotals:
    """Figures of the whole community, for the home page."""
    sums = Campaign.objects.public().aggregate(
        samples=Sum("samples_total"),
        episodes=Sum("episodes_total"),
        clients=Sum("clients_active", filter=Q(status=Campaign.Status.RUNNING)),
    )
    since = timezone.now() - VOLUNTEER_ACTIVE_WINDOW
    seen = MachineToken.objects.active().filter(last_seen__gte=since)
    return CommunityTotals(
        samples=sums["samples"] or 0,
        episodes=sums["episodes"] or 0,
        campaigns_running=campaign_list_running().count(),
        machines_connected=sums["clients"] or 0,
        volunteers_active=seen.values("user_id").distinct().count(),
        machines_active=seen.count(),
    )


# How far back a win rate's trend looks, and the youngest figure it compares with when the campaign
# is younger than that (a trend over a few minutes is noise).
TREND_SPAN = timedelta(days=1)
TREND_MIN_SPAN = timedelta(hours=1)


@dataclass(frozen=True)
class FightSummary:
    """The figures a boss fight's volunteers come for, with the same window everywhere they appear.

    ``win_rate`` is the share of the last 100 fights won (the campaign's win_rate_recent, which the live
    chart also plots); ``then_rate`` the same figure at ``then_at`` (about a day ago, else the oldest
    figure older than an hour), None when there is none.
    """

    win_rate: float | None
    boss_hp_left: float | None
    stalled_rate: float | None
    wins_total: int
    fights_total: int
    first_win_at: datetime | None
    then_rate: float | None = None
    then_at: datetime | None = None

    @property
    def trend(self) -> str:
        """'up', 'down' or 'flat' against then_rate ('' without one); a point either way is flat."""
        if self.win_rate is None or self.then_rate is None:
            return ""
        delta = self.win_rate - self.then_rate
        return "up" if delta >= 0.01 else "down" if delta <= -0.01 else "flat"


def fight_summary(*, campaign: Campaign, now: datetime | None = None) -> FightSummary:
    """A boss-fight campaign's headline: win rate of the last 100 fights and its trend, boss HP left."""
    from portal.livestats.models import CampaignSnapshot

    now = now or timezone.now()
    with_rate = CampaignSnapshot.objects.filter(campaign=campaign, win_rate__isnull=False)
    then = with_rate.filter(at__lte=now - TREND_SPAN).order_by("-at").first()
    if then is None:
        then = with_rate.filter(at__lte=now - TREND_MIN_SPAN).order_by("at").first()
    return FightSummary(
        win_rate=campaign.win_rate_recent,
        boss_hp_left=campaign.boss_hp_left_recent,
        stalled_rate=campaign.stalled_rate_recent,
        wins_total=campaign.wins_total,
        fights_total=campaign.episodes_total,
        first_win_at=campaign.first_win_at,
        then_rate=then.win_rate if then is not None else None,
        then_at=then.at if then is not None else None,
    )


def user_machine_tokens(*, user) -> QuerySet[MachineToken]:
    """A volunteer's machine tokens (revoked ones too), newest first."""
    return MachineToken.objects.filter(user=user).select_related("campaign").order_by("-created")


@dataclass(frozen=True)
class Contribution:
    campaign: Campaign
    samples: int
    episodes: int
    machines: int
    wins: int = 0  # boss fights won, as rolled up into the leaderboards


def user_contributions(*, user) -> list[Contribution]:
    """What a volunteer's machines gave each campaign they joined, largest first."""
    rows = (
        MachineToken.objects.filter(user=user)
        .values("campaign_id")
        .annotate(samples=Sum("samples"), episodes=Sum("episodes"), machines=Count("id"))
    )
    campaigns = Campaign.objects.in_bulk([row["campaign_id"] for row in rows])
    wins = user_wins_by_campaign(user=user)
    contributions = [
        Contribution(
            campaign=campaigns[row["campaign_id"]],
            samples=row["samples"] or 0,
            episodes=row["episodes"] or 0,
            machines=row["machines"],
            wins=wins.get(row["campaign_id"], 0),
        )
        for row in rows
    ]
    return sorted(contributions, key=lambda c: (-c.samples, c.campaign.name))


# ---- JSON shapes (docs/api.md) -------------------------------------------------------------------


class FiguresDict(TypedDict):
    """A campaign's headline figures: in its JSON (CampaignDict) and on its live page (livestats)."""

    status: str
    model_version: int
    samples_total: int
    episodes_total: int
    updates_total: int
    clients_active: int
    mean_return_recent: float | None
    win_rate_recent: float | None
    boss_hp_left_recent: float | None
    player_hp_left_recent: float | None
    stalled_rate_recent: float | None
    wins_total: int
    eval_version: int | None
    eval_return: float | None
    eval_win_rate: float | None
    eval_boss_hp_left: float | None
    eval_player_hp_left: float | None


class CampaignDict(FiguresDict):
    slug: str
    name: str
    description: str
    env_id: str
    algorithm: str
    model_url: str | None
    url: str
    api_url: str
    checkpoints_url: str
    created: str
    launched_at: str | None
    stopped_at: str | None
    first_win_at: str | None  # boss fights: when the first win was counted
    pause_reason: str  # why staff paused it ("" when running, or when they gave none)
    agent_version: int | None  # the roll-out gate's best checkpoint while it holds the newest back
    win_rate_then: float | None  # boss fights: win_rate_recent about a day ago (FightSummary.then_rate)
    win_rate_then_at: str | None  # when win_rate_then was the figure
    win_rate_trend: str  # "up", "down", "flat" against win_rate_then; "" without one
    boss_strength: float | None  # boss fights: the share of his damage the boss deals (1.0: full strength)


class CheckpointDict(TypedDict):
    version: int
    sha256: str
    url: str
    size_bytes: int
    created: str
    samples_total: int
    updates_total: int
    mean_return_recent: float | None
    eval_return: float | None
    eval_episodes: int
    eval_win_rate: float | None
    eval_boss_hp_left: float | None
    eval_player_hp_left: float | None
    held_back: str  # why the roll-out gate held it back ("": rolled out, or not judged)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def campaign_figures(campaign: Campaign) -> FiguresDict:
    """The campaign's headline figures, as its row holds them (sync_stats rolls them up from Redis)."""
    return FiguresDict(**{name: getattr(campaign, name) for name in FiguresDict.__annotations__})


def campaign_api_dict(campaign: Campaign, request: HttpRequest) -> CampaignDict:
    """A campaign as the JSON API shows it; URLs are absolute."""
    # The trend the portal's cards show; only boss fights have one (their snapshots are read, 2 queries).
    fight = fight_summary(campaign=campaign) if campaign.win_rate_recent is not None else None
    model_url = None
    if campaign.model_version:
        model_url = request.build_absolute_uri(
            reverse("campaigns:model", kwargs={"slug": campaign.slug, "version": campaign.model_version})
        )
    return CampaignDict(
        slug=campaign.slug,
        name=campaign.name,
        description=campaign.description,
        env_id=campaign.env_id,
        algorithm=campaign.algorithm,
        model_url=model_url,
        **campaign_figures(campaign),
        url=request.build_absolute_uri(campaign.get_absolute_url()),
        api_url=request.build_absolute_uri(reverse("api:campaign", kwargs={"slug": campaign.slug})),
        checkpoints_url=request.build_absolute_uri(
            reverse("api:checkpoints", kwargs={"slug": campaign.slug})
        ),
        created=campaign.created.isoformat(),
        launched_at=_iso(campaign.launched_at),
        stopped_at=_iso(campaign.stopped_at),
        first_win_at=_iso(campaign.first_win_at),
        pause_reason=campaign.pause_reason if campaign.status == Campaign.Status.PAUSED else "",
        win_rate_then=fight.then_rate if fight is not None else None,
        win_rate_then_at=_iso(fight.then_at) if fight is not None else None,
        win_rate_trend=fight.trend if fight is not None else "",
        agent_version=campaign.agent_version,
        boss_strength=boss_strength(campaign),
    )


def boss_strength(campaign: Campaign) -> float | None:
    """The share of his attacks' damage a boss fight's boss deals: 1.0 in the real game and in the
    arena by default (full strength), its ``boss_damage`` setting otherwise; None outside boss fights."""
    from client_app import iudex
    from client_app.arena.rules import BOSS_DAMAGE
    from client_app.envs import is_iudex

    if not is_iudex(campaign.env_id):
        return None
    if campaign.env_id != iudex.ARENA_ID:
        return 1.0
    return float((campaign.env_kwargs or {}).get("boss_damage", BOSS_DAMAGE))


def checkpoint_api_dict(model: ModelVersion, request: HttpRequest) -> CheckpointDict:
    """A checkpoint as the JSON API shows it; ``url`` is the absolute weights URL."""
    return CheckpointDict(
        version=model.version,
        sha256=model.sha256,
        url=request.build_absolute_uri(model.get_absolute_url()),
        size_bytes=model.size_bytes,
        created=model.created.isoformat(),
        samples_total=model.samples_total,
        updates_total=model.updates_total,
        mean_return_recent=model.mean_return_recent,
        eval_return=model.eval_return,
        eval_episodes=model.eval_episodes,
        eval_win_rate=model.eval_win_rate,
        eval_boss_hp_left=model.eval_boss_hp_left,
        eval_player_hp_left=model.eval_player_hp_left,
        held_back=model.held_back,
    )
