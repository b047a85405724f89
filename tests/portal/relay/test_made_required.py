"""Issue 12, item 9: a chunk resent after the de-duplication window is never counted twice, old
clients included. The relay asks clients older than 0.2.0 (which send no ``made``) to upgrade, and
refuses a chunk or an evaluation result without ``made``; real websockets, the real ASGI server."""

from __future__ import annotations

import os
import time

import pytest

from client_app import __version__
from client_app import protocol as P
from client_app.protocol.versions import version_older
from client_app.spool import Spool, spool_key
from tests.portal.relay.test_evaluation import ask_for_evaluation, hand_out
from tests.portal.relay.test_relay import (
    expect_close,
    make_chunk,
    open_session,
    publish_models,
    send,
    ws_connect,
)
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db(transaction=True)


def without_made(message: dict) -> dict:
    """The wire form a 0.1.0 client sent: the same message, no ``made``."""
    return {key: value for key, value in message.items() if key != "made"}


def test_the_current_client_is_at_least_the_relays_minimum():
    assert not version_older(__version__, "0.2.0")


def test_a_0_1_0_client_is_asked_to_upgrade_at_hello_and_told_its_data_is_kept(asgi_server, campaign, token):
    assert campaign.min_client_version == "0.1.0"  # the campaign alone would let it in
    with ws_connect(asgi_server, token[1]) as ws:
        ws.send(P.pack(P.hello(client_version="0.1.0", machine="old-rig")))
        error = P.unpack(ws.recv(timeout=10))
        assert (error["type"], error["code"]) == (P.ERROR, P.R_UPGRADE), error
        assert "0.2.0 or newer" in error["message"] and "0.1.0" in error["message"]
        assert "/download/" in error["message"] and "your unsent data is kept" in error["message"]
        assert expect_close(ws) == P.CLOSE_UPGRADE
    # A campaign's own, larger minimum still wins over the relay's.
    campaign.min_client_version = "0.3.0"
    campaign.save(update_fields=["min_client_version"])
    with ws_connect(asgi_server, token[1]) as ws:
        ws.send(P.pack(P.hello(client_version="0.2.0", machine="rig")))
        error = P.unpack(ws.recv(timeout=10))
        assert error["code"] == P.R_UPGRADE and "0.3.0 or newer" in error["message"], error


def test_a_chunk_or_result_without_made_is_refused_and_stored_nowhere(asgi_server, campaign, token, redis_client):
    keys = CampaignKeys(campaign.id)
    publish_models(campaign, 1)
    ask_for_evaluation(redis_client, campaign, 1, episodes=1)
    with open_session(asgi_server, token[1]) as (ws, welcome):
        assert welcome["type"] == P.WELCOME
        samples = int(redis_client.hget(keys.stats, "samples") or 0)
        chunk = send(ws, without_made(make_chunk("no-made", version=1).to_message()))
        samples_after = int(redis_client.hget(keys.stats, "samples") or 0)
        hand_out(ws, 1)  # so that the result below is one this machine was asked for
        result = P.EvalResult(id="e-no-made", model_version=1, episode_return=20.0, episode_length=20)
        answer = send(ws, without_made(result.to_message()))
        # The same result with its 'made' is taken: the refusal was about 'made' alone.
        taken = send(ws, result.to_message())
    assert (chunk["type"], chunk["id"], chunk["code"]) == (P.REJECT, "no-made", P.R_SCHEMA), chunk
    assert "'made'" in chunk["message"] and "0.2.0" in chunk["message"], chunk["message"]
    assert (answer["type"], answer["code"]) == (P.REJECT, P.R_SCHEMA), answer
    assert "'made'" in answer["message"]
    assert taken["type"] == P.ACK, taken
    assert samples_after == samples, "the chunk without 'made' was counted"
    ids = [fields[b"c"] for _, fields in redis_client.xrange(keys.stream)]
    assert not any(P.decode_stored_chunk(c).id == "no-made" for c in ids), "the chunk without 'made' was stored"
    assert redis_client.exists(keys.dedup(token[0].id, "no-made")) == 0


# --- the real client (a subprocess) resends what a 0.1.0 client left in its spool ------------------

DAY = 24 * 3600


def _client_resends_an_old_spool(asgi_server, django_user_model, redis_client, tmp_path, *, age_s: int):
    """Leave a 0.1.0 frame (no ``made``) in the spool, spooled ``age_s`` ago, and run the current client
    on it: returns (the spooled time, the stream's chunks, the client's output, the campaign's keys)."""
    from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync
    from portal.machines.services import token_create
    from tests.conftest import start_client

    user = django_user_model.objects.create_user("player", "p@example.com", "pw-12345678")
    campaign = campaign_launch(campaign=campaign_create(slug="old-spool", name="Old spool", env_id="CartPole-v1"))
    campaign_redis_sync(campaign=campaign)
    machine, raw_token = token_create(user=user, campaign=campaign, name="rig")
    spool_root = tmp_path / "spool"
    spool_dir = spool_root / spool_key(campaign.slug, machine.prefix)
    spool = Spool(spool_dir)
    assert spool.add("old-client-0", P.pack(without_made(make_chunk("old-client-0").to_message())))
    spool.close()
    (path,) = spool_dir.glob("*.chunk")
    spooled = int(time.time()) - age_s
    os.utime(path, (spooled, spooled))

    client = start_client(asgi_server.url, raw_token, spool_root, tmp_path, "--max-steps", "40", "--seed", "5")
    try:
        assert client.proc.wait(timeout=120) == 0, client.output()
    finally:
        client.stop()
    assert not list(spool_dir.glob("*.chunk")), "the client emptied its spool"
    keys = CampaignKeys(campaign.id)
    entries = [P.decode_stored_chunk(fields[b"c"]) for _, fields in redis_client.xrange(keys.stream)]
    return spooled, entries, client.output(), keys


def test_a_0_1_0_frame_left_in_the_spool_is_resent_with_its_spooling_time_and_stored_once(
    asgi_server, django_user_model, redis_client, tmp_path
):
    spooled, entries, output, keys = _client_resends_an_old_spool(
        asgi_server, django_user_model, redis_client, tmp_path, age_s=2 * DAY
    )
    old = [chunk for chunk in entries if chunk.id == "old-client-0"]
    assert len(old) == 1, output
    assert old[0].made == spooled, "made is the spool file's modification time"
    assert int(redis_client.hget(keys.stats, "samples")) == 40 + 8 == sum(c.steps for c in entries)


def test_a_0_1_0_frame_spooled_7_days_ago_is_refused_as_expired_dropped_and_counted_nowhere(
    asgi_server, django_user_model, redis_client, tmp_path
):
    _, entries, output, keys = _client_resends_an_old_spool(
        asgi_server, django_user_model, redis_client, tmp_path, age_s=7 * DAY
    )
    assert "old-client-0" not in {chunk.id for chunk in entries}
    assert "expired" in output, output
    assert int(redis_client.hget(keys.stats, "samples")) == 40 == sum(c.steps for c in entries)
    assert int(redis_client.hget(keys.stats, "chunks")) == len(entries) == redis_client.xlen(keys.stream)
