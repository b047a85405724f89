"""The relay while Redis is down (killed, then back from its append-only file): a clear refusal the
client retries, nothing half-written, and every chunk stored exactly once once Redis is back.

A real ASGI server on a Redis of its own (Debian's redis-server with deploy/redis/redis.conf,
harness/redis_server.py), holding a copy of the test Redis's campaign keys.
"""

from __future__ import annotations

import os

import pytest
from websockets.exceptions import ConnectionClosed

from client_app import protocol as P
from client_app.protocol.codes import CLOSE_TRY_AGAIN
from harness.redis_server import redis_server_missing, start_redis_server
from tests.conftest import start_asgi
from tests.portal.relay.test_relay import make_chunk, open_session, send
from trainer.keys import CampaignKeys

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def own_redis(tmp_path, redis_client, campaign):
    missing = redis_server_missing()
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    server = start_redis_server(tmp_path / "redis")
    copy = server.client()
    for key in redis_client.scan_iter():  # the campaign's state, as campaign_redis_sync wrote it
        copy.restore(key, 0, redis_client.dump(key), replace=True)
    yield server
    server.stop()


def test_chunks_are_refused_for_now_while_redis_is_down_and_stored_once_after(
    tmp_path, own_redis, campaign, token
):
    server = start_asgi(tmp_path, name="relay", env={"REDIS_URL": own_redis.url})
    try:
        with open_session(server, token[1]) as (ws, welcome):
            assert welcome["type"] == P.WELCOME
            first = make_chunk("c-1")
            assert send(ws, first.to_message())["type"] == P.ACK

            own_redis.kill()
            refused = send(ws, make_chunk("c-2").to_message())
            # Refused for now, with a code the client keeps the chunk for, and the connection stays.
            assert refused["type"] == P.REJECT and refused["id"] == "c-2"
            assert refused["code"] in P.RETRY_LATER_CODES and refused["wait_ms"] > 0
            assert "send it again" in refused["message"]

            # A new connection meanwhile is closed with "try again later", which the client retries.
            with pytest.raises(ConnectionClosed) as closed:
                with open_session(server, token[1]) as (other, _):
                    other.recv(timeout=10)
            assert closed.value.rcvd.code == CLOSE_TRY_AGAIN

            restarted = own_redis.restart()
            try:
                again = send(ws, make_chunk("c-2").to_message())
                if again["type"] == P.REJECT:  # the connection pool's first try after the restart
                    again = send(ws, make_chunk("c-2").to_message())
                assert again["type"] == P.ACK and again["duplicate"] is False
                # What was acked before the kill came back from the append-only file.
                assert send(ws, first.to_message())["duplicate"] is True
                keys = CampaignKeys(campaign.id)
                assert restarted.client().xlen(keys.stream) == 2
            finally:
                restarted.stop()
        assert "unexpected error" not in server.output()
    finally:
        server.stop()
