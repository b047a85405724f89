"""The real client (a subprocess) against the real relay: every step it plays is stored once."""

from __future__ import annotations

import os
import signal

import pytest

from client_app import protocol as P
from client_app.spool import Spool, spool_key
from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync
from portal.machines.services import token_create
from tests.conftest import start_asgi, start_client, wait_for
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "LunarLander-v2"])
def test_the_client_plays_the_campaign_env_and_every_step_is_counted_once(
    asgi_server, django_user_model, redis_client, tmp_path, env_id
):
    user = django_user_model.objects.create_user("player", "p@example.com", "pw-12345678")
    campaign = campaign_launch(campaign=campaign_create(slug="stream-test", name="Stream test", env_id=env_id))
    campaign_redis_sync(campaign=campaign)
    _, token = token_create(user=user, campaign=campaign, name="rig")

    client = start_client(asgi_server.url, token, tmp_path / "spool", tmp_path, "--max-steps", "700", "--seed", "3")
    try:
        assert client.proc.wait(timeout=120) == 0, client.output()
    finally:
        client.stop()
    output = client.output()
    assert "700 steps" in output  # the progress line at exit

    keys = CampaignKeys(campaign.id)
    stats = redis_client.hgetall(keys.stats)
    assert int(stats[b"samples"]) == 700
    assert int(stats[b"episodes"]) >= 1
    assert redis_client.xlen(keys.stream) == int(stats[b"chunks"])
    assert not list((tmp_path / "spool").rglob("*.chunk")), "acked chunks leave the spool"


def test_a_client_older_than_the_campaigns_minimum_exits_2_with_the_servers_message(
    asgi_server, django_user_model, tmp_path
):
    user = django_user_model.objects.create_user("player", "p@example.com", "pw-12345678")
    campaign = campaign_launch(campaign=campaign_create(slug="gated", name="Gated", env_id="CartPole-v1"))
    campaign.min_client_version = "99.0"
    campaign.save(update_fields=["min_client_version"])
    campaign_redis_sync(campaign=campaign)
    _, token = token_create(user=user, campaign=campaign, name="rig")

    client = start_client(asgi_server.url, token, tmp_path / "spool", tmp_path, "--max-steps", "50")
    try:
        assert client.proc.wait(timeout=60) == 2, client.output()
    finally:
        client.stop()
    output = client.output()
    assert "needs SoulsAI client 99.0 or newer" in output and "/download/" in output
    assert "Traceback" not in output


def test_a_client_killed_mid_stream_and_restarted_stores_every_chunk_exactly_once(
    asgi_server, django_user_model, redis_client, tmp_path
):
    """SIGKILL the real client while the server holds unacked chunks of it, restart it on the same
    spool: every chunk is stored once, and every counter equals what the stream holds."""
    from portal.campaigns.selectors import user_contributions
    from portal.campaigns.tasks import stats_sync_campaign

    user = django_user_model.objects.create_user("player", "p@example.com", "pw-12345678")
    campaign = campaign_launch(campaign=campaign_create(slug="resend", name="Resend", env_id="CartPole-v1"))
    campaign_redis_sync(campaign=campaign)
    machine, token = token_create(user=user, campaign=campaign, name="rig")
    keys = CampaignKeys(campaign.id)
    spool_root = tmp_path / "spool"
    spool_dir = spool_root / spool_key(campaign.slug, machine.prefix)
    server = start_asgi(tmp_path / "server", name="uvicorn-resend")  # its own, to freeze it
    try:
        first = start_client(server.url, token, spool_root, tmp_path, "--max-steps", "100000", "--max-sps", "300",
                           "--seed", "1", name="client-1")
        try:
            wait_for(lambda: int(redis_client.hget(keys.stats, "samples") or 0) >= 200, 60, "the first samples")
            # Freeze the server: frames in flight stay unread, no acks come back, the spool fills.
            os.kill(server.proc.pid, signal.SIGSTOP)
            wait_for(lambda: len(list(spool_dir.glob("*.chunk"))) >= 4, 30, "unacked chunks in the spool")
            os.killpg(first.proc.pid, signal.SIGKILL)
            first.proc.wait(10)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
            first.stop()
        # The thawed server may now store some of what it had received: acks nobody hears.
        spool = Spool(spool_dir)
        left_behind = set(spool.pending())
        spool.close()
        assert len(left_behind) >= 4

        second = start_client(server.url, token, spool_root, tmp_path, "--max-steps", "300", "--seed", "2",
                            name="client-2")
        try:
            assert second.proc.wait(timeout=120) == 0, second.output()
        finally:
            second.stop()
        assert f"holds {len(left_behind)} chunks from an earlier run" in second.output()
    finally:
        server.stop()

    assert not list(spool_dir.glob("*.chunk")), "the restarted client emptied the spool"
    entries = [P.decode_stored_chunk(fields[b"c"]) for _, fields in redis_client.xrange(keys.stream)]
    ids = [chunk.id for chunk in entries]
    assert len(ids) == len(set(ids)), "a chunk was stored twice"
    assert left_behind <= set(ids), "a chunk left in the spool was never stored"
    sessions = {chunk_id.rsplit("-", 1)[0] for chunk_id in ids}
    assert len(sessions) == 2
    second_session = entries[-1].id.rsplit("-", 1)[0]
    assert sum(c.steps for c in entries if c.id.startswith(second_session + "-")) == 300

    samples = sum(c.steps for c in entries)
    episodes = sum(c.episode_done for c in entries)
    stats = redis_client.hgetall(keys.stats)
    assert int(stats[b"samples"]) == samples
    assert int(stats[b"chunks"]) == len(entries)
    assert int(stats[b"episodes"]) == episodes
    # Per machine, per user and per campaign, once rolled up into the database.
    campaign = stats_sync_campaign(campaign=campaign)
    machine.refresh_from_db()
    assert campaign.samples_total == machine.samples == samples
    assert campaign.episodes_total == machine.episodes == episodes
    (mine,) = user_contributions(user=user)
    assert (mine.samples, mine.episodes) == (samples, episodes)


def test_a_rate_limited_client_keeps_its_chunks_and_delivers_them_all(django_user_model, redis_client, tmp_path):
    user = django_user_model.objects.create_user("player", "p@example.com", "pw-12345678")
    campaign = campaign_launch(campaign=campaign_create(slug="limited", name="Limited", env_id="CartPole-v1"))
    campaign_redis_sync(campaign=campaign)
    _, token = token_create(user=user, campaign=campaign, name="rig")
    server = start_asgi(tmp_path / "server", name="uvicorn-limited", env={"SOULSAI_RATE_CHUNKS_PER_S": "4"})
    try:
        client = start_client(server.url, token, tmp_path / "spool", tmp_path, "--max-steps", "300", "--seed", "4")
        try:
            assert client.proc.wait(timeout=120) == 0, client.output()
        finally:
            client.stop()
    finally:
        server.stop()
    output = client.output()
    assert "done: 300 steps" in output and "rejected" not in output
    assert int(redis_client.hget(CampaignKeys(campaign.id).stats, "samples")) == 300
    assert not redis_client.hgetall(CampaignKeys(campaign.id).machine_rejections), "nothing refused for good"
