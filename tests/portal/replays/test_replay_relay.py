"""Fight traces through the real relay: kept as replays when whole, refused precisely when not."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

from client_app import iudex as I
from client_app import protocol as P
from client_app.arena import scripted_action
from portal.replays.models import Replay
from portal.replays.services import KEEP_LATEST
from tests.client_app.test_trace import F, play_evaluation
from tests.portal.relay.test_evaluation import arena_chunk, ask_for_evaluation, hand_out
from tests.portal.relay.test_relay import open_session, publish_models, send

pytestmark = pytest.mark.django_db(transaction=True)


def get_json(asgi_server, path: str) -> dict:
    with urllib.request.urlopen(asgi_server.url + path, timeout=10) as response:
        return json.loads(response.read())


def recorded_fight(version: int, result_id: str) -> P.EvalResult:
    """A real arena fight played by the scripted player, as the client reports its evaluation."""
    episode, _, outcome = play_evaluation(I.ARENA_ID, script=scripted_action)
    return P.EvalResult(
        id=result_id,
        model_version=version,
        episode_return=episode.episode_return,
        episode_length=episode.length,
        outcome=dict(outcome),
        trace=episode.trace(),
    )


def test_a_fight_trace_becomes_a_replay_and_malformed_ones_are_refused_with_the_reason(
    asgi_server, arena, redis_client
):
    campaign, token = arena
    publish_models(campaign, 1)
    ask_for_evaluation(redis_client, campaign, 1, episodes=2)
    fight = recorded_fight(1, "tr-1")
    message = fight.to_wire()
    trace = fight.trace

    def with_trace(array: np.ndarray, **changes) -> dict:
        return {**message, "id": f"bad-{len(refusals)}", "trace": array, **changes}

    wide = np.concatenate([trace, trace[:, :1]], axis=1)
    far = trace.copy()
    far[4, F["player_x"]] = 1000.0
    bad_anim = trace.copy()
    bad_anim[7, F["boss_animation"]] = 2.5
    rewards = trace.copy()
    rewards[0, F["reward"]] += 0.5
    huge = np.zeros((5000, len(P.FIGHT_FIELDS)), np.float32)
    refusals: list[dict] = []
    with open_session(asgi_server, token[1]) as (ws, _):
        hand_out(ws, 1, version=1, chunk=arena_chunk)
        for bad in (
            with_trace(wide),
            with_trace(far),
            with_trace(bad_anim),
            with_trace(rewards),
            with_trace(trace[:-1]),
            with_trace(trace.astype(np.float64)),
            with_trace(huge, length=3000),
        ):
            refusals.append(send(ws, bad))
        assert Replay.objects.count() == 0, "a refused trace stores nothing"
        ack = send(ws, message)
    assert ack["type"] == P.ACK and not ack["duplicate"], ack
    codes = [(r["type"], r["code"]) for r in refusals]
    assert codes == [
        (P.REJECT, P.R_SHAPE),
        (P.REJECT, P.R_OUT_OF_RANGE),
        (P.REJECT, P.R_OUT_OF_RANGE),
        (P.REJECT, P.R_OUT_OF_RANGE),
        (P.REJECT, P.R_SHAPE),
        (P.REJECT, P.R_DTYPE),
        (P.REJECT, P.R_TOO_LARGE),
    ]
    texts = [r["message"] for r in refusals]
    assert "(steps, 14)" in texts[0] and "got [" in texts[0]
    assert "player_x is 1000 at step 5" in texts[1]
    assert "boss_animation is 2.5 at step 8, not a whole number" in texts[2]
    assert "rewards sum to" in texts[3]
    assert f"{fight.episode_length - 1} rows but the episode has {fight.episode_length} steps" in texts[4]
    assert "280000 bytes" in texts[6] and str(P.MAX_TRACE_BYTES) in texts[6]

    replay = Replay.objects.get()
    assert (replay.kind, replay.model_version, replay.length, replay.won) == (
        "fight",
        1,
        fight.episode_length,
        fight.outcome["win"],
    )
    assert replay.trace.name.startswith(f"replays/{campaign.slug}/") and replay.size_bytes < P.MAX_TRACE_BYTES

    listing = get_json(asgi_server, f"/api/campaigns/{campaign.slug}/replays/")
    assert [r["id"] for r in listing["replays"]] == [replay.id]
    assert (listing["first_win"] or {}).get("id") == (replay.id if fight.outcome["win"] else None)
    detail = get_json(asgi_server, f"/api/campaigns/{campaign.slug}/replays/{replay.id}/")
    frames = detail["frames"]
    assert detail["fields"] == list(P.FIGHT_FIELDS) and len(frames["player_x"]) == fight.episode_length
    for step in (0, fight.episode_length // 2, fight.episode_length - 1):
        assert frames["player_x"][step] == pytest.approx(float(trace[step, F["player_x"]]), abs=1e-3)
        assert frames["boss_animation"][step] == int(trace[step, F["boss_animation"]])
    assert detail["tables"]["boss_animations"][:2] == ["Attack3000", "Attack3001"]


def test_a_campaign_keeps_the_best_the_latest_and_one_per_checkpoint(arena):
    from portal.replays.services import replay_save

    campaign, _ = arena
    fight = recorded_fight(1, "keep")
    stored = []
    for version, ret in ((1, 5.0), (1, 1.0), (2, 9.0), (2, 0.5), (3, 0.1), (3, 0.2), (3, 0.3), (3, 0.4)):
        result = P.EvalResult(
            id=f"k{len(stored)}",
            model_version=version,
            episode_return=ret,
            episode_length=fight.episode_length,
            outcome={"win": False, "boss_hp": 0.5, "player_hp": 0.0},
            trace=fight.trace,
        )
        stored.append(replay_save(campaign=campaign, result=result))
    kept = set(Replay.objects.values_list("id", flat=True))
    first_of = {1: stored[0].id, 2: stored[2].id, 3: stored[4].id}
    best = stored[2].id  # return 9.0
    latest = {r.id for r in stored[-KEEP_LATEST:]}
    assert kept == {*first_of.values(), best, *latest}
    gone = [r for r in stored if r.id not in kept]
    assert gone and all(not r.trace.storage.exists(r.trace.name) for r in gone), (
        "pruned replays leave storage too"
    )


def test_a_cartpole_evaluation_keeps_its_actions_and_rewards_and_refuses_a_fight_trace(
    asgi_server, campaign, token, redis_client
):
    publish_models(campaign, 1)
    ask_for_evaluation(redis_client, campaign, 1, episodes=1)
    episode, _, _ = play_evaluation("CartPole-v1", version=1)
    good = P.EvalResult(
        id="cp-1",
        model_version=1,
        episode_return=episode.episode_return,
        episode_length=episode.length,
        trace=episode.trace(),
    ).to_wire()
    fight_shaped = {
        **good,
        "id": "cp-bad",
        "trace": np.zeros((episode.length, len(P.FIGHT_FIELDS)), np.float32),
    }
    with open_session(asgi_server, token[1]) as (ws, _):
        hand_out(ws, 1, version=1)
        refused = send(ws, fight_shaped)
        ack = send(ws, good)
    assert (refused["type"], refused["code"]) == (P.REJECT, P.R_SHAPE) and "action, reward" in refused[
        "message"
    ]
    assert ack["type"] == P.ACK
    replay = Replay.objects.get()
    detail = get_json(asgi_server, f"/api/campaigns/{campaign.slug}/replays/{replay.id}/")
    assert (detail["kind"], detail["won"], detail["fields"]) == ("steps", None, ["action", "reward"])
    assert sum(detail["frames"]["reward"]) == episode.length == detail["length"]
    assert "tables" not in detail
