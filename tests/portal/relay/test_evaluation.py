"""Evaluation requests, results and boss-fight outcomes through the real relay (websockets, Redis, DB)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from client_app import protocol as P
from portal.campaigns.models import Campaign, ModelVersion
from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync
from portal.campaigns.tasks import stats_sync_campaign
from portal.machines.services import token_create
from tests.portal.relay.test_relay import make_chunk, open_session, publish_models, send
from trainer.keys import CampaignKeys

pytestmark = pytest.mark.django_db(transaction=True)

ARENA = "soulsai/IudexArena-v0"


@pytest.fixture
def arena(volunteer):
    """A running campaign on the Iudex arena (a boss fight) and the volunteer's machine token on it."""
    campaign = campaign_launch(campaign=campaign_create(slug="relay-arena", name="Relay arena", env_id=ARENA))
    campaign_redis_sync(campaign=campaign)
    return campaign, token_create(user=volunteer, campaign=campaign, name="arena-rig")


_arena_obs: list[np.ndarray] = []


def arena_chunk(chunk_id: str, steps: int = 8, *, done: bool = False, version: int = 0, outcome=None) -> P.Chunk:
    """A chunk of the arena's fight: its first observation held, doing nothing (action 19), no reward."""
    if not _arena_obs:
        from client_app.envs import make_env

        _arena_obs.append(make_env(ARENA).reset(seed=1)[0])
    return P.Chunk(
        id=chunk_id,
        model_version=version,
        obs=np.repeat(_arena_obs[0][None], steps + 1, axis=0),
        actions=np.full(steps, 19, np.int64),
        rewards=np.zeros(steps, np.float32),
        terminated=done,
        episode_return=0.0 if done else None,
        episode_length=steps if done else None,
        outcome=outcome,
    )


def hand_out(ws, n: int, *, prefix: str = "ho", version: int = 1, chunk=make_chunk) -> list[dict]:
    """Episode-ending chunks until the relay handed this machine ``n`` evaluation episodes (the relay
    takes a machine's results only for the episodes it handed to it)."""
    asked = []
    for i in range(4 * n + 4):
        ack = send(ws, chunk(f"{prefix}-{i}", done=True, version=version).to_message())
        assert ack["type"] == P.ACK, ack
        if ack.get("evaluate"):
            asked.append(ack["evaluate"])
        if len(asked) == n:
            return asked
    raise AssertionError(f"the relay handed out {len(asked)} of {n} evaluation episodes")


def ask_for_evaluation(redis_client, campaign, version: int, episodes: int) -> dict:
    """What the learner does after publishing a checkpoint (trainer.evaluation.evaluation_request)."""
    model = ModelVersion.objects.get(campaign=campaign, version=version)
    ModelVersion.objects.filter(pk=model.pk).update(is_checkpoint=True)
    keys = CampaignKeys(campaign.id)
    redis_client.hset(keys.eval_request, mapping={**model.notice(), "episodes": episodes, "assigned": 0})
    redis_client.hset(keys.evals(version), "wanted", episodes)
    return model.notice()


def test_the_relay_hands_out_exactly_the_evaluation_episodes_asked_for(asgi_server, campaign, token, redis_client):
    publish_models(campaign, 1)
    notice = ask_for_evaluation(redis_client, campaign, 1, episodes=2)
    with open_session(asgi_server, token[1]) as (ws, _):
        assert "evaluate" not in send(ws, make_chunk("mid", version=1).to_message())  # not an episode's end
        asked = [send(ws, make_chunk(f"end-{i}", done=True, version=1).to_message()).get("evaluate") for i in range(3)]
    assert asked == [notice, notice, None]


def test_evaluation_results_are_stored_once_and_reach_the_checkpoint(asgi_server, campaign, token, redis_client):
    publish_models(campaign, 1, 2)
    ask_for_evaluation(redis_client, campaign, 2, episodes=2)
    # CartPole pays 1 a step: a return is its episode's length.
    results = [P.EvalResult(id=f"s-e{i}", model_version=2, episode_return=r, episode_length=int(r)) for i, r in ((1, 400.0), (2, 500.0))]
    with open_session(asgi_server, token[1]) as (ws, _):
        hand_out(ws, 2, version=2)
        first = send(ws, results[0].to_message())
        again = send(ws, results[0].to_message())  # a resend after a lost ack
        assert (first["type"], first["duplicate"], again["duplicate"]) == (P.ACK, False, True)
        campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
        assert campaign.eval_version is None  # 1 of the 2 episodes asked for: not complete yet
        assert ModelVersion.objects.get(campaign=campaign, version=2).eval_episodes == 1
        send(ws, results[1].to_message())
        unknown = send(ws, P.EvalResult(id="x", model_version=9, episode_return=1.0, episode_length=1).to_message())
        bad = send(ws, {**results[1].to_message(), "id": "y", "return": float("nan")})
    assert (unknown["type"], unknown["code"]) == (P.REJECT, P.R_MODEL_VERSION)
    assert (bad["type"], bad["code"]) == (P.REJECT, P.R_NOT_FINITE)
    campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    checkpoint = ModelVersion.objects.get(campaign=campaign, version=2)
    assert (checkpoint.eval_episodes, checkpoint.eval_return, checkpoint.eval_win_rate) == (2, 450.0, None)
    assert (checkpoint.eval_boss_hp_left, checkpoint.eval_player_hp_left) == (None, None)  # no boss to fight
    assert (campaign.eval_version, campaign.eval_return) == (2, 450.0)
    assert (campaign.eval_boss_hp_left, campaign.eval_player_hp_left) == (None, None)
    assert int(redis_client.hget(CampaignKeys(campaign.id).stats, "eval_steps")) == 900


def test_episodes_of_a_machine_that_left_mid_evaluation_are_handed_to_another(asgi_server, campaign, token, volunteer, redis_client):
    """A client that took evaluation episodes and quit (or crashed) before playing them: the relay
    gives them back when its connection closes, another machine plays them and the checkpoint's
    evaluation completes (before, it stayed at 0 of 2 for good)."""
    publish_models(campaign, 1)
    notice = ask_for_evaluation(redis_client, campaign, 1, episodes=2)
    keys = CampaignKeys(campaign.id)
    with open_session(asgi_server, token[1]) as (ws, _):
        assert hand_out(ws, 2, prefix="gone", version=1) == [notice, notice]
        assert int(redis_client.hget(keys.eval_request, "assigned")) == 2
    deadline = time.monotonic() + 10
    while int(redis_client.hget(keys.eval_request, "assigned")) != 0:  # the relay handles the close
        assert time.monotonic() < deadline, "the episodes of the machine that left were not given back"
        time.sleep(0.02)
    other = token_create(user=volunteer, campaign=campaign, name="second-rig")
    with open_session(asgi_server, other[1]) as (ws, _):
        assert hand_out(ws, 2, prefix="stays", version=1) == [notice, notice]
        for i, r in enumerate((300.0, 500.0)):
            ack = send(ws, P.EvalResult(id=f"stays-e{i}", model_version=1, episode_return=r, episode_length=int(r)).to_message())
            assert (ack["type"], ack["duplicate"]) == (P.ACK, False), ack
    with open_session(asgi_server, token[1]) as (ws, _):
        # The first machine comes back with a result for an episode it had been handed: played anew.
        late = send(ws, P.EvalResult(id="gone-e0", model_version=1, episode_return=9.0, episode_length=9).to_message())
    assert (late["type"], late["code"]) == (P.REJECT, P.R_NOT_REQUESTED)
    campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    checkpoint = ModelVersion.objects.get(campaign=campaign, version=1)
    assert (checkpoint.eval_episodes, checkpoint.eval_return) == (2, 400.0)
    assert (campaign.eval_version, campaign.eval_return) == (1, 400.0)


def test_boss_fight_outcomes_count_wins_per_campaign_and_machine(asgi_server, arena, redis_client):
    campaign, token = arena
    with open_session(asgi_server, token[1]) as (ws, _):
        for i, win in enumerate([True, False, True, True]):
            chunk = arena_chunk(f"fight-{i}", done=True)
            chunk.outcome = {"win": win, "boss_hp": 0.0 if win else 0.4, "player_hp": 0.5 if win else 0.0}
            assert send(ws, chunk.to_message())["type"] == P.ACK
        send(ws, arena_chunk("fight-0", done=True).to_message())  # a resend counts nothing twice
        bad = arena_chunk("fight-bad", done=True)
        bad.outcome = {"win": True, "boss_hp": 1.5}
        rejected = send(ws, bad.to_message())
    assert (rejected["type"], rejected["code"]) == (P.REJECT, P.R_OUT_OF_RANGE)
    keys = CampaignKeys(campaign.id)
    assert int(redis_client.hget(keys.machine_wins, str(token[0].id))) == 3
    campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    assert (campaign.wins_total, campaign.win_rate_recent) == (3, 0.75)


def test_a_win_played_with_a_long_replaced_model_earns_nothing_on_the_boards(asgi_server, arena, redis_client):
    # A client that played on offline with v1 while the learner published 40 more versions.
    from portal.relay.store import BOARD_WIN_MAX_LAG

    campaign, token = arena
    current = BOARD_WIN_MAX_LAG + 11
    publish_models(campaign, *range(1, current + 1))
    won = {"win": True, "boss_hp": 0.0, "player_hp": 0.5}
    with open_session(asgi_server, token[1]) as (ws, _):
        assert send(ws, arena_chunk("old-win", done=True, version=1, outcome=won).to_message())["type"] == P.ACK
        assert send(ws, arena_chunk("new-win", done=True, version=current - 2, outcome=won).to_message())["type"] == P.ACK
    keys = CampaignKeys(campaign.id)
    assert int(redis_client.hget(keys.machine_wins, str(token[0].id))) == 1  # the recent model's win only
    assert int(redis_client.hget(keys.stats, "wins")) == 2  # the agent's figures count both fights


def send_fights(ws, outcomes: list[dict]) -> None:
    """One episode-ending chunk per fight, each carrying its outcome."""
    for i, outcome in enumerate(outcomes):
        chunk = arena_chunk(f"hp-fight-{i}", done=True)
        chunk.outcome = outcome
        assert send(ws, chunk.to_message())["type"] == P.ACK


def test_boss_fights_report_the_mean_hp_left_over_the_recent_fights(asgi_server, arena, redis_client):
    campaign, token = arena
    with open_session(asgi_server, token[1]) as (ws, _):
        send_fights(ws, [
            {"win": True, "boss_hp": 0.0, "player_hp": 0.625},
            {"win": False, "boss_hp": 0.5, "player_hp": 0.0},
            {"win": False, "boss_hp": 0.25, "player_hp": 0.0},
            {"win": True},  # a client may leave HP out: it counts for the win rate only
        ])  # fmt: skip
        assert send(ws, arena_chunk("not-a-fight", done=True).to_message())["type"] == P.ACK
    campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    assert campaign.win_rate_recent == 0.5
    assert campaign.boss_hp_left_recent == pytest.approx(0.25)  # (0 + 0.5 + 0.25) / 3
    assert campaign.player_hp_left_recent == pytest.approx(0.625 / 3)
    assert redis_client.lrange(CampaignKeys(campaign.id).outcomes, 0, -1) == [
        b"1", b"0 0.2500 0.0000", b"0 0.5000 0.0000", b"1 0.0000 0.6250"
    ]  # fmt: skip


def test_win_flags_left_by_an_older_relay_still_count(asgi_server, arena, redis_client):
    campaign, token = arena
    keys = CampaignKeys(campaign.id)
    redis_client.lpush(keys.outcomes, "1", "0", "0")  # entries from before HP left was recorded
    with open_session(asgi_server, token[1]) as (ws, _):
        send_fights(ws, [{"win": True, "boss_hp": 0.0, "player_hp": 0.75}])
    campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    assert campaign.win_rate_recent == 0.5
    assert (campaign.boss_hp_left_recent, campaign.player_hp_left_recent) == (0.0, 0.75)


def test_boss_fight_evaluations_report_hp_left_on_the_checkpoint_and_the_campaign(asgi_server, arena, redis_client):
    campaign, token = arena
    publish_models(campaign, 1)
    ask_for_evaluation(redis_client, campaign, 1, episodes=3)
    outcomes = [
        {"win": True, "boss_hp": 0.0, "player_hp": 0.5},
        {"win": False, "boss_hp": 0.75, "player_hp": 0.0},
        {"win": False, "boss_hp": 0.5, "player_hp": 0.0},
    ]
    results = [
        P.EvalResult(id=f"hp-e{i}", model_version=1, episode_return=1.0, episode_length=300, outcome=outcome)
        for i, outcome in enumerate(outcomes)
    ]
    with open_session(asgi_server, token[1]) as (ws, _):
        hand_out(ws, 3, chunk=arena_chunk)
        for result in results[:2]:
            assert send(ws, result.to_message())["type"] == P.ACK
        send(ws, results[0].to_message())  # a resend counts nothing twice
        campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
        partial = ModelVersion.objects.get(campaign=campaign, version=1)
        assert (partial.eval_boss_hp_left, partial.eval_player_hp_left) == (0.375, 0.25)
        assert (campaign.eval_boss_hp_left, campaign.eval_player_hp_left) == (None, None)  # 2 of 3 episodes
        assert send(ws, results[2].to_message())["type"] == P.ACK
    campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    checkpoint = ModelVersion.objects.get(campaign=campaign, version=1)
    assert checkpoint.eval_boss_hp_left == pytest.approx(1.25 / 3)
    assert checkpoint.eval_player_hp_left == pytest.approx(0.5 / 3)
    assert (campaign.eval_version, campaign.eval_win_rate) == (1, pytest.approx(1 / 3))
    assert (campaign.eval_boss_hp_left, campaign.eval_player_hp_left) == (
        checkpoint.eval_boss_hp_left, checkpoint.eval_player_hp_left
    )  # fmt: skip


def test_log_probabilities_are_validated_and_reach_the_stream(asgi_server, campaign, token, redis_client):
    with open_session(asgi_server, token[1]) as (ws, _):
        good = make_chunk("pi-0")
        good.logp = np.full(8, -0.69, np.float32)
        assert send(ws, good.to_message())["type"] == P.ACK
        positive = make_chunk("pi-1")
        positive.logp = np.full(8, 0.5, np.float32)
        short = make_chunk("pi-2")
        short.logp = np.full(3, -0.1, np.float32)
        answers = [send(ws, c.to_message()) for c in (positive, short)]
    assert [(a["type"], a["code"]) for a in answers] == [(P.REJECT, P.R_OUT_OF_RANGE), (P.REJECT, P.R_SHAPE)]
    [(_, fields)] = redis_client.xrange(CampaignKeys(campaign.id).stream)
    stored = P.decode_stored_chunk(fields[b"c"])
    np.testing.assert_allclose(stored.logp, good.logp)


def test_boss_fight_evaluations_count_wins_even_when_every_fight_is_lost(asgi_server, arena, redis_client):
    campaign, token = arena
    publish_models(campaign, 1)
    ask_for_evaluation(redis_client, campaign, 1, episodes=2)
    lost = {"win": False, "boss_hp": 0.8, "player_hp": 0.0}
    with open_session(asgi_server, token[1]) as (ws, _):
        hand_out(ws, 2, chunk=arena_chunk)
        for i in range(2):
            result = P.EvalResult(id=f"lost-{i}", model_version=1, episode_return=-1.0, episode_length=300, outcome=lost)
            assert send(ws, result.to_message())["type"] == P.ACK
    campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    checkpoint = ModelVersion.objects.get(campaign=campaign, version=1)
    assert (checkpoint.eval_episodes, checkpoint.eval_wins, checkpoint.eval_win_rate) == (2, 0, 0.0)
    assert (campaign.eval_version, campaign.eval_win_rate) == (1, 0.0)
