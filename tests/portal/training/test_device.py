"""The learner's device, through the real learner run (real Redis, the test database): SOULSAI_DEVICE=cuda
on a host without CUDA ends the learner task at once with a readable error, logged once and left for
staff; auto trains on the CPU and says so, with the host, in the stats hash."""

from __future__ import annotations

import logging
import socket

import pytest
import torch

from portal.training.runner import learner_run
from portal.training.tasks import run_learner
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA: cuda and auto take it")

CUDA_MISSING = "SOULSAI_DEVICE=cuda but this host has no CUDA device (torch.cuda.is_available() is False): "


def learner_hash(redis_client, campaign) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in redis_client.hgetall(CampaignKeys(campaign.id).learner).items()}


# transaction=True: the task closes the database connections, which a test's transaction cannot survive.
@pytest.mark.django_db(transaction=True)
def test_cuda_without_cuda_fails_the_learner_task_at_start(cartpole_campaign, redis_client, settings, caplog):
    settings.SOULSAI_DEVICE = "cuda"
    keys = CampaignKeys(cartpole_campaign.id)
    redis_client.set(keys.launching, 1)
    with caplog.at_level(logging.INFO):
        assert run_learner(cartpole_campaign.id) == "device_unavailable"

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # once, and no traceback
    assert CUDA_MISSING in errors[0].getMessage() and errors[0].exc_info is None
    assert sum(CUDA_MISSING in r.getMessage() for r in caplog.records) == 1

    # Nothing started: the lease is free again (the supervisor re-queues it, perhaps on a GPU host),
    # no consumer joined the stream, nothing was published; staff find the error in the stats hash.
    assert not redis_client.exists(keys.lease)
    assert not redis_client.exists(keys.stream)
    cartpole_campaign.refresh_from_db()
    assert cartpole_campaign.model_version == 0
    stats = learner_hash(redis_client, cartpole_campaign)
    assert stats["error"].startswith(CUDA_MISSING)
    assert stats["host"] == socket.gethostname()
    assert "heartbeat" not in stats  # not a live learner: the campaign still counts as without one


@pytest.mark.django_db
def test_auto_trains_on_the_cpu_and_names_host_and_device(cartpole_campaign, redis_client, settings):
    keys = CampaignKeys(cartpole_campaign.id)
    # A learner that failed here before left its error: the next one that starts clears it.
    redis_client.hset(keys.learner, mapping={"error": "an earlier failure", "error_at": 1})
    settings.SOULSAI_DEVICE = "auto"
    assert learner_run(campaign_id=cartpole_campaign.id, max_seconds=0.5) == "time_limit"
    stats = learner_hash(redis_client, cartpole_campaign)
    assert stats["device"] == "cpu" and stats["device_name"] == "cpu"
    assert stats["host"] == socket.gethostname()
    assert float(stats["heartbeat"]) > 0
    assert "error" not in stats and "error_at" not in stats
