"""Well-formed chunks that lie: each passes the wire format, and the lie must not reach the stream,
the counters or any figure (read back from Redis, the rows after the roll-up, and the public API)."""

from __future__ import annotations

import numpy as np

from hostile import wire
from hostile.cases.common import lie, stored_any
from hostile.registry import REGISTRY, Verdict
from hostile.world import finite


def _in_returns(value):
    def judge(world, campaign, figures, reply):
        return value in figures.returns or figures.samples > 0, f"returns {figures.returns[:3]}, {figures.samples} samples"

    return judge


def _stream_keys(world, campaign):
    from client_app import protocol as P
    from trainer.keys import CampaignKeys

    entries = world.redis_client().xrange(CampaignKeys(campaign.id).stream, count=10)
    return [P.unpack(fields[b"c"]) for _, fields in entries]


def _kept_key(path):
    def judge(world, campaign, figures, reply):
        for message in _stream_keys(world, campaign):
            target = message
            for key in path:
                target = target.get(key) if isinstance(target, dict) else None
            if target is not None:
                return True, f"stream kept {'.'.join(path)}"
        return False, f"{figures.xlen} entries, key not kept"

    return judge


def _case(name, doc, frame, judge, quick=False, **kw):
    REGISTRY.add("lying", name, doc, lambda world: lie(world, frame(), judge, **kw), quick=quick)


_case("return_1e308", "an episode return of 1e308 after 8 steps of reward 1: not stored",
      lambda: wire.chunk(done=True, **{"return": 1e308}), _in_returns(1e308), quick=True)
_case("return_not_reward_sum", "episode.return 424242 while its 8 rewards sum to 8: not stored",
      lambda: wire.chunk(done=True, **{"return": 424242.0}), _in_returns(424242.0))
_case("return_over_length_bound", "a return of 9 from 8 steps of CartPole (at most 1 a step): not stored",
      lambda: wire.chunk(done=True, **{"return": 9.0}), _in_returns(9.0))
_case("return_negative_cartpole", "a return of -1000 on CartPole (rewards are never negative): not stored",
      lambda: wire.chunk(done=True, **{"return": -1000.0}), _in_returns(-1000.0))
_case("reward_negative_cartpole", "rewards of -1 on CartPole (always +1): not stored",
      lambda: wire.chunk(reward=-1.0), stored_any)
_case("outcome_hp_nan", "an outcome whose boss_hp is NaN: refused", lambda: wire.chunk(done=True, outcome={"win": False, "boss_hp": float("nan")}),
      stored_any)
_case("length_2p52", "episode.length 2**52 for an 8-step episode: not stored",
      lambda: wire.chunk(done=True, length=2**52), stored_any)
_case("length_over_env_limit", "episode.length 100000 on CartPole-v1 (episodes end at 500): not stored",
      lambda: wire.chunk(done=True, length=100_000, **{"return": 8.0}), stored_any)
_case("reward_1e6_cartpole", "rewards of 1e6 a step on CartPole (always 1): not stored",
      lambda: wire.chunk(reward=1e6), stored_any)
_case("obs_far_out_of_bounds", "a cart position of 1e9 (bound 4.8): refused out_of_range",
      lambda: {**wire.chunk(), "obs": wire.arr(np.full((9, 4), 1e9, np.float32))}, stored_any)
_case("action_masked_out", "an action its own mask forbids: refused 'masked'",
      lambda: {**wire.chunk(masks=True), "actions": wire.arr(np.zeros(8, np.int64)),
               "masks": wire.arr(np.array([[False, True]] * 9))}, stored_any)
_case("version_future", "model_version 7 on a campaign without models: refused", lambda: wire.chunk(version=7),
      stored_any)
_case("outcome_win_cartpole", "a boss-fight win on a CartPole campaign: no fight counted",
      lambda: wire.chunk(done=True, outcome={"win": True}),
      lambda w, c, f, r: (f.outcomes > 0 or f.stats.get("wins", 0) > 0, f"outcomes {f.outcomes}, wins {f.stats.get('wins', 0)}"))
_case("unknown_key_top", "an unknown top-level key: not kept in the stream",
      lambda: {**wire.chunk(), "x_hidden": "payload"}, _kept_key(["x_hidden"]))
_case("unknown_key_episode", "an unknown key inside 'episode': not kept in the stream",
      lambda: wire.chunk(done=True, x_hidden="payload"), _kept_key(["episode", "x_hidden"]))
_case("unknown_key_outcome", "an unknown key inside 'episode.outcome': not kept",
      lambda: wire.chunk(done=True, outcome={"win": False, "x_hidden": "payload"}),
      _kept_key(["episode", "outcome", "x_hidden"]))


def stale_version(world) -> Verdict:
    campaign = world.campaign(max_policy_lag=1)
    for v in (1, 2, 3):
        world.publish(campaign, v, checkpoint=False)
    from portal.campaigns.services import campaign_redis_sync

    campaign_redis_sync(campaign=campaign)
    return lie(world, wire.chunk(version=1), stored_any, campaign=campaign)


REGISTRY.add("lying", "version_stale", "model_version 1 when the campaign is at 3 with a policy lag of 1: refused",
             stale_version)


def win_rate_on_cartpole(world) -> Verdict:
    """Item 3: a CartPole campaign must not show "won 100% of the last fights"."""
    campaign = world.campaign()

    def judge(w, c, f, r):
        status, body, why = w.strict_json(f"/api/campaigns/{c.slug}/")
        text = str(body)
        shown = c.win_rate_recent is not None or "win_rate" in text and "1.0" in text
        return shown, f"win_rate_recent {c.win_rate_recent}"

    return lie(world, wire.chunk(done=True, outcome={"win": True, "boss_hp": 0.0, "player_hp": 1.0}), judge,
               campaign=campaign, sync=True)


REGISTRY.add("lying", "win_rate_on_cartpole", "a won fight on CartPole: no win rate on its API figures",
             win_rate_on_cartpole)


def infinite_mean(world) -> Verdict:
    """Item 2: two returns of 1e308 made mean_return_recent infinite, and the API emitted Infinity."""
    campaign = world.campaign()
    _, raw = world.token(campaign)
    with world.session(raw) as s:
        replies = [s.answer(wire.chunk(done=True, **{"return": 1e308})) for _ in range(2)]
    campaign = world.sync(campaign)
    _, _, why_list = world.strict_json("/api/campaigns/")
    _, _, why_one = world.strict_json(f"/api/campaigns/{campaign.slug}/")
    _, _, why_stats = world.strict_json(f"/api/campaigns/{campaign.slug}/stats/")
    bad = not finite(campaign.mean_return_recent) or any((why_list, why_one, why_stats))
    refused = all((r or {}).get("type") == "reject" for r in replies)
    return Verdict(refused, bad, f"mean_return_recent {campaign.mean_return_recent}; "
                   f"API: {why_list or why_one or why_stats or 'strict JSON'}")


REGISTRY.add("lying", "returns_roll_up_infinite",
             "two returns of 1e308: the mean stays finite and every API answer is strict JSON", infinite_mean)


def return_over_episode(world) -> Verdict:
    """Two chunks of 8 steps end an episode of 16 steps with a return of 100 (at most 16 on CartPole)."""
    campaign = world.campaign()
    _, raw = world.token(campaign)
    with world.session(raw) as s:
        s.answer(wire.chunk())
        reply = s.answer(wire.chunk(done=True, length=16, **{"return": 100.0}))
    figures = world.figures(campaign)
    got = 100.0 in figures.returns
    return Verdict((reply or {}).get("type") == "reject", got, f"returns {figures.returns}")


REGISTRY.add("lying", "return_over_episode_steps",
             "an episode of 16 steps over two chunks claiming a return of 100: not counted", return_over_episode)


def version_zero_lagged(world) -> Verdict:
    campaign = world.campaign(max_policy_lag=1)
    for v in (1, 2, 3):
        world.publish(campaign, v, checkpoint=False)
    return lie(world, wire.chunk(version=0), stored_any, campaign=campaign)


REGISTRY.add("lying", "version_zero_lagged", "random play (version 0) when the campaign is at 3 with a lag of 1: refused",
             version_zero_lagged)
