"""The stats roll-up writes each sending machine's live figures into its row (its owner's pages and
staff's lists read them there), in statements of FIGURES_SYNC_ROWS machines."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync
from portal.campaigns.tasks import stats_sync_campaign
from portal.core.redis import get_redis
from portal.machines import services
from portal.machines.models import MachineToken
from portal.machines.services import token_create
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db


def _machines(campaign, user, n: int) -> list[MachineToken]:
    return [token_create(user=user, campaign=campaign, name=f"rig-{i}")[0] for i in range(n)]


def _seen(campaign_id: int, machines: list[MachineToken], at: float) -> None:
    get_redis().zadd(CampaignKeys(campaign_id).clients, {str(m.pk): at + i for i, m in enumerate(machines)})


def test_the_roll_up_writes_redis_figures_into_machine_rows_and_keeps_what_redis_lacks(campaign, volunteer):
    sending, quiet, flagged_before, silent = _machines(campaign, volunteer, 4)
    earlier = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    MachineToken.objects.filter(pk=quiet.pk).update(samples=70, episodes=7, rejections=1)
    MachineToken.objects.filter(pk=flagged_before.pk).update(flagged_at=earlier)
    MachineToken.objects.filter(pk=silent.pk).update(samples=5, last_seen=earlier)
    keys, now = CampaignKeys(campaign.id), time.time()
    redis = get_redis()
    redis.hset(keys.machine_samples, mapping={sending.pk: 640, flagged_before.pk: 32})
    redis.hset(keys.machine_episodes, mapping={sending.pk: 3})
    redis.hset(keys.machine_rejections, mapping={sending.pk: 2})
    redis.hset(keys.flagged, mapping={sending.pk: int(now) - 5, flagged_before.pk: int(now) - 5})
    _seen(campaign.id, [sending, quiet, flagged_before], now - 10)  # `silent` never connected here

    stats_sync_campaign(campaign=campaign)

    rows = {m.pk: m for m in MachineToken.objects.filter(campaign=campaign)}
    row = rows[sending.pk]
    assert (row.samples, row.episodes, row.rejections) == (640, 3, 2)
    assert abs(row.last_seen.timestamp() - (now - 10)) < 1e-3
    assert row.flagged_at.timestamp() == int(now) - 5  # newly flagged
    row = rows[quiet.pk]
    assert (row.samples, row.episodes, row.rejections) == (70, 7, 1)  # no Redis counters: kept
    assert abs(row.last_seen.timestamp() - (now - 9)) < 1e-3 and row.flagged_at is None
    row = rows[flagged_before.pk]
    assert row.samples == 32 and row.flagged_at == earlier  # flagged once: the first time stays
    row = rows[silent.pk]
    assert row.samples == 5 and row.last_seen == earlier  # not in the clients set: untouched


def test_a_machine_of_another_campaign_is_never_written_by_this_ones_roll_up(campaign, volunteer):
    other = campaign_launch(campaign=campaign_create(slug="other", name="Other", env_id="CartPole-v1"))
    campaign_redis_sync(campaign=other)
    (mine,), (theirs,) = _machines(campaign, volunteer, 1), _machines(other, volunteer, 1)
    keys = CampaignKeys(campaign.id)
    # A machine id in this campaign's hashes that belongs to the other campaign (a stale or forged key).
    get_redis().hset(keys.machine_samples, mapping={mine.pk: 10, theirs.pk: 999})
    _seen(campaign.id, [mine, theirs], time.time())

    stats_sync_campaign(campaign=campaign)

    assert MachineToken.objects.get(pk=mine.pk).samples == 10
    theirs.refresh_from_db()
    assert theirs.samples == 0 and theirs.last_seen is None


def test_thousands_of_machines_are_written_in_bounded_statements_and_unchanged_rows_are_skipped(
    campaign, volunteer, monkeypatch
):
    monkeypatch.setattr(services, "FIGURES_SYNC_ROWS", 64)  # several statements, and a partial last one
    machines = MachineToken.objects.bulk_create(
        [MachineToken(user=volunteer, campaign=campaign, name=f"rig-{i}", prefix=f"p{i}", key_hash=f"h{i}")
         for i in range(300)]
    )  # fmt: skip
    keys, now = CampaignKeys(campaign.id), time.time()
    get_redis().hset(keys.machine_samples, mapping={m.pk: 32 * (i + 1) for i, m in enumerate(machines)})
    _seen(campaign.id, machines, now)
    figures = [
        services.MachineFigures(pk=m.pk, samples=32 * (i + 1), episodes=None, rejections=None,
                                last_seen=datetime.fromtimestamp(now + i, tz=UTC))
        for i, m in enumerate(machines)
    ]  # fmt: skip

    assert services.machines_figures_sync(campaign_id=campaign.id, figures=figures) == 300
    assert services.machines_figures_sync(campaign_id=campaign.id, figures=figures) == 0  # nothing moved
    figures[299] = services.MachineFigures(
        pk=machines[299].pk, samples=1, episodes=None, rejections=None, last_seen=figures[299].last_seen
    )
    assert services.machines_figures_sync(campaign_id=campaign.id, figures=figures) == 1
    rows = dict(MachineToken.objects.filter(campaign=campaign).values_list("pk", "samples"))
    assert [rows[m.pk] for m in machines] == [32 * (i + 1) for i in range(299)] + [1]
