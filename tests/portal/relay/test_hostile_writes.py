"""What a hostile volunteer can write through the relay (issue 12): over real websockets, against the
real ASGI server, Redis and database. Whether something got through is read from Redis afterwards,
not from the answer alone."""

from __future__ import annotations

import time
import urllib.request

import msgpack
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from client_app import protocol as P
from portal.campaigns.models import Campaign
from portal.campaigns.tasks import stats_sync_campaign
from portal.machines.services import token_create
from tests.portal.relay.test_evaluation import ask_for_evaluation, hand_out
from tests.portal.relay.test_relay import expect_close, make_chunk, open_session, publish_models, send
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def other_token(campaign, django_user_model):
    """A second volunteer's machine on the same campaign."""
    user = django_user_model.objects.create_user("vol2", "vol2@example.com", "pw-12345678")
    return token_create(user=user, campaign=campaign, name="rig-2")


def result(result_id: str, *, version: int = 1, ret: float = 200.0, length: int = 200, outcome=None) -> dict:
    return P.EvalResult(
        id=result_id, model_version=version, episode_return=ret, episode_length=length, outcome=outcome
    ).to_message()


def eval_keys(redis_client, campaign) -> list[bytes]:
    tag = CampaignKeys(campaign.id).tag
    return sorted(k for k in redis_client.keys(f"{tag}:*") if b"eval" in k.split(b"}")[1])


# --- item 1: evaluation results -------------------------------------------------------------------


def test_an_evaluation_result_nobody_handed_out_is_refused_and_writes_nothing(
    asgi_server, campaign, token, redis_client
):
    publish_models(campaign, 1)
    ask_for_evaluation(redis_client, campaign, 1, episodes=2)
    before = eval_keys(redis_client, campaign)
    with open_session(asgi_server, token[1]) as (ws, _):
        forged = send(ws, result("forged-1", ret=500.0, length=500))
    assert (forged["type"], forged.get("code")) == (P.REJECT, P.R_NOT_REQUESTED), forged
    keys = CampaignKeys(campaign.id)
    assert eval_keys(redis_client, campaign) == before, "a refused result leaves no key behind"
    assert redis_client.hget(keys.evals(1), "episodes") is None
    assert redis_client.hget(keys.stats, "eval_episodes") is None
    campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    assert campaign.eval_return is None


def test_a_machine_answers_only_as_many_evaluations_as_it_was_handed(
    asgi_server, campaign, token, other_token, redis_client
):
    publish_models(campaign, 1)
    ask_for_evaluation(redis_client, campaign, 1, episodes=3)
    with open_session(asgi_server, token[1]) as (ws, _):
        hand_out(ws, 1)
        first = send(ws, result("mine-1"))
        again = send(ws, result("mine-1"))  # the resend of an acked result is still acked
        second = send(ws, result("mine-2"))  # one more than it was handed
    with open_session(asgi_server, other_token[1]) as (ws, _):
        stranger = send(ws, result("theirs-1"))  # handed nothing
    assert (first["type"], first["duplicate"], again["duplicate"]) == (P.ACK, False, True)
    assert (second["type"], second["code"]) == (P.REJECT, P.R_NOT_REQUESTED)
    assert (stranger["type"], stranger["code"]) == (P.REJECT, P.R_NOT_REQUESTED)
    assert int(redis_client.hget(CampaignKeys(campaign.id).evals(1), "episodes")) == 1


def test_evaluation_results_pass_the_same_gate_as_chunks(asgi_server, campaign, token, redis_client):
    publish_models(campaign, 1)
    ask_for_evaluation(redis_client, campaign, 1, episodes=4)
    keys = CampaignKeys(campaign.id)
    with open_session(asgi_server, token[1]) as (ws, _):
        hand_out(ws, 3)
        # Over the machine's rate limit (this second's counter, and the next's, already full).
        now = int(time.time())
        for second in (now, now + 1, now + 2):
            redis_client.set(keys.rate(token[0].id, second), 10**6, ex=5)
        limited = send(ws, result("gate-1"))
        for second in (now, now + 1, now + 2):
            redis_client.delete(keys.rate(token[0].id, second))
        redis_client.set(keys.status, "stopped")  # as campaign_stop writes it, its notice missed
        stopped = send(ws, result("gate-2"))
        redis_client.set(keys.status, "running")
        redis_client.sadd(keys.revoked, token[0].id)  # as token_revoke writes it, its notice missed
        ws.send(P.pack(result("gate-3")))
        error = P.unpack(ws.recv(timeout=10))
        assert (error["type"], error["code"]) == (P.ERROR, P.R_AUTH)
        assert expect_close(ws) == P.CLOSE_AUTH
    assert (limited["type"], limited["code"]) == (P.REJECT, P.R_RATE_LIMITED)
    assert (stopped["type"], stopped["code"]) == (P.REJECT, P.R_NOT_RUNNING)
    assert redis_client.hget(keys.evals(1), "episodes") is None


@pytest.mark.parametrize(
    ("fields", "code", "words"),
    [
        ({"return": 424242.0, "length": 100}, P.R_OUT_OF_RANGE, "100 steps can produce"),
        ({"return": 99.0, "length": 100}, P.R_OUT_OF_RANGE, "between 100 and 100"),  # CartPole: return == length
        ({"return": 600.0, "length": 600}, P.R_OUT_OF_RANGE, "longer than this environment's episodes (500"),
        ({"outcome": {"win": True, "boss_hp": 0.0, "player_hp": 1.0}}, P.R_SCHEMA, "boss fights only"),
    ],
)
def test_an_evaluation_result_the_environment_cannot_produce_is_refused(
    asgi_server, campaign, token, redis_client, fields, code, words
):
    publish_models(campaign, 1)
    ask_for_evaluation(redis_client, campaign, 1, episodes=1)
    with open_session(asgi_server, token[1]) as (ws, _):
        hand_out(ws, 1)
        answer = send(ws, {**result("implausible"), **fields})
        honest = send(ws, result("honest", ret=180.0, length=180))  # the hand-out is still there
    assert (answer["type"], answer["code"]) == (P.REJECT, code), answer
    assert words in answer["message"]
    assert honest["type"] == P.ACK
    campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    assert (campaign.eval_version, campaign.eval_return) == (1, 180.0)


# --- items 2 and 3: what an episode's chunks may claim ------------------------------------------


def test_every_environment_a_campaign_may_run_has_its_bounds():
    from portal.campaigns.services import SUPPORTED_ENVS

    assert set(SUPPORTED_ENVS) <= set(P.ENV_BOUNDS)


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"episode": {"return": 1e308, "length": 8}}, P.R_OUT_OF_RANGE, "8 steps can produce"),
        ({"episode": {"return": 9.0, "length": 8}}, P.R_OUT_OF_RANGE, "between 8 and 8"),
        ({"episode": {"return": 501.0, "length": 501}}, P.R_OUT_OF_RANGE, "longer than this environment's"),
        ({"rewards": np.full(8, 2.0, np.float32)}, P.R_OUT_OF_RANGE, "what one step of this environment can pay"),
        (
            {"episode": {"return": 8.0, "length": 8, "outcome": {"win": True, "boss_hp": 0.0, "player_hp": 1.0}}},
            P.R_SCHEMA,
            "boss fights only",
        ),
    ],
)
def test_an_episode_its_steps_could_not_have_produced_is_refused(
    asgi_server, campaign, token, redis_client, change, code, words
):
    message = {**make_chunk("liar", done=True).to_message(), **change}
    with open_session(asgi_server, token[1]) as (ws, _):
        answer = send(ws, message)
        assert send(ws, make_chunk("honest", done=True).to_message())["type"] == P.ACK
    assert (answer["type"], answer["code"]) == (P.REJECT, code), answer
    assert words in answer["message"]
    keys = CampaignKeys(campaign.id)
    assert redis_client.lrange(keys.returns, 0, -1) == [b"8.0"]
    assert redis_client.hget(keys.stats, "fights") is None and redis_client.llen(keys.outcomes) == 0
    campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    assert campaign.win_rate_recent is None


# --- item 4: only what was validated is stored ------------------------------------------------------


def test_unknown_keys_are_not_stored(asgi_server, campaign, token, redis_client):
    padded = {**make_chunk("padded").to_message(), "junk": b"x" * (1 << 20), "more": {"a": 1}}
    with open_session(asgi_server, token[1]) as (ws, _):
        assert send(ws, padded)["type"] == P.ACK
    [(_, fields)] = redis_client.xrange(CampaignKeys(campaign.id).stream)
    stored = msgpack.unpackb(fields[b"c"], raw=False)
    assert set(stored) <= {"type", "id", "model_version", "obs", "actions", "rewards", "terminated", "truncated",
                           "episode", "masks", "logp", "made"}  # fmt: skip
    assert len(fields[b"c"]) < 1000


def test_the_embedded_redis_runs_with_maxmemory_and_noeviction(tmp_path):
    """The server `make run` starts (whatever REDIS_URL the suite itself runs against)."""
    import redis

    from harness import free_port
    from portal.core.embedded import start_embedded_redis

    port = free_port()
    proc = start_embedded_redis(port=port, data_dir=tmp_path / "redis")
    try:
        config = redis.Redis(port=port).config_get("maxmemory*")
        assert int(config["maxmemory"]) > 0
        assert config["maxmemory-policy"] == "noeviction"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- item 5: a budget before and while decoding ------------------------------------------------------


def empty_maps_frame() -> bytes:
    """~8 MiB holding some 8 million empty maps: what grew the relay by 567 MiB before."""
    frame = msgpack.packb({"type": "chunk", **{f"k{i}": [[{}] * 4096] * 2 for i in range(1000)}})
    assert len(frame) <= P.MAX_FRAME_BYTES
    return frame


def healthz_answers(asgi_server) -> bool:
    with urllib.request.urlopen(asgi_server.url + "/healthz", timeout=5) as response:
        return response.status == 200


def nested_maps_frame() -> bytes:
    """Two million empty maps in arrays of 8, nested 7 deep: within every per-container limit."""
    inner: object = {}
    for _ in range(7):
        inner = [inner] * 8
    return msgpack.packb({"type": "chunk", "id": "nested", "x": inner})


def test_a_frame_of_millions_of_empty_maps_is_refused_cheaply(asgi_server, campaign, token):
    with open_session(asgi_server, token[1]) as (ws, _):
        answers = [send(ws, empty_maps_frame()), send(ws, nested_maps_frame())]
        assert healthz_answers(asgi_server)
        assert send(ws, make_chunk("after").to_message())["type"] == P.ACK  # the connection stays usable
    assert [(a["type"], a["code"]) for a in answers] == [(P.REJECT, P.R_MALFORMED)] * 2, answers
    assert "maps and arrays" in answers[1]["message"]


def test_a_connection_that_keeps_sending_garbage_is_slowed_then_closed(asgi_server, campaign, token):
    with open_session(asgi_server, token[1]) as (ws, _):
        answers = []
        with pytest.raises(ConnectionClosed):
            for _ in range(200):
                ws.send(b"\xc1 not msgpack")
                answers.append(P.unpack(ws.recv(timeout=10)))
        code = ws.close_code
    rejects = [a for a in answers if a["type"] == P.REJECT]
    assert rejects and all(a["code"] == P.R_MALFORMED for a in rejects)
    assert len(rejects) < 60
    assert answers[-1]["type"] == P.ERROR and answers[-1]["code"] == P.R_ABUSE
    assert "could not be read" in answers[-1]["message"]
    assert code == P.CLOSE_PROTOCOL
    assert healthz_answers(asgi_server)


# --- item 7: a shape whose size overflows ------------------------------------------------------------


def test_a_shape_whose_size_overflows_is_a_shape_refusal(asgi_server, campaign, token):
    message = make_chunk("huge").to_message()
    message["obs"] = {"dtype": "<f4", "shape": [0, 8388608, 8388608, 8388608], "data": b""}
    with open_session(asgi_server, token[1]) as (ws, _):
        answer = send(ws, message)
        assert (answer["type"], answer.get("code")) == (P.REJECT, P.R_SHAPE), answer
        assert send(ws, make_chunk("after").to_message())["type"] == P.ACK


# --- item 9: ids are the machine's own ----------------------------------------------------------------


def test_another_machines_chunk_id_never_makes_yours_a_duplicate(
    asgi_server, campaign, token, other_token, redis_client
):
    with open_session(asgi_server, other_token[1]) as (ws, _):
        assert send(ws, make_chunk("same-id").to_message())["duplicate"] is False
    with open_session(asgi_server, token[1]) as (ws, _):
        mine = send(ws, make_chunk("same-id").to_message())
        again = send(ws, make_chunk("same-id").to_message())
    assert (mine["type"], mine["duplicate"], again["duplicate"]) == (P.ACK, False, True)
    keys = CampaignKeys(campaign.id)
    assert redis_client.xlen(keys.stream) == 2
    assert int(redis_client.hget(keys.stats, "samples")) == 16


def test_evaluation_ids_have_their_own_namespace(asgi_server, campaign, token, redis_client):
    publish_models(campaign, 1)
    ask_for_evaluation(redis_client, campaign, 1, episodes=1)
    with open_session(asgi_server, token[1]) as (ws, _):
        assert send(ws, make_chunk("eval:r-1", version=1).to_message())["type"] == P.ACK  # a chunk id
        hand_out(ws, 1)
        answer = send(ws, result("r-1"))
    assert (answer["type"], answer["duplicate"]) == (P.ACK, False)
    assert int(redis_client.hget(CampaignKeys(campaign.id).evals(1), "episodes")) == 1


def test_a_chunk_made_before_the_deduplication_window_is_never_counted_twice(
    asgi_server, campaign, token, redis_client
):
    keys = CampaignKeys(campaign.id)
    day = 24 * 3600
    now = int(time.time())
    with open_session(asgi_server, token[1]) as (ws, _):
        first = send(ws, {**make_chunk("kept-5-days").to_message(), "made": now - 5 * day})
        # Its id is remembered longer than a chunk may be old plus how far a clock may be ahead.
        assert redis_client.ttl(keys.dedup(token[0].id, "kept-5-days")) > P.MAX_AGE_S + P.MAX_AHEAD_S
        # The same chunk 7 days later, after the server forgot its id: refused, counted nowhere.
        redis_client.delete(keys.dedup(token[0].id, "kept-5-days"))
        late = send(ws, {**make_chunk("kept-5-days").to_message(), "made": now - 7 * day})
        ahead = send(ws, {**make_chunk("from-the-future").to_message(), "made": now + 3 * day})
        legacy = {key: v for key, v in make_chunk("no-made-time").to_message().items() if key != "made"}
        legacy = send(ws, legacy)  # what a 0.1.0 client sent: no 'made' (tests/portal/relay/test_made_required.py)
    assert first["type"] == P.ACK
    assert (late["type"], late["code"]) == (P.REJECT, P.R_EXPIRED), late
    assert "counted nowhere" in late["message"]
    assert (ahead["type"], ahead["code"]) == (P.REJECT, P.R_OUT_OF_RANGE)
    assert "clock" in ahead["message"]
    assert (legacy["type"], legacy["code"]) == (P.REJECT, P.R_SCHEMA), legacy  # was an ack before 0.2.0
    assert int(redis_client.hget(keys.stats, "samples")) == 8
    assert P.R_EXPIRED not in P.RETRY_LATER_CODES  # the client drops it from its spool (never resends it)
