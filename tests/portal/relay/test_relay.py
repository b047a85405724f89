"""The relay over real websockets, against the real ASGI server, Redis and database."""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from client_app import __version__
from client_app import protocol as P
from client_app.policy import QNetworkSpec, save_model
from portal.campaigns.services import model_publish
from portal.machines.services import token_revoke
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db(transaction=True)


def ws_connect(asgi_server, raw_token: str, *, source: str | None = None):
    """``source``: the loopback address to connect from (127.x.y.z), for tests that count per address."""
    return connect(
        asgi_server.ws_url, additional_headers={"Authorization": f"Bearer {raw_token}"}, open_timeout=10,
        **({"source_address": (source, 0)} if source else {}),
    )  # fmt: skip


@contextmanager
def open_session(asgi_server, raw_token: str, *, protocol: int = P.PROTOCOL_VERSION, source: str | None = None):
    """A connection after the handshake: yields (websocket, the server's answer to hello)."""
    with ws_connect(asgi_server, raw_token, source=source) as ws:
        hello = P.hello(client_version=__version__, machine="test-rig")
        hello["protocol"] = protocol
        ws.send(P.pack(hello))
        yield ws, P.unpack(ws.recv(timeout=10))


def make_chunk(chunk_id: str, steps: int = 8, *, done: bool = False, version: int = 0) -> P.Chunk:
    rng = np.random.default_rng(abs(hash(chunk_id)) % 2**32)
    return P.Chunk(
        id=chunk_id,
        model_version=version,
        obs=rng.normal(0, 0.05, size=(steps + 1, 4)).astype(np.float32),
        actions=rng.integers(0, 2, size=steps).astype(np.int64),
        rewards=np.ones(steps, dtype=np.float32),
        terminated=done,
        episode_return=float(steps) if done else None,
        episode_length=steps if done else None,
    )


def send(ws, message) -> dict:
    ws.send(P.pack(message) if isinstance(message, dict) else message)
    return P.unpack(ws.recv(timeout=10))


def test_welcome_describes_the_campaign_and_its_spaces(asgi_server, campaign, token):
    with open_session(asgi_server, token[1]) as (ws, welcome):
        assert welcome["type"] == P.WELCOME
        assert welcome["campaign"]["slug"] == "relay-test"
        assert welcome["campaign"]["env_id"] == "CartPole-v1"
        assert welcome["spaces"]["action"] == {"type": "discrete", "n": 2, "start": 0}
        assert welcome["spaces"]["observation"]["shape"] == [4]
        # Read back from the database (jsonb on PostgreSQL), bounds are still floats or null.
        assert welcome["spaces"]["observation"]["high"][1] is None
        assert isinstance(welcome["spaces"]["observation"]["high"][0], float)
        assert welcome["model"] is None
        assert welcome["machine"]["prefix"] == token[0].prefix
    token[0].refresh_from_db()
    assert token[0].client_version == __version__


def test_chunk_is_acked_stored_and_counted_once_even_when_resent(asgi_server, campaign, token, redis_client):
    keys = CampaignKeys(campaign.id)
    with open_session(asgi_server, token[1]) as (ws, _):
        first = make_chunk("s1-0", steps=8)
        ack = send(ws, first.to_message())
        assert ack == {"type": P.ACK, "id": "s1-0", "duplicate": False, "model_version": 0, "wait_ms": 0}
        again = send(ws, first.to_message())
        assert again["type"] == P.ACK and again["duplicate"] is True
        last = send(ws, make_chunk("s1-1", steps=5, done=True).to_message())
        assert last["type"] == P.ACK and last["duplicate"] is False

    # A new connection (a client that reconnected) resending an acked chunk: still stored once.
    with open_session(asgi_server, token[1]) as (ws, _):
        assert send(ws, first.to_message())["duplicate"] is True

    assert redis_client.xlen(keys.stream) == 2
    stats = redis_client.hgetall(keys.stats)
    assert int(stats[b"samples"]) == 13
    assert int(stats[b"episodes"]) == 1
    assert int(redis_client.hget(keys.machine_samples, str(token[0].id))) == 13
    # What the learner reads back is the chunk the client sent, bit for bit.
    _, fields = redis_client.xrange(keys.stream)[0]
    stored = P.decode_stored_chunk(fields[b"c"])
    np.testing.assert_array_equal(stored.obs, first.obs)
    np.testing.assert_array_equal(stored.actions, first.actions)


@pytest.mark.parametrize(
    "mutate, code",
    [
        (lambda m: m.update(obs=np.zeros((5, 4), np.float32)), P.R_SHAPE),
        (lambda m: m.update(obs=np.zeros((9, 4), np.float64)), P.R_DTYPE),
        (lambda m: m.update(actions=np.full(8, 2, np.int64)), P.R_OUT_OF_RANGE),
        (lambda m: m.update(rewards=np.full(8, np.nan, np.float32)), P.R_NOT_FINITE),
        (lambda m: m.update(obs={"dtype": "<f4", "shape": [10**6, 4], "data": b"\0" * 16}), P.R_SHAPE),
        (lambda m: m.update(obs={"dtype": "|O", "shape": [9, 4], "data": b""}), P.R_DTYPE),
        (lambda m: m.update(model_version=7), P.R_MODEL_VERSION),
        (lambda m: m.update(terminated=True), P.R_SCHEMA),
        (lambda m: m.pop("actions"), P.R_SCHEMA),
    ],
)
def test_bad_chunks_are_rejected_with_a_reason_and_the_connection_stays_usable(
    asgi_server, campaign, token, redis_client, mutate, code
):
    with open_session(asgi_server, token[1]) as (ws, _):
        message = make_chunk("bad-1").to_message()
        mutate(message)
        reply = send(ws, message)
        assert reply["type"] == P.REJECT
        assert reply["code"] == code
        assert reply["message"]
        assert send(ws, make_chunk("good-1").to_message())["type"] == P.ACK
    assert redis_client.xlen(CampaignKeys(campaign.id).stream) == 1


def test_garbage_frames_and_unknown_types_are_rejected(asgi_server, campaign, token):
    with open_session(asgi_server, token[1]) as (ws, _):
        assert send(ws, b"\xc1\xff\x00")["code"] == P.R_MALFORMED
        assert send(ws, P.pack([1, 2, 3]))["code"] == P.R_MALFORMED
        assert send(ws, {"type": "launch-missiles"})["code"] == P.R_SCHEMA
        assert send(ws, make_chunk("ok-after-garbage").to_message())["type"] == P.ACK


@pytest.mark.parametrize("raw", ["", "sai_nothere_xxxxxxxx", "not-a-token"])
def test_unknown_tokens_are_refused_with_a_readable_message(asgi_server, campaign, raw):
    with ws_connect(asgi_server, raw) as ws:
        error = P.unpack(ws.recv(timeout=10))
        assert error["type"] == P.ERROR and error["code"] == P.R_AUTH
        assert "token" in error["message"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == P.CLOSE_AUTH


def test_a_revoked_token_is_refused(asgi_server, campaign, token):
    token_revoke(token=token[0])
    with ws_connect(asgi_server, token[1]) as ws:
        assert P.unpack(ws.recv(timeout=10))["code"] == P.R_AUTH


def test_an_old_protocol_is_told_to_upgrade(asgi_server, campaign, token):
    with open_session(asgi_server, token[1], protocol=0) as (ws, error):
        assert error["type"] == P.ERROR and error["code"] == P.R_UPGRADE
        assert "/download/" in error["message"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == P.CLOSE_UPGRADE


def test_a_stopped_campaign_refuses_clients(asgi_server, campaign, token):
    from portal.campaigns.services import campaign_stop

    campaign_stop(campaign=campaign)
    with open_session(asgi_server, token[1]) as (ws, error):
        assert error["code"] == P.R_CLOSED
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == P.CLOSE_CLOSED


def test_connected_clients_hear_of_a_new_model_and_acks_carry_its_version(asgi_server, campaign, token):
    spec = QNetworkSpec(obs_dim=4, n_actions=2, hidden=(8,))
    params = {k: np.zeros(s, np.float32) for k, s in spec.parameter_shapes().items()}
    with open_session(asgi_server, token[1]) as (ws, _):
        model = model_publish(campaign_id=campaign.id, version=1, weights=save_model(spec, params, version=1, epsilon=0.5))
        notice = P.unpack(ws.recv(timeout=10))
        assert notice == {"type": P.MODEL, "version": 1, "url": model.get_absolute_url(), "sha256": model.sha256}
        ack = send(ws, make_chunk("after-model", version=1).to_message())
        assert ack["type"] == P.ACK and ack["model_version"] == 1
    # A client connecting later gets the current model in its welcome.
    with open_session(asgi_server, token[1]) as (ws, welcome):
        assert welcome["model"]["version"] == 1


def publish_models(campaign, *versions: int) -> None:
    spec = QNetworkSpec(obs_dim=4, n_actions=2, hidden=(8,))
    params = {k: np.zeros(s, np.float32) for k, s in spec.parameter_shapes().items()}
    for version in versions:
        model_publish(campaign_id=campaign.id, version=version, weights=save_model(spec, params, version=version, epsilon=0.5))


def expect_close(ws) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=10)
    return closed.value.rcvd.code


def test_a_client_older_than_the_campaigns_minimum_is_told_what_to_install(asgi_server, campaign, token):
    campaign.min_client_version = "0.10.0"  # numerically newer than 0.9.3, though not as a string
    campaign.save(update_fields=["min_client_version"])
    with ws_connect(asgi_server, token[1]) as ws:
        ws.send(P.pack({**P.hello(client_version="0.9.3", machine="old-rig")}))
        error = P.unpack(ws.recv(timeout=10))
        assert error["type"] == P.ERROR and error["code"] == P.R_UPGRADE
        assert "0.10.0" in error["message"] and "0.9.3" in error["message"]
        assert "/download/" in error["message"]
        assert expect_close(ws) == P.CLOSE_UPGRADE
    # The minimum itself is welcome.
    with ws_connect(asgi_server, token[1]) as ws:
        ws.send(P.pack(P.hello(client_version="0.10.0", machine="new-rig")))
        assert P.unpack(ws.recv(timeout=10))["type"] == P.WELCOME


def test_chunks_of_a_model_older_than_the_policy_lag_allows_are_refused(asgi_server, campaign, token, redis_client):
    campaign.max_policy_lag = 1
    campaign.save(update_fields=["max_policy_lag"])
    publish_models(campaign, 1, 2, 3)
    with open_session(asgi_server, token[1]) as (ws, welcome):
        assert welcome["model"]["version"] == 3
        stale = send(ws, make_chunk("played-by-v1", version=1).to_message())
        assert stale["type"] == P.REJECT and stale["code"] == P.R_MODEL_VERSION
        assert "too old" in stale["message"]
        assert send(ws, make_chunk("played-by-v2", version=2).to_message())["type"] == P.ACK
        assert send(ws, make_chunk("played-by-v3", version=3).to_message())["type"] == P.ACK
    assert redis_client.xlen(CampaignKeys(campaign.id).stream) == 2


def test_a_token_revoked_while_connected_is_dropped_at_once(asgi_server, campaign, token, redis_client):
    with open_session(asgi_server, token[1]) as (ws, _):
        assert send(ws, make_chunk("before-revoke").to_message())["type"] == P.ACK
        token_revoke(token=token[0])  # on commit: Redis revocation set + one notice to every process
        error = P.unpack(ws.recv(timeout=10))
        assert error["type"] == P.ERROR and error["code"] == P.R_AUTH
        assert "revoked" in error["message"]
        assert expect_close(ws) == P.CLOSE_AUTH
    assert redis_client.xlen(CampaignKeys(campaign.id).stream) == 1


def test_a_raised_minimum_client_version_closes_older_connected_clients_only(asgi_server, campaign, token, redis_client):
    """Staff raise the campaign's minimum (the admin calls campaign_min_client_announce): a connected
    client that is now too old is told to upgrade and closed, as it would be refused at hello; a
    minimum it meets leaves it streaming."""
    from portal.campaigns.services import campaign_min_client_announce

    with open_session(asgi_server, token[1]) as (ws, _):
        campaign.min_client_version = __version__
        campaign.save(update_fields=["min_client_version"])
        campaign_min_client_announce(campaign=campaign)
        assert send(ws, make_chunk("meets-the-minimum").to_message())["type"] == P.ACK
        campaign.min_client_version = "9.0.0"
        campaign.save(update_fields=["min_client_version"])
        campaign_min_client_announce(campaign=campaign)
        error = P.unpack(ws.recv(timeout=10))
        assert error["type"] == P.ERROR and error["code"] == P.R_UPGRADE
        assert f"now needs SoulsAI client 9.0.0 or newer; this one is {__version__}" in error["message"]
        assert expect_close(ws) == P.CLOSE_UPGRADE
    assert redis_client.xlen(CampaignKeys(campaign.id).stream) == 1


def test_a_revoked_token_stores_nothing_even_if_its_notice_was_missed(asgi_server, campaign, token, redis_client):
    keys = CampaignKeys(campaign.id)
    with open_session(asgi_server, token[1]) as (ws, _):
        # What token_revoke writes, without the notice (as for a process whose subscription was down).
        redis_client.sadd(keys.revoked, token[0].id)
        ws.send(P.pack(make_chunk("after-revoke").to_message()))
        error = P.unpack(ws.recv(timeout=10))
        assert error["type"] == P.ERROR and error["code"] == P.R_AUTH
        assert expect_close(ws) == P.CLOSE_AUTH
    assert redis_client.xlen(keys.stream) == 0


def test_a_machine_that_keeps_sending_bad_data_is_counted_flagged_and_throttled(
    asgi_server, campaign, token, volunteer, redis_client, client, settings
):
    from portal.campaigns.tasks import stats_sync_campaign
    from portal.machines.services import token_unflag

    threshold = settings.SOULSAI_FLAG_REJECTIONS
    with open_session(asgi_server, token[1]) as (ws, _):
        assert send(ws, make_chunk("good-0").to_message())["wait_ms"] == 0
        for i in range(threshold):
            bad = make_chunk(f"bad-{i}").to_message()
            bad["rewards"] = np.full(8, np.inf, np.float32)
            reply = send(ws, bad)
            assert reply["type"] == P.REJECT and reply["code"] == P.R_NOT_FINITE
            assert reply["wait_ms"] == (settings.SOULSAI_FLAG_WAIT_MS if i == threshold - 1 else 0)
        # Flagged: its rate limit drops to SOULSAI_FLAG_RATE_CHUNKS_PER_S (refused frames counted too),
        # every answer holds it back, and good chunks are still taken. The limit counts per one-second
        # window: the bad frames above may have ended in the previous one (a loaded CI machine), so
        # good chunks go until one is held, which two windows' worth bounds.
        flagged_rate = settings.SOULSAI_FLAG_RATE_CHUNKS_PER_S
        taken = 0
        for i in range(2 * flagged_rate + 1):
            held = send(ws, make_chunk(f"good-1-{i}").to_message())
            assert held["wait_ms"] >= settings.SOULSAI_FLAG_WAIT_MS, held
            if held["type"] == P.REJECT:
                break
            assert held["type"] == P.ACK
            taken += 1
        assert held["type"] == P.REJECT and held["code"] == P.R_RATE_LIMITED, held
        assert held["wait_ms"] > settings.SOULSAI_FLAG_WAIT_MS
        time.sleep((held["wait_ms"] - settings.SOULSAI_FLAG_WAIT_MS) / 1000)
        ack = send(ws, make_chunk("good-1").to_message())
        assert ack["type"] == P.ACK and ack["wait_ms"] >= settings.SOULSAI_FLAG_WAIT_MS

        stats_sync_campaign(campaign=campaign)
        token[0].refresh_from_db()
        assert token[0].rejections == threshold and token[0].flagged_at is not None
        client.force_login(volunteer)
        page = client.get("/accounts/profile/").content.decode()
        assert "Flagged" in page

        token_unflag(token=token[0])  # staff looked into it
        assert send(ws, make_chunk("good-2").to_message())["wait_ms"] == 0
    token[0].refresh_from_db()
    assert token[0].flagged_at is None and token[0].rejections == threshold
    assert redis_client.xlen(CampaignKeys(campaign.id).stream) == 3 + taken
