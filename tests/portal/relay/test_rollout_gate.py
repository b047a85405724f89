"""The roll-out gate through the real relay, Redis and DB: a checkpoint that lost clearly more of its
evaluation fights than the best is held back from reconnecting clients and the pages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from client_app import protocol as P
from portal.campaigns.models import Campaign, ModelVersion
from portal.campaigns.services import campaign_redis_sync
from portal.campaigns.tasks import stats_sync_campaign
from tests.portal.relay import test_evaluation
from tests.portal.relay.test_evaluation import arena_chunk, ask_for_evaluation, hand_out
from tests.portal.relay.test_relay import open_session, publish_models, send
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db(transaction=True)

FIGHTS = 20
arena = test_evaluation.arena  # the fixture: a running boss-fight campaign and a machine token on it


def evaluate(ws, redis_client, campaign, version: int, wins: int) -> Campaign:
    """The learner asks for FIGHTS greedy fights of ``version``; the client plays them (``wins`` won)
    through the relay; the stats roll-up copies them into the checkpoint and judges it."""
    ask_for_evaluation(redis_client, campaign, version, episodes=FIGHTS)
    hand_out(ws, FIGHTS, prefix=f"v{version}", version=version, chunk=arena_chunk)
    for i in range(FIGHTS):
        won = i < wins
        outcome = {"win": won, "boss_hp": 0.0 if won else 0.5, "player_hp": 0.5 if won else 0.0}
        result = P.EvalResult(
            id=f"v{version}-e{i}", model_version=version, episode_return=1.0, episode_length=300, outcome=outcome
        )
        assert send(ws, result.to_message())["type"] == P.ACK
    return stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))


def test_a_clearly_worse_checkpoint_is_held_back_and_clients_still_follow_the_newest(
    asgi_server, arena, redis_client, client, staff
):
    campaign, token = arena
    publish_models(campaign, 1, 2)
    with open_session(asgi_server, token[1]) as (ws, _):
        campaign = evaluate(ws, redis_client, campaign, 1, wins=12)  # 60 %
        assert (campaign.eval_version, campaign.agent_version) == (1, None)
        campaign = evaluate(ws, redis_client, campaign, 2, wins=1)  # 5 %: intervals [1, 24] vs [39, 78]
    assert (campaign.eval_version, campaign.agent_version) == (2, 1)
    held = ModelVersion.objects.get(campaign=campaign, version=2)
    assert held.held_back == "held back: v2 won 5% of 20 fights vs best v1's 60% of 20"
    assert ModelVersion.objects.get(campaign=campaign, version=1).held_back == ""

    # Newer versions keep coming between checkpoints; a client that (re)connects starts with the best.
    publish_models(campaign, 3)
    with open_session(asgi_server, token[1]) as (ws, welcome):
        assert welcome["model"]["version"] == 1
        assert welcome["model"]["sha256"] == ModelVersion.objects.get(campaign=campaign, version=1).sha256
        # ...and follows the newest version as soon as one is published.
        publish_models(campaign, 4)
        assert P.unpack(ws.recv(timeout=10))["version"] == 4

    # Everyone sees why on the campaign's history, staff on their dashboard; the campaign page names the agent.
    history = client.get(reverse("campaigns:history", kwargs={"slug": campaign.slug})).content.decode()
    assert "held back: v2 won 5% of 20 fights vs best v1&#x27;s 60% of 20" in history
    detail = client.get(campaign.get_absolute_url()).content.decode()
    assert "data-agent-version" in detail and ">v1<" in detail
    client.force_login(staff)
    dashboard = client.get(reverse("staff:dashboard")).content.decode()
    assert "agent v1: newer held back" in dashboard
    api = client.get(reverse("api:campaign", kwargs={"slug": campaign.slug})).json()
    assert (api["agent_version"], api["model_version"]) == (1, 4)  # the agent, and the newest
    checkpoints = client.get(reverse("api:checkpoints", kwargs={"slug": campaign.slug})).json()["checkpoints"]
    assert {c["version"]: c["held_back"] for c in checkpoints} == {2: held.held_back, 1: ""}

    # A Redis that lost its data gets the gate's choice back from the database (supervisor's repair).
    redis_client.delete(CampaignKeys(campaign.id).agent)
    campaign_redis_sync(campaign=Campaign.objects.get(pk=campaign.pk))
    with open_session(asgi_server, token[1]) as (ws, welcome):
        assert welcome["model"]["version"] == 1

    # An on-policy campaign's staleness bound wins: v1 is 3 versions behind v4, past a bound of 2.
    Campaign.objects.filter(pk=campaign.pk).update(max_policy_lag=2)
    with open_session(asgi_server, token[1]) as (ws, welcome):
        assert welcome["model"]["version"] == 4
    Campaign.objects.filter(pk=campaign.pk).update(max_policy_lag=0)

    # A later checkpoint as good as the best opens the gate again: everyone starts with the newest.
    with open_session(asgi_server, token[1]) as (ws, welcome):
        assert welcome["model"]["version"] == 1  # still held: v1 is within the bound of none
        # A chunk played with the newest (the client had it already) brings its notice after the ack.
        assert send(ws, arena_chunk("catch-up", version=4).to_message())["type"] == P.ACK
        assert P.unpack(ws.recv(timeout=10))["version"] == 4
        campaign = evaluate(ws, redis_client, campaign, 4, wins=11)
    assert (campaign.eval_version, campaign.agent_version) == (4, None)
    with open_session(asgi_server, token[1]) as (ws, welcome):
        assert welcome["model"]["version"] == 4
