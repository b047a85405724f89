"""Live stats, the read side: time series for the API and the charts, figures for the live page."""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from django.utils import timezone

from portal.campaigns.models import Campaign
from portal.campaigns.selectors import FiguresDict, campaign_figures
from portal.core.strictjson import finite
from portal.livestats.models import CampaignSnapshot

# ?window= of the stats API and the page's charts.
WINDOWS: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
DEFAULT_WINDOW = "24h"
MAX_POINTS = 1500  # longer series are evenly subsampled (the newest point is always kept)


class PointDict(TypedDict):
    t: float  # unix seconds
    samples_total: int
    episodes_total: int
    updates_total: int
    wins_total: int
    clients_active: int
    model_version: int
    mean_return: float | None
    win_rate: float | None
    boss_hp_left: float | None
    eval_return: float | None
    samples_per_s: float | None
    updates_per_s: float | None


def _round(value: float | None, digits: int = 4) -> float | None:
    """Rounded for the wire; a non-finite figure (a row a past roll-up wrote) is no figure: None."""
    value = finite(value)
    return None if value is None else round(value, digits)


def snapshot_dict(snapshot: CampaignSnapshot) -> PointDict:
    return PointDict(
        t=round(snapshot.at.timestamp(), 3),
        samples_total=snapshot.samples_total,
        episodes_total=snapshot.episodes_total,
        updates_total=snapshot.updates_total,
        wins_total=snapshot.wins_total,
        clients_active=snapshot.clients_active,
        model_version=snapshot.model_version,
        mean_return=_round(snapshot.mean_return),
        win_rate=_round(snapshot.win_rate),
        boss_hp_left=_round(snapshot.boss_hp_left),
        eval_return=_round(snapshot.eval_return),
        samples_per_s=_round(snapshot.samples_per_s, 2),
        updates_per_s=_round(snapshot.updates_per_s, 2),
    )


def stats_series(*, campaign: Campaign, window: str = DEFAULT_WINDOW) -> list[PointDict]:
    """The campaign's snapshots within ``window`` (a key of WINDOWS), oldest first, at most MAX_POINTS."""
    span = WINDOWS[window]
    rows = CampaignSnapshot.objects.filter(campaign=campaign)
    if span is not None:
        rows = rows.filter(at__gte=timezone.now() - span)
    snapshots = list(rows.order_by("at"))
    if len(snapshots) > MAX_POINTS:
        step = len(snapshots) / MAX_POINTS
        picked = [snapshots[int(i * step)] for i in range(MAX_POINTS - 1)]
        snapshots = [*picked, snapshots[-1]]
    return [snapshot_dict(s) for s in snapshots]


def live_figures(*, campaign: Campaign) -> FiguresDict:
    """The headline figures of a campaign page, as the live view pushes them (numbers to 4 decimals)."""
    figures = campaign_figures(campaign)
    return FiguresDict(**{k: _round(v) if isinstance(v, float) else v for k, v in figures.items()})
