"""Beat tasks of the campaigns app: roll live figures up from Redis, prune superseded model files."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from datetime import UTC, datetime

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from portal.campaigns.models import Campaign, ModelVersion
from portal.campaigns.services import checkpoint_gate
from portal.core.redis import get_redis
from portal.core.strictjson import finite
from portal.machines.services import MachineFigures, machines_figures_sync, machines_flag_outliers
from trainer.evaluation import evaluation_summary
from trainer.keys import CampaignKeys

log = logging.getLogger(__name__)

ACTIVE_SECONDS = 30  # a client that sent nothing for this long no longer counts as active
# A lost fight that ended with both sides at (nearly) full HP stalled: nobody landed a hit.
STALLED_HP = 0.999


def _int_map(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in raw.items()}


def _finite_floats(raw: list[bytes]) -> list[float]:
    """The finite numbers among ``raw``; anything else (inf, nan, junk a past bug left) is skipped."""
    values = []
    for item in raw:
        try:
            value = float(item)
        except ValueError:
            continue
        if math.isfinite(value):
            values.append(value)
    return values


def _mean(values: list[float]) -> float | None:
    """The mean of finite values, never inf: each term is divided first (two 1e308 sum to inf, not
    their halves); a result that still rounds past the largest float is no figure at all (None)."""
    if not values:
        return None
    n = len(values)
    try:
        return finite(math.fsum(v / n for v in values))
    except OverflowError:  # the exact mean lies within a hair of the largest float
        return None


def outcomes_rollup(entries: list[bytes]) -> dict[str, float | None]:
    """The recent-fight figures of a campaign's outcomes list (CampaignKeys.outcomes).

    The win rate counts every fight; the HP means count those whose entry carries HP left: entries
    "1"/"0" without it come from clients that sent none, or from relays older than the HP figures.
    """
    wins: list[float] = []
    boss_hp: list[float] = []
    player_hp: list[float] = []
    stalled: list[float] = []  # over the fights with HP figures: 1.0 where neither side lost any
    for entry in entries:
        win, *hp = _finite_floats(entry.split()) or [None]
        if win is None:
            continue  # not a number: no fight to count
        wins.append(win)
        if len(hp) == 2:
            boss_hp.append(hp[0])
            player_hp.append(hp[1])
            stalled.append(float(not win and hp[0] >= STALLED_HP and hp[1] >= STALLED_HP))
    return {
        "win_rate_recent": _mean(wins),
        "boss_hp_left_recent": _mean(boss_hp),
        "player_hp_left_recent": _mean(player_hp),
        "stalled_rate_recent": _mean(stalled),
    }


def stats_sync_campaign(*, campaign: Campaign) -> Campaign:
    """Copy one campaign's live counters from Redis into its row and its machines' rows."""
    keys = CampaignKeys(campaign.id)
    now = time.time()
    pipe = get_redis().pipeline(transaction=False)
    pipe.hgetall(keys.stats)
    pipe.lrange(keys.returns, 0, -1)
    pipe.zcount(keys.clients, now - ACTIVE_SECONDS, "+inf")
    pipe.hget(keys.learner, "updates")
    pipe.hgetall(keys.machine_samples)
    pipe.hgetall(keys.machine_episodes)
    pipe.zrange(keys.clients, 0, -1, withscores=True)
    pipe.hgetall(keys.machine_rejections)
    pipe.hgetall(keys.flagged)
    pipe.lrange(keys.outcomes, 0, -1)
    (
        stats, returns, active, updates, m_samples, m_episodes, seen, m_rejections, flagged, outcomes,
    ) = pipe.execute()
    stats = _int_map(stats)
    returns = _finite_floats(returns)
    figures = {
        "samples_total": stats.get("samples", 0),
        "episodes_total": stats.get("episodes", 0),
        "clients_active": int(active),
        "mean_return_recent": _mean(returns),
        **outcomes_rollup(outcomes),
        "wins_total": stats.get("wins", 0),
    }
    figures.update(evaluations_sync(campaign=campaign))
    if figures["wins_total"] > 0 and campaign.first_win_at is None:
        figures["first_win_at"] = timezone.now()  # to within one roll-up (a few seconds) of the win
    if updates is not None:
        figures["updates_total"] = max(int(updates), campaign.updates_total)
    changed = {k: v for k, v in figures.items() if getattr(campaign, k) != v}
    if changed:
        Campaign.objects.filter(pk=campaign.pk).update(**changed)
        for k, v in changed.items():
            setattr(campaign, k, v)

    m_samples, m_episodes = _int_map(m_samples), _int_map(m_episodes)
    m_rejections, flagged = _int_map(m_rejections), _int_map(flagged)
    last_seen = {member.decode(): score for member, score in seen}
    # Every sending machine's row moves at every roll-up (last_seen, samples): written from Redis in
    # statements of a thousand rows each, the unchanged ones skipped by the database.
    machines_figures_sync(
        campaign_id=campaign.id,
        figures=[
            MachineFigures(
                pk=int(key),
                samples=m_samples.get(key),
                episodes=m_episodes.get(key),
                rejections=m_rejections.get(key),
                last_seen=datetime.fromtimestamp(score, tz=UTC),
                flagged_at=datetime.fromtimestamp(flagged[key], tz=UTC) if key in flagged else None,
            )
            for key, score in last_seen.items()
        ],
    )
    machines_flag_outliers(campaign_id=campaign.id)
    return campaign


def evaluations_sync(*, campaign: Campaign) -> dict:
    """Copy evaluation results into their checkpoints' rows; return the campaign's eval_* figures.

    Checkpoints whose evaluation may still be in progress are read each time: those newer than the
    campaign's last complete one (a handful). A result counts for the campaign once it holds all the
    episodes the learner asked for (trainer.evaluation asks for the next one only then, or after a
    time-out); a checkpoint's row shows partial results as they come. Each newly complete one passes
    the roll-out gate (``services.checkpoint_gate``), which sets the campaign's ``agent_version``.
    """
    keys = CampaignKeys(campaign.id)
    floor = campaign.eval_version or 0
    pending = list(
        ModelVersion.objects.filter(campaign=campaign, is_checkpoint=True, version__gt=floor)
        .order_by("version")
        .values_list("id", "version", "eval_episodes")
    )
    if not pending:
        return {}
    pipe = get_redis().pipeline(transaction=False)
    for _, version, _ in pending:
        pipe.hgetall(keys.evals(version))
    figures: dict = {}
    for (pk, version, known), raw in zip(pending, pipe.execute(), strict=True):
        try:
            summary = evaluation_summary(raw)
        except (ValueError, OverflowError):  # an episode count of inf or nan: nothing to count
            log.warning("campaign %s: evaluation of v%s is not numbers; skipped", campaign.pk, version)
            continue
        if summary is None:
            continue
        # Sums of results stored before results were checked may be inf or nan: no figure, not Infinity.
        summary = dataclasses.replace(
            summary,
            mean_return=finite(summary.mean_return),
            boss_hp_left=finite(summary.boss_hp_left),
            player_hp_left=finite(summary.player_hp_left),
        )
        if summary.episodes != known:
            ModelVersion.objects.filter(pk=pk).update(
                eval_return=summary.mean_return,
                eval_episodes=summary.episodes,
                eval_wins=summary.wins,
                eval_boss_hp_left=summary.boss_hp_left,
                eval_player_hp_left=summary.player_hp_left,
                eval_return_std=finite(summary.return_std),
            )
        if summary.complete:
            figures["agent_version"] = checkpoint_gate(campaign=campaign, version=version)
            figures |= {
                "eval_version": version,
                "eval_return": summary.mean_return,
                "eval_win_rate": summary.win_rate,
                "eval_boss_hp_left": summary.boss_hp_left,
                "eval_player_hp_left": summary.player_hp_left,
            }
    return figures


@shared_task(name="portal.campaigns.tasks.sync_stats", ignore_result=True)
def sync_stats() -> None:
    """Every few seconds (beat): live figures for the portal and the API, without touching raw data."""
    close_old_connections()
    for campaign in Campaign.objects.public():
        try:
            stats_sync_campaign(campaign=campaign)
        except Exception:  # one campaign's bad data must not stop the others' figures
            log.exception("campaign %s: stats roll-up failed", campaign.pk)
    close_old_connections()


def models_prune(*, campaign: Campaign, keep: int) -> int:
    """Delete superseded model versions that are not checkpoints, keeping the newest ``keep``."""
    stale = list(
        ModelVersion.objects.filter(campaign=campaign, is_checkpoint=False).order_by("-version")[keep:]
    )
    for model in stale:
        model.weights.delete(save=False)
        if model.state:
            model.state.delete(save=False)
        model.delete()
    return len(stale)


@shared_task(name="portal.campaigns.tasks.prune_models", ignore_result=True)
def prune_models() -> None:
    close_old_connections()
    for campaign in Campaign.objects.public():
        removed = models_prune(campaign=campaign, keep=settings.SOULSAI_MODELS_KEPT)
        if removed:
            log.info("pruned %d superseded model versions of %s", removed, campaign.slug)
    close_old_connections()
