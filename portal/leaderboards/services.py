"""Leaderboards, the write side: roll counters up into hourly contributions, refresh the cached boards.

Both run on beat (``refresh_leaderboards``); pages and the API only read the cached boards
(portal.leaderboards.selectors).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from portal.campaigns.models import Campaign
from portal.core import strictjson
from portal.core.redis import get_redis
from portal.leaderboards.models import Contribution, MachineTally
from portal.leaderboards.selectors import PERIODS, board_cache_key, board_compute
from portal.machines.models import MachineToken
from portal.volunteers.models import Profile
from trainer.keys import CampaignKeys

FIELDS = ("samples", "episodes", "wins")


def hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _counters(campaign_id: int) -> dict[str, dict[int, int]]:
    keys = CampaignKeys(campaign_id)
    pipe = get_redis().pipeline(transaction=False)
    pipe.hgetall(keys.machine_samples)
    pipe.hgetall(keys.machine_episodes)
    pipe.hgetall(keys.machine_wins)
    raw = pipe.execute()
    return {field: _int_counters(values) for field, values in zip(FIELDS, raw, strict=True)}


def _int_counters(values: dict[bytes, bytes]) -> dict[int, int]:
    """Machine id -> counter; an entry that is not a whole number (junk a past bug left) is skipped."""
    counters = {}
    for key, value in values.items():
        try:
            counters[int(key)] = int(value)
        except ValueError:
            continue
    return counters


def _tallies_write(tallies: list[MachineTally]) -> None:
    """Write the tallies' counters: one UPDATE statement, run for each row by the driver (executemany).

    Django's bulk_update builds a CASE expression per field with a branch per row, in Python: 5.7 s of
    CPU for 5,000 machines (bench/cluster.py's scale drill) every refresh, where this takes 0.3 s.
    """
    meta, quote = MachineTally._meta, connection.ops.quote_name
    columns = ", ".join(f"{quote(meta.get_field(field).column)} = %s" for field in FIELDS)
    sql = f"UPDATE {quote(meta.db_table)} SET {columns} WHERE {quote(meta.pk.column)} = %s"
    with connection.cursor() as cursor:
        cursor.executemany(
            sql, [[getattr(tally, field) for field in FIELDS] + [tally.pk] for tally in tallies]
        )


@transaction.atomic
def contributions_rollup(*, campaign: Campaign, now: datetime | None = None) -> int:
    """Credit what each machine of ``campaign`` sent since the last roll-up to its owner's current hour.

    Returns the number of volunteers credited. Counters that went back (a Redis that lost its data)
    count from zero again.
    """
    counters = _counters(campaign.id)
    machine_ids = set().union(*(c.keys() for c in counters.values()))
    if not machine_ids:
        return 0
    owners = dict(
        MachineToken.objects.filter(campaign=campaign, pk__in=machine_ids).values_list("pk", "user_id")
    )
    tallies = {t.token_id: t for t in MachineTally.objects.select_for_update().filter(token_id__in=owners)}
    deltas: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
    changed, created = [], []
    for machine_id, user_id in owners.items():
        tally = tallies.get(machine_id)
        is_new = tally is None
        if is_new:
            tally = MachineTally(token_id=machine_id)
            created.append(tally)
        moved = False
        for field in FIELDS:
            now_value, credited = counters[field].get(machine_id, 0), getattr(tally, field)
            delta = now_value - credited if now_value >= credited else now_value
            if delta or now_value != credited:
                deltas[user_id][field] += delta
                setattr(tally, field, now_value)
                moved = True
        if moved and not is_new:
            changed.append(tally)
    MachineTally.objects.bulk_create(created)
    if changed:
        _tallies_write(changed)
    hour = hour_start(now or timezone.now())
    teams = dict(
        Profile.objects.filter(user_id__in=deltas, team__isnull=False).values_list("user_id", "team_id")
    )
    credited = 0
    for user_id, delta in deltas.items():
        if not any(delta.values()):
            continue
        # The bucket keeps the team its volunteer is in now: what a member gave stays with the team.
        row, _ = Contribution.objects.get_or_create(
            campaign=campaign, user_id=user_id, hour=hour, defaults={"team_id": teams.get(user_id)}
        )
        Contribution.objects.filter(pk=row.pk).update(**{f: F(f) + delta[f] for f in FIELDS})
        credited += 1
    return credited


def leaderboards_refresh(*, now: datetime | None = None) -> None:
    """Roll up every live campaign, then recompute and cache each board (per campaign and global)."""
    now = now or timezone.now()
    campaigns = list(Campaign.objects.public())
    for campaign in campaigns:
        # A stopped campaign's last chunks still count for a while; after a day its counters are final.
        finished = campaign.stopped_at is not None and now - campaign.stopped_at > timedelta(days=1)
        if not finished:
            contributions_rollup(campaign=campaign, now=now)
    pipe = get_redis().pipeline(transaction=False)
    for period in PERIODS:
        for campaign in [*campaigns, None]:
            board = board_compute(campaign=campaign, period=period, now=now)
            pipe.set(board_cache_key(campaign=campaign, period=period), strictjson.dumps(board))
    pipe.execute()


@transaction.atomic
def contributions_void(*, token: MachineToken, samples: int, episodes: int = 0, wins: int = 0) -> None:
    """Take voided data off its volunteer's credit: call with what a voided machine's counters lose,
    after lowering them in Redis by as much (so the next roll-up sees no change, not a reset).

    The machine's tally drops by the same amounts and its owner's hourly buckets on that campaign
    lose them newest first (never below zero), so boards, pages and team credit no longer count them.
    """
    lose = {"samples": max(0, samples), "episodes": max(0, episodes), "wins": max(0, wins)}
    tally = MachineTally.objects.select_for_update().filter(token=token).first()
    if tally is not None:
        for field, amount in lose.items():
            setattr(tally, field, max(0, getattr(tally, field) - amount))
        tally.save(update_fields=list(FIELDS))
    rows = Contribution.objects.select_for_update().filter(
        campaign_id=token.campaign_id, user_id=token.user_id
    )
    for row in rows.order_by("-hour"):
        if not any(lose.values()):
            break
        for field in FIELDS:
            taken = min(lose[field], getattr(row, field))
            setattr(row, field, getattr(row, field) - taken)
            lose[field] -= taken
        row.save(update_fields=list(FIELDS))
