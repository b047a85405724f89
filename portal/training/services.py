"""Starting learners: queue one for a campaign unless one runs or is queued already."""

from __future__ import annotations

import logging

from celery import current_app

from portal.core.redis import get_redis
from trainer.keys import CampaignKeys

log = logging.getLogger(__name__)

# The task names that routing (CELERY_TASK_ROUTES), beat (CELERY_BEAT_SCHEDULE) and messages already
# queued use: they keep the module path the tasks had when they lived in the trainer.
RUN_LEARNER_TASK = "trainer.tasks.run_learner"
SUPERVISE_LEARNERS_TASK = "trainer.tasks.supervise_learners"
LEARNER_QUEUE = "learner"

LAUNCHING_TTL_SECONDS = 60  # a queued learner that never started stops blocking a new one after this


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
    # By name: the task module (portal.training.tasks) calls the campaigns' services, which call this.
    current_app.send_task(RUN_LEARNER_TASK, args=[campaign_id], queue=LEARNER_QUEUE, ignore_result=True)
    log.info("campaign %s: learner queued", campaign_id)
    return True
