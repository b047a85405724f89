"""Celery tasks of the learner: the learner itself (queue "learner") and its supervisor (beat).

Thin interfaces: they take ids, call ``portal.training.runner`` or a service, and log. The learner
(and PyTorch with it) is imported only inside the learner task, so beat and the default worker stay
light. The task names keep the ``trainer.tasks`` path that routing and beat know them by.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_shutting_down
from django.db import close_old_connections, connections

from portal.campaigns.models import Campaign
from portal.campaigns.services import campaign_redis_sync
from portal.core.logs import log_context
from portal.core.redis import get_redis
from portal.training.services import (
    RUN_LEARNER_TASK,
    SUPERVISE_LEARNERS_TASK,
    learner_ensure,
    learner_watch,
    stream_retire,
)
from trainer.keys import CampaignKeys
from trainer.shutdown import SHUTDOWN

log = logging.getLogger(__name__)


@worker_shutting_down.connect
def _stop_learners(**_: object) -> None:
    """A warm shutdown waits for running tasks: tell the learners to checkpoint and return."""
    SHUTDOWN.set()


# acks_late=False: the message is acknowledged when the worker takes it, so the Redis broker never
# redelivers a learner that runs past its visibility timeout; the lease and the supervisor restart it.
@shared_task(name=RUN_LEARNER_TASK, acks_late=False, ignore_result=True)
def run_learner(campaign_id: int) -> str:
    """Run the campaign's learner until it is paused, stopped or loses its lease."""
    # Here, not at the top: it loads PyTorch, which only the learner queue's workers need.
    from portal.training.runner import learner_run

    get_redis().delete(CampaignKeys(campaign_id).launching)
    close_old_connections()
    try:
        outcome = learner_run(campaign_id=campaign_id)
    except Exception:
        log.exception("campaign %s: learner crashed; the supervisor will restart it", campaign_id)
        raise
    finally:
        connections.close_all()
    log.info("campaign %s: learner task ended: %s", campaign_id, outcome)
    return outcome


@shared_task(name=SUPERVISE_LEARNERS_TASK, ignore_result=True)
def supervise_learners() -> None:
    """Beat: repair campaigns' Redis state, restart any running campaign's learner whose lease lapsed,
    note since when a running campaign has had no learner (its page says "waiting for a learner"), and
    delete a stopped campaign's stream once its learner has let go."""
    close_old_connections()
    try:
        for campaign in Campaign.objects.public():
            with log_context(campaign=campaign.id, campaign_slug=campaign.slug):  # its lines name it
                campaign_redis_sync(campaign=campaign)
                running = campaign.status == Campaign.Status.RUNNING
                if running:
                    learner_ensure(campaign_id=campaign.id)
                learner_watch(campaign_id=campaign.id, running=running)
                if campaign.status == Campaign.Status.STOPPED:
                    stream_retire(campaign_id=campaign.id)
    finally:
        close_old_connections()
