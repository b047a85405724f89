"""A learner's worker killed with SIGKILL mid-training: a successor takes over by itself.

The lease lapses, beat's supervisor queues a new learner, a fresh worker resumes it from the last
checkpoint, the model version keeps rising from where it was, and every step the client was told
is safe is counted once.
"""

from __future__ import annotations

import os
import signal

import pytest

from portal.campaigns.models import ModelVersion
from portal.campaigns.services import campaign_create, campaign_launch
from portal.machines.services import token_create
from tests.conftest import FAST_DQN, api_get, start_celery_worker, start_client, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FAST = {
    **FAST_DQN,
    "publish_min_seconds": 0.3,
    # No greedy evaluation episodes: every step the client plays is then a training sample, which
    # makes the exactly-once count below exact (tests/e2e/test_evaluation.py covers evaluation).
    "eval_every_samples": 0,
}


def test_a_killed_learner_worker_is_replaced_and_resumes_from_its_checkpoint(
    asgi_server, django_user_model, tmp_path
):
    user = django_user_model.objects.create_user("volunteer", "v@example.com", "pw-12345678")
    campaign = campaign_create(slug="recovery", name="Recovery", env_id="CartPole-v1", hyperparams=FAST)
    campaign_launch(campaign=campaign)
    _, token = token_create(user=user, campaign=campaign, name="rig")

    first = start_celery_worker(tmp_path, "worker-1")
    client = start_client(asgi_server.url, token, tmp_path / "spool", tmp_path, "--max-steps", "12000", "--max-sps", "600")
    second = None
    try:
        wait_for(
            lambda: ModelVersion.objects.filter(campaign=campaign, is_checkpoint=True, version__gte=4).exists(),
            120, "a checkpoint from the first learner", first, client,
        )
        os.killpg(first.proc.pid, signal.SIGKILL)  # the worker's machine is gone: no warm shutdown
        first.proc.wait(timeout=10)
        before = max(ModelVersion.objects.filter(campaign=campaign).values_list("version", flat=True))

        second = start_celery_worker(tmp_path, "worker-2")
        # The lease (6 s in tests) lapses, beat's supervisor (every 10 s) queues a successor.
        wait_for(lambda: "resumed from checkpoint" in second.output(), 60, "the successor to resume", second)
        wait_for(
            lambda: ModelVersion.objects.filter(campaign=campaign, version__gt=before).exists(),
            60, "a model version above the last one before the kill", second,
        )
        versions = list(ModelVersion.objects.filter(campaign=campaign).values_list("version", flat=True))
        assert len(versions) == len(set(versions)), "no version number was published twice"

        assert client.proc.wait(timeout=120) == 0, client.output()
        final = wait_for(
            lambda: (d := api_get(asgi_server, "/api/campaigns/recovery/"))["samples_total"] == 12000 and d,
            30, "every step the client played to be counted exactly once", second, client,
        )
        assert final["model_version"] > before
    finally:
        client.stop()
        first.stop()
        if second is not None:
            second.stop()
