"""A guided Iudex campaign through the real stack: ASGI relay, Celery learner, a real client.

The published models carry the guide's share; the client plays that share of its training episodes
with the scripted player and says so in their chunks; the learner checks each of those steps against
the scripted player itself and trains the large-margin loss on them (trainer.config.DQNConfig.guide).
"""

from __future__ import annotations

import pytest

from client_app import iudex
from client_app.policy import Policy
from portal.campaigns.models import ModelVersion
from portal.campaigns.services import campaign_create, campaign_launch
from portal.core.redis import get_redis
from portal.machines.services import token_create
from tests.conftest import start_client, wait_for
from trainer.keys import CampaignKeys

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GUIDED = {
    "guide": "scripted",
    "guide_share": 1.0,  # every training episode: the test needs no luck
    "learning_starts": 256,
    "batch_size": 32,
    "hidden": [32, 32],
    "eval_every_samples": 0,
    "publish_every_updates": 20,
    "publish_min_seconds": 0.0,
}


def test_clients_play_the_guides_share_and_the_learner_trains_the_margin_on_its_checked_steps(
    asgi_server, celery_worker, django_user_model, tmp_path
):
    user = django_user_model.objects.create_user("volunteer", "v@example.com", "pw-12345678")
    campaign = campaign_create(
        slug="e2e-guided", name="E2E guided", env_id=iudex.ARENA_ID, hyperparams=GUIDED, chunk_steps=64
    )
    campaign_launch(campaign=campaign)
    _, token = token_create(user=user, campaign=campaign, name="e2e-rig")
    client = start_client(asgi_server.url, token, tmp_path / "spool", tmp_path, "--max-steps", "500000")
    procs = (client, celery_worker, asgi_server)
    keys = CampaignKeys(campaign.id)
    try:
        # Once a model told the client to let the guide play, guided samples reach the learner, and
        # its updates carry the margin loss of the steps it checked.
        stats = wait_for(
            lambda: (h := get_redis().hgetall(keys.learner)) and int(h.get(b"guided_samples", 0)) >= 512
            and b"margin_loss" in h and h,
            240, "the learner to train on guided samples", *procs,
        )
        assert float(stats[b"guide_share"]) == 1.0
        assert int(stats[b"guided_samples"]) <= int(stats[b"samples_ingested"])
        # The client played the scripted player: all but its random 5% of the steps are the guide's.
        assert int(stats[b"guide_checked"]) >= 0.9 * int(stats[b"guided_samples"])
        assert float(stats[b"margin_loss"]) >= 0.0
        # It measured how many chunks a second of its work takes: the relay's back-pressure reads it.
        assert float(stats[b"drain_chunks_per_s"]) > 0
    finally:
        client.stop()

    # The models it published tell clients the guide's share and its exploration.
    model = ModelVersion.objects.filter(campaign=campaign).order_by("-version").first()
    with model.weights.open("rb") as f:
        policy = Policy.from_bytes(f.read())
    assert policy.guide_share == 1.0 and policy.guide_epsilon == pytest.approx(0.05)
