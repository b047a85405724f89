"""A learner host is one command: `manage.py runlearner --slots N`, started as a real process next to a
real ASGI server, takes a running campaign's learner from the queue and publishes models that the
web host serves; it names its host and device, and a SIGTERM stops it warmly."""

from __future__ import annotations

import hashlib
import socket
import sys
import urllib.request

import pytest

from harness import LiveProcess
from portal.campaigns.models import ModelVersion
from portal.campaigns.services import campaign_create, campaign_launch
from portal.machines.services import token_create
from tests.conftest import FAST_DQN, ROOT, api_get, process_env, start_client, wait_for
from trainer.keys import CampaignKeys

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_runlearner_trains_a_running_campaign(asgi_server, django_user_model, redis_client, tmp_path):
    user = django_user_model.objects.create_user("volunteer", "v@example.com", "pw-12345678")
    campaign = campaign_create(
        slug="host-cartpole", name="Learner host", env_id="CartPole-v1", hyperparams={**FAST_DQN, "eval_every_samples": 0}
    )
    campaign_launch(campaign=campaign)  # commits: status into Redis, a learner task onto the learner queue
    _, token = token_create(user=user, campaign=campaign, name="host-rig")

    learner_host = LiveProcess(
        "runlearner", [sys.executable, str(ROOT / "manage.py"), "runlearner", "--slots", "2"], process_env(), tmp_path
    )
    client = start_client(asgi_server.url, token, tmp_path / "spool", tmp_path, "--max-steps", "3000")
    try:
        procs = (learner_host, client, asgi_server)
        wait_for(lambda: "learner host: 2 slot(s)" in learner_host.output(), 60, "runlearner to start", *procs)
        published = wait_for(
            lambda: (d := api_get(asgi_server, "/api/campaigns/host-cartpole/"))["model_version"] >= 2 and d,
            150, "the learner host to publish a model", *procs,
        )
        assert published["status"] == "running"

        output = learner_host.output()
        assert "learner host: device cpu" in output or "learner host: device cuda (" in output
        assert ".> learner " in output and ".> periodic " not in output and ".> celery " not in output
        stats = redis_client.hgetall(CampaignKeys(campaign.id).learner)
        assert stats[b"host"].decode() == socket.gethostname()
        assert stats[b"device"] in (b"cpu", b"cuda")

        # The web host serves the model the learner host published, checked by its sha256.
        model = ModelVersion.objects.filter(campaign=campaign).order_by("-version").first()
        url = f"{asgi_server.url}/campaigns/host-cartpole/models/{model.version}.safetensors"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert hashlib.sha256(response.read()).hexdigest() == model.sha256

        # SIGTERM: Celery's warm shutdown; the learner checkpoints and releases its lease.
        client.stop()
        learner_host.terminate()
        assert learner_host.proc.wait(timeout=60) == 0, learner_host.output()[-3000:]
        assert not redis_client.exists(CampaignKeys(campaign.id).lease)
        assert "learner task ended: shutdown" in learner_host.output()
    finally:
        client.stop()
        learner_host.stop()
