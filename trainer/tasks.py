"""Celery tasks of the trainer: the learner itself (queue "learner") and its supervisor (beat).

Thin interfaces: they take ids, call ``trainer.learner`` or a service, and log. The learner module
(and PyTorch with it) is imported only inside the learner task, so beat and the default worker stay light.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_shutting_down
from django.db import close_old_connections, connections

from portal.core.redis import get_redis
from trainer.keys import CampaignKeys

log = logging.getLogger(__name__)

LAUNCHING_TTL_SECONDS = 60  # a queued learner that never started stops blocking a new one after this


@worker_shutting_down.connect
def _stop_learners(**_: object) -> None:
    """A warm shutdown waits for running tasks: tell the learners to checkpoint and return."""
    import sys

    learner = sys.modules.get("trainer.learner")  # only loaded where a learner ran
    if learner is not None:
        learner.SHUTDOWN.set()


# acks_late=False: the message is acknowledged when the worker takes it, so the Redis broker never
# redelivers a learner that runs past its visibility timeout; the lease and the supervisor restart it.
@shared_task(name="trainer.tasks.run_learner", acks_late=False, ignore_result=True)
def run_learner(campaign_id: int) -> str:
    """Run the campaign's learner until it is paused, stopped or loses its lease."""
    from trainer import learner

    get_redis().delete(CampaignKeys(campaign_id).launching)
    close_old_connections()
    try:
        outcome = learner.run_learner(campaign_id)
    except Exception:
        log.exception("campaign %s: learner crashed; the supervisor will restart it", campaign_id)
        raise
    finally:
        connections.close_all()
    log.info("campaign %s: learner task ended: %s", campaign_id, outcome)
    return outcome


def learner_ensure(*, campaign_id: int) -> bool:
    """Queue a learner for the campaign unless one holds the lease or is already queued.

    Returns whether a learner task was queued.
    """
    keys = CampaignKeys(campaign_id)
    client = get_redis()
    if client.exists(keys.lease):
        return False
    if not client.set(keys.launching, 1, nx=True, ex=LAUNCHING_TTL_SECONDS):
        return False
    run_learner.apply_async(args=[campaign_id], queue="learner")
    log.info("campaign %s: learner queued", campaign_id)
    return True


@shared_task(name="trainer.tasks.supervise_learners", ignore_result=True)
def supervise_learners() -> None:
    """Beat: repair campaigns' Redis state and restart any running campaign's learner whose lease lapsed."""
    from portal.campaigns.models import Campaign
    from portal.campaigns.services import campaign_redis_sync

    close_old_connections()
    try:
        for campaign in Campaign.objects.public():
            campaign_redis_sync(campaign=campaign)
            if campaign.status == Campaign.Status.RUNNING:
                learner_ensure(campaign_id=campaign.id)
    finally:
        close_old_connections()
