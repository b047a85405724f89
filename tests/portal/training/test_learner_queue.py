"""A campaign that waits for a free learner thread has one learner task queued, however long it waits.

The supervisor asks for a learner every 10 s and the "launching" mark lapses after a minute; a learner
task still waiting in the broker (the queue, or taken by a worker with no free thread) must not be
queued again, or the queue grows for as long as learners are busy. Against the real Redis broker.
"""

from __future__ import annotations

import pytest

from portal.training.services import LEARNER_QUEUE, learner_ensure
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db


def test_a_learner_still_queued_is_not_queued_again_when_its_launching_mark_lapses(cartpole_campaign, redis_client):
    queue = f"soulsai:celery:{LEARNER_QUEUE}"
    assert learner_ensure(campaign_id=cartpole_campaign.id) is True
    for _ in range(3):  # three minutes of supervision while every learner thread is busy
        redis_client.delete(CampaignKeys(cartpole_campaign.id).launching)
        assert learner_ensure(campaign_id=cartpole_campaign.id) is False
    assert redis_client.llen(queue) == 1
    # Taken by a worker that has no free thread yet (kombu's "unacked" hash): still not queued again.
    message = redis_client.rpop(queue)
    redis_client.hset("soulsai:celery:unacked", "tag-1", b"[" + message + b', "", "learner"]')
    redis_client.delete(CampaignKeys(cartpole_campaign.id).launching)
    assert learner_ensure(campaign_id=cartpole_campaign.id) is False
    # Gone from the broker (a worker died with it): queued again.
    redis_client.delete("soulsai:celery:unacked")
    redis_client.delete(CampaignKeys(cartpole_campaign.id).launching)
    assert learner_ensure(campaign_id=cartpole_campaign.id) is True
