"""The whole loop with real processes: ASGI server, Celery worker with beat, Redis, a client.

A volunteer's client streams CartPole experience through the relay; the learner trains on it and
publishes models; the portal's API shows samples counted and the model version rising.
"""

from __future__ import annotations

import urllib.request

import pytest

from portal.campaigns.services import campaign_create, campaign_launch
from portal.machines.services import token_create
from tests.conftest import FAST_DQN, api_get, start_client, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FAST = {
    **FAST_DQN,
    "eval_every_samples": 0,  # every step a training sample: the exact count below (see test_evaluation.py)
}


def test_a_client_feeds_the_learner_and_the_portal_shows_it(asgi_server, celery_worker, django_user_model, tmp_path):
    user = django_user_model.objects.create_user("volunteer", "v@example.com", "pw-12345678")
    campaign = campaign_create(slug="e2e-cartpole", name="E2E CartPole", env_id="CartPole-v1", hyperparams=FAST)
    campaign_launch(campaign=campaign)  # commits: status into Redis, a learner task onto the queue
    _, token = token_create(user=user, campaign=campaign, name="e2e-rig")

    client = start_client(asgi_server.url, token, tmp_path / "spool", tmp_path, "--max-steps", "6000")
    try:
        procs = (client, celery_worker, asgi_server)
        first = wait_for(
            lambda: (d := api_get(asgi_server, "/api/campaigns/e2e-cartpole/"))["samples_total"] > 0 and d,
            90, "samples to be counted", *procs,
        )
        assert first["status"] == "running"
        later = wait_for(
            lambda: (d := api_get(asgi_server, "/api/campaigns/e2e-cartpole/"))["model_version"] >= 3 and d,
            150, "the model version to reach 3", *procs,
        )
        assert later["samples_total"] >= first["samples_total"]
        assert later["episodes_total"] > 0
        assert later["mean_return_recent"] is not None

        # The client stops after 6000 steps once everything it made is acked: every step is counted once.
        assert client.proc.wait(timeout=150) == 0, client.output()
        final = wait_for(
            lambda: (d := api_get(asgi_server, "/api/campaigns/e2e-cartpole/"))["samples_total"] == 6000 and d,
            20, "all 6000 samples to be counted", *procs,
        )
        assert final["clients_active"] >= 1
        assert "v" in client.output()  # progress lines name the model version the client plays

        checkpoints = api_get(asgi_server, "/api/campaigns/e2e-cartpole/checkpoints/")["checkpoints"]
        assert checkpoints, "the learner keeps every 2nd version as a checkpoint"
        with urllib.request.urlopen(checkpoints[0]["url"], timeout=10) as response:
            import hashlib

            assert hashlib.sha256(response.read()).hexdigest() == checkpoints[0]["sha256"]
    finally:
        client.stop()
