"""PPO and greedy evaluation through the real stack: ASGI relay, Celery learner, a real client.

The client samples from the published policy and sends each action's log-probability; the learner
trains PPO on them, publishes every iteration, and asks for evaluation episodes of its checkpoints,
which the client plays greedily and reports; the portal's API shows the evaluation return.
"""

from __future__ import annotations

import pytest

from portal.campaigns.models import ModelVersion
from portal.campaigns.services import campaign_create, campaign_launch
from portal.core.redis import get_redis
from portal.machines.services import token_create
from tests.conftest import api_get, start_client, wait_for
from trainer.keys import CampaignKeys

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PPO_FAST = {
    "rollout_steps": 512,
    "minibatch_size": 128,
    "epochs": 4,
    "hidden": [32, 32],
    "eval_every_samples": 1500,
    "eval_episodes": 2,
    "checkpoint_every_versions": 50,
}


def test_ppo_learns_from_client_log_probabilities_and_checkpoints_get_evaluated(
    asgi_server, celery_worker, django_user_model, tmp_path
):
    user = django_user_model.objects.create_user("volunteer", "v@example.com", "pw-12345678")
    campaign = campaign_create(
        slug="e2e-ppo", name="E2E PPO", env_id="CartPole-v1", algorithm="ppo", hyperparams=PPO_FAST, chunk_steps=64
    )
    campaign_launch(campaign=campaign)
    _, token = token_create(user=user, campaign=campaign, name="e2e-rig")
    client = start_client(asgi_server.url, token, tmp_path / "spool", tmp_path, "--max-steps", "500000")
    procs = (client, celery_worker, asgi_server)
    try:
        # Version 1 is the initial policy; every later one is a PPO iteration on 512 sampled steps.
        wait_for(lambda: api_get(asgi_server, "/api/campaigns/e2e-ppo/")["model_version"] >= 4, 150,
                 "three PPO iterations", *procs)
        # The learner's stats hash is rewritten about once a second.
        learner = wait_for(
            lambda: (h := get_redis().hgetall(CampaignKeys(campaign.id).learner)) and int(h[b"version"]) >= 4 and h,
            30, "the learner's stats to show version 4", *procs,
        )
        assert learner[b"algorithm"] == b"ppo"
        # The client's chunks carried log-probabilities of a version within the staleness bound:
        # the learner trained on them rather than dropping them.
        assert int(learner[b"samples_ingested"]) > int(learner[b"dropped_samples"])

        evaluated = wait_for(
            lambda: (d := api_get(asgi_server, "/api/campaigns/e2e-ppo/"))["eval_version"] and d,
            150, "a checkpoint's evaluation to complete", *procs,
        )
        checkpoint = ModelVersion.objects.get(campaign=campaign, version=evaluated["eval_version"])
        assert checkpoint.is_checkpoint and checkpoint.eval_episodes >= 2
        assert evaluated["eval_return"] == pytest.approx(checkpoint.eval_return)
        assert evaluated["eval_boss_hp_left"] is None and evaluated["eval_player_hp_left"] is None  # no boss
        assert 8 <= checkpoint.eval_return <= 500  # CartPole returns: at least 8 steps, at most 500
        listed = api_get(asgi_server, "/api/campaigns/e2e-ppo/checkpoints/")["checkpoints"]
        assert any(c["version"] == checkpoint.version and c["eval_episodes"] >= 2 for c in listed)
        assert "evaluation episodes" in client.output() or client.proc.poll() is None
    finally:
        client.stop()
