"""The learner's Celery tasks, against the real Redis (the broker too) and the real test database."""

from __future__ import annotations

import json

import pytest

from portal.training.services import learner_ensure
from portal.training.tasks import supervise_learners
from tests.trainer.helpers import push_chunks
from trainer.keys import CampaignKeys

LEARNER_QUEUE = b"soulsai:celery:learner"  # the broker's list for the "learner" queue (global_keyprefix)


def queued_learners(redis_client) -> list[dict]:
    return [json.loads(m)["headers"] for m in redis_client.lrange(LEARNER_QUEUE, 0, -1)]


@pytest.mark.django_db
def test_learner_ensure_queues_one_learner(cartpole_campaign, redis_client):
    keys = CampaignKeys(cartpole_campaign.id)
    assert learner_ensure(campaign_id=cartpole_campaign.id) is True
    assert 0 < redis_client.ttl(keys.launching) <= 60
    # Already queued: nothing more until the learner starts (it deletes the launching key).
    assert learner_ensure(campaign_id=cartpole_campaign.id) is False
    [headers] = queued_learners(redis_client)
    assert headers["task"] == "trainer.tasks.run_learner"
    assert headers["argsrepr"] == repr([cartpole_campaign.id])


@pytest.mark.django_db
def test_learner_ensure_leaves_a_campaign_whose_lease_is_held(cartpole_campaign, redis_client):
    keys = CampaignKeys(cartpole_campaign.id)
    redis_client.set(keys.lease, "running-learner")
    assert learner_ensure(campaign_id=cartpole_campaign.id) is False
    assert not redis_client.exists(keys.launching)
    assert not queued_learners(redis_client)


# transaction=True: the task closes old database connections, which a test's transaction cannot survive.
@pytest.mark.django_db(transaction=True)
def test_supervisor_repairs_redis_and_restarts_missing_learners(cartpole_campaign, redis_client):
    from portal.campaigns.services import campaign_create, campaign_launch, campaign_pause

    paused = campaign_create(slug="paused", name="Paused", env_id="CartPole-v1")
    paused = campaign_pause(campaign=campaign_launch(campaign=paused))
    draft = campaign_create(slug="draft", name="Draft", env_id="CartPole-v1")
    redis_client.flushdb()  # a Redis that lost everything (launch's on_commit hooks ran in this test)

    supervise_learners()

    running, paused_keys, draft_keys = (CampaignKeys(c.id) for c in (cartpole_campaign, paused, draft))
    assert redis_client.get(running.status) == b"running"
    assert redis_client.get(paused_keys.status) == b"paused"
    assert not redis_client.exists(draft_keys.status)
    assert redis_client.exists(running.launching) and not redis_client.exists(paused_keys.launching)
    assert len(queued_learners(redis_client)) == 1


def test_a_worker_shutdown_makes_the_learner_checkpoint_and_return(
    transactional_db, cartpole_campaign, redis_client
):
    """Celery's warm shutdown waits for running tasks: the learner must end by itself, leaving its lease."""
    import threading

    from celery.signals import worker_shutting_down

    from harness import wait_for
    from portal.training.runner import learner_run
    from trainer.shutdown import SHUTDOWN

    SHUTDOWN.clear()
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("outcome", learner_run(campaign_id=cartpole_campaign.id))
    )
    thread.start()
    try:

        def leased() -> bool:
            assert thread.is_alive(), "the learner ended before taking its lease"
            return bool(redis_client.exists(CampaignKeys(cartpole_campaign.id).lease))

        wait_for(leased, 10, "the learner to take its lease", interval=0.05)
        worker_shutting_down.send(sender="test", sig="SIGTERM", how="Warm", exitcode=0)
        thread.join(timeout=15)
        assert not thread.is_alive()
        assert result["outcome"] == "shutdown"
        assert not redis_client.exists(CampaignKeys(cartpole_campaign.id).lease)
    finally:
        SHUTDOWN.clear()
        thread.join(timeout=15)


@pytest.mark.django_db(transaction=True)
def test_a_stopped_campaigns_stream_leaves_redis_once_no_learner_holds_it(cartpole_campaign, redis_client):
    """Stopping is final: the entries its last learner read but never covered by a checkpoint, and
    those never read, would otherwise stay in Redis's memory for good. A paused campaign keeps its
    stream (its learner resumes from it), and so does a stopped one while a learner still holds it."""
    from portal.campaigns.services import campaign_create, campaign_launch, campaign_pause, campaign_stop

    paused = campaign_pause(
        campaign=campaign_launch(campaign=campaign_create(slug="p", name="P", env_id="CartPole-v1"))
    )
    stopped = campaign_stop(campaign=cartpole_campaign)
    stopped_keys, paused_keys = CampaignKeys(stopped.id), CampaignKeys(paused.id)
    for keys in (stopped_keys, paused_keys):
        push_chunks(redis_client, keys.stream, 6, 8)
        redis_client.xgroup_create(keys.stream, keys.group, id="0")
        redis_client.xreadgroup(
            keys.group, "learner-1", {keys.stream: ">"}, count=4
        )  # read, in no checkpoint
    redis_client.set(stopped_keys.lease, "a-learner-writing-its-final-checkpoint")

    supervise_learners()
    assert redis_client.xlen(stopped_keys.stream) == 6  # its learner still holds it

    redis_client.delete(stopped_keys.lease)  # it let go
    supervise_learners()
    assert not redis_client.exists(stopped_keys.stream)
    assert redis_client.xlen(paused_keys.stream) == 6
    assert redis_client.xpending(paused_keys.stream, paused_keys.group)["pending"] == 4
