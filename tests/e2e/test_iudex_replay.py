"""Real Dark Souls III data end to end: the recorded Iudex episodes, encoded and masked by the client's
code, stream through the real relay (a real client connection and spool) into a learner.

The recording (tests/data/iudex_recorded_episodes.json, 699 steps of 2 episodes) holds each step's
observation, action, reward and the actions the game allowed. The game silently drops an action it
does not allow, so such steps are replayed as what happened: "do nothing" (19).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from client_app import iudex
from client_app import protocol as P
from client_app.connection import Connection
from client_app.masks import action_mask
from client_app.spool import Spool
from portal.campaigns.models import Campaign, ModelVersion
from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync
from portal.machines.services import token_create
from portal.training.runner import learner_run
from tests.conftest import wait_for
from trainer.keys import CampaignKeys

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DATA = Path(__file__).resolve().parent.parent / "data" / "iudex_recorded_episodes.json"
SMALL = {"learning_starts": 128, "batch_size": 32, "hidden": [64, 64], "eval_every_samples": 0,
         "publish_every_updates": 20, "publish_min_seconds": 0.0}


def recorded_chunks(chunk_steps: int = 64) -> list[P.Chunk]:
    """The recording as the client would send it: encoded observations, masks, one episode per run."""
    data = json.loads(DATA.read_text())
    chunks: list[P.Chunk] = []
    episodes = np.asarray(data["episodes"])
    for episode in np.unique(episodes):
        steps = np.flatnonzero(episodes == episode)
        obs = np.stack([iudex.encode(data["observations"][i]) for i in steps])
        masks = np.stack([action_mask(data["infos"][i], iudex.N_ACTIONS) for i in steps])
        actions = np.array([a if masks[k, a] else iudex.NOOP for k, a in enumerate(data["actions"][i] for i in steps)])
        rewards = np.asarray([data["rewards"][i] for i in steps], np.float32)
        # The recording has no observation after an episode's last step: it ends one step earlier.
        n = len(steps) - 1
        for start in range(0, n, chunk_steps):
            end = min(start + chunk_steps, n)
            last = end == n
            chunks.append(P.Chunk(
                id=f"iudex-{episode}-{start}", model_version=0, obs=obs[start:end + 1], actions=actions[start:end],
                rewards=rewards[start:end], truncated=last, masks=masks[start:end + 1],
                episode_return=float(rewards[:n].sum()) if last else None, episode_length=n if last else None,
            ))
    return chunks


def test_recorded_iudex_fights_stream_through_the_relay_into_a_learner(asgi_server, django_user_model, tmp_path, redis_client):
    user = django_user_model.objects.create_user("volunteer", "v@example.com", "pw-12345678")
    campaign = campaign_launch(campaign=campaign_create(
        slug="iudex-replay", name="Iudex replay", env_id="SoulsGymIudex-v0", hyperparams=SMALL, chunk_steps=64,
    ))
    campaign_redis_sync(campaign=campaign)
    _, token = token_create(user=user, campaign=campaign, name="replay-rig")
    chunks = recorded_chunks()
    total = sum(c.steps for c in chunks)
    assert total == 697 and any((~c.masks).any() for c in chunks)  # real masks, with forbidden actions

    spool = Spool(tmp_path / "spool")
    for chunk in chunks:
        spool.add(chunk.id, P.pack(chunk.to_message()))
    connection = Connection(server_url=asgi_server.url, token=token, machine="replay-rig")
    connection.start()
    try:
        welcome = connection.wait_for_welcome(15)
        assert welcome is not None and welcome.campaign["env_id"] == "SoulsGymIudex-v0"
        assert welcome.observation_space["shape"] == [iudex.ENCODED_DIM]
        connection.attach_spool(spool)
        wait_for(lambda: len(spool) == 0, 60, "the relay to ack every recorded chunk")
        assert connection.snapshot().rejected == 0
    finally:
        connection.stop()
    keys = CampaignKeys(campaign.id)
    assert int(redis_client.hget(keys.stats, "samples")) == total

    # The learner takes every step (masks included) and learns from them: 697 samples, 128 to start,
    # then one update per 2 samples.
    assert learner_run(campaign_id=campaign.id, max_seconds=8) == "time_limit"
    learner = redis_client.hgetall(keys.learner)
    assert int(learner[b"samples_ingested"]) == total
    assert int(learner[b"updates"]) == (total - 128) // 2 + 1
    assert redis_client.xlen(keys.stream) == 0
    assert ModelVersion.objects.filter(campaign=campaign).exists()
    assert Campaign.objects.get(pk=campaign.pk).status == "running"
