"""Evaluation results nobody asked for, or that no episode could have produced: none may reach the
version's result hash in Redis, the checkpoint's row or the campaign's public evaluation figures."""

from __future__ import annotations

from hostile import wire
from hostile.cases.common import answer_code
from hostile.registry import REGISTRY, Verdict


def _setup(world, *, versions=(1,), request: int | None = 1, episodes: int = 1):
    """A campaign with checkpoints ``versions``; the learner asks for ``episodes`` of ``request``."""
    from trainer.evaluation import evaluation_request
    from trainer.keys import CampaignKeys

    campaign = world.campaign()
    models = {v: world.publish(campaign, v) for v in versions}
    if request is not None:
        evaluation_request(world.redis_client(), CampaignKeys(campaign.id), model=models[request].notice(),
                           episodes=episodes)
    token, raw = world.token(campaign)
    return campaign, token, raw


def _evals(world, campaign, version: int) -> dict[str, float]:
    from trainer.keys import CampaignKeys

    raw = world.redis_client().hgetall(CampaignKeys(campaign.id).evals(version))
    return {k.decode(): float(v) for k, v in raw.items()}


def _handed(s, n: int) -> int:
    """End ``n`` episodes (chunks) so the relay hands out evaluations; how many it asked for."""
    asked = 0
    for _ in range(n):
        reply = s.answer(wire.chunk(done=True)) or {}
        asked += bool(reply.get("evaluate"))
    return asked


def _forge(world, *, results, handed: int = 0, before_send=None, version: int = 1, allowed: int = 0, **setup):
    """Send ``results`` (eval maps); got through when the version's hash counts more than ``allowed``
    episodes (those honestly handed out and played)."""
    campaign, token, raw = _setup(world, **setup)
    with world.session(raw) as s:
        asked = _handed(s, handed)
        if before_send:
            before_send(world, campaign, token)
        replies = [answer_code(s.answer(r), s.close_code) for r in results]
    evals = _evals(world, campaign, version)
    counted = int(evals.get("episodes", 0))
    got = counted > allowed
    return Verdict(all(r != "ack" for r in replies[allowed:]), got,
                   f"handed {asked}; answers {sorted(set(replies))}; version {version} counts {counted} episodes, "
                   f"return_sum {evals.get('return_sum')}")


def _case(name, doc, quick=False, **kw):
    REGISTRY.add("forged_eval", name, doc, lambda world: _forge(world, **kw), quick=quick)


_case("unrequested", "a result for a published checkpoint nobody asked to evaluate: not counted",
      results=[wire.eval_result(1)], request=None, quick=True)
_case("wrong_version", "a result for checkpoint 1 while the learner asks for 2: not counted",
      results=[wire.eval_result(1)], versions=(1, 2), request=2)
_case("unknown_version", "a result for version 9 that does not exist: refused",
      results=[wire.eval_result(9)], version=9)
_case("none_handed_out", "three results from a machine that was handed no evaluation: none counted",
      results=[wire.eval_result(1) for _ in range(3)], episodes=3)
_case("more_than_handed", "three results from a machine handed one: at most one counted",
      results=[wire.eval_result(1) for _ in range(3)], episodes=3, handed=1, allowed=1)
_case("return_1e308", "a handed-out evaluation reporting a return of 1e308: not counted",
      results=[wire.eval_result(1, ret=1e308)], handed=1)
_case("length_1e9", "a handed-out CartPole evaluation of 10^9 steps (episodes end at 500): not counted",
      results=[wire.eval_result(1, ret=20.0, length=10**9)], handed=1)
_case("return_over_length", "a return of 50 in 20 steps of CartPole (at most 1 a step): not counted",
      results=[wire.eval_result(1, ret=50.0, length=20)], handed=1)
_case("win_on_cartpole", "a boss-fight win in a CartPole evaluation: not counted as a fight",
      results=[wire.eval_result(1, outcome={"win": True, "boss_hp": 0.0, "player_hp": 1.0})], handed=1)
_case("hp_out_of_range", "outcome.boss_hp 1.5: refused out_of_range",
      results=[wire.eval_result(1, outcome={"win": False, "boss_hp": 1.5, "player_hp": 0.2})], handed=1)
_case("version_zero", "a result for version 0 (random play is no checkpoint): refused",
      results=[wire.eval_result(0)], version=0)
_case("resent_result", "the same result id sent twice: counted once",
      results=[wire.eval_result(1, result_id="same-eval-1") for _ in range(2)], handed=1, allowed=1)
_case("length_zero", "an evaluation of zero steps: refused",
      results=[wire.eval_result(1, ret=0.0, length=0)], handed=1)


def _revoke_quietly(world, campaign, token):
    """The revocation's notice was missed: only the Redis set (the store script's backstop) says so."""
    from trainer.keys import CampaignKeys

    world.redis_client().sadd(CampaignKeys(campaign.id).revoked, token.id)


def _stop_quietly(world, campaign, token):
    from trainer.keys import CampaignKeys

    world.redis_client().set(CampaignKeys(campaign.id).status, "stopped")


_case("revoked_token", "a result from a token in the revoked set (its notice missed): not counted",
      results=[wire.eval_result(1)], handed=1, before_send=_revoke_quietly)
_case("stopped_campaign", "a result on a campaign whose Redis status is stopped (notice missed): not counted",
      results=[wire.eval_result(1)], handed=1, before_send=_stop_quietly)


def flood(world) -> Verdict:
    """3,000 forged results in 2 s were all acked, each leaving a 7-day key: results pass the chunks'
    gate, rate limit included, so a burst is rate limited (or closed), not answered one by one."""
    from collections import Counter

    from trainer.keys import CampaignKeys

    campaign, _, raw = _setup(world, request=None)
    n = 600
    with world.session(raw) as s:
        for _ in range(n):
            if not s.send(wire.eval_result(1)):
                break
        replies = s.drain(timeout=1.0)
        closed = s.close_code is not None
    counts = Counter(answer_code(r, None) if r.get("type") != "ack" else "ack" for r in replies)
    keys = sum(1 for _ in world.redis_client().scan_iter(match=f"{CampaignKeys(campaign.id).tag}:*eval*", count=1000))
    unlimited = counts.get("rate_limited", 0) == 0 and not closed
    return Verdict(counts.get("ack", 0) < n, counts.get("ack", 0) > 250 or keys > 250 or unlimited,
                   f"{dict(counts)}; closed {closed}; {keys} evaluation keys left")


REGISTRY.add("forged_eval", "flood_600", "600 unrequested results at once: rate limited like chunks, no keys left behind",
             flood)


def public_figure(world) -> Verdict:
    """One forged result (return 424242, a win) became the campaign's public evaluation return."""
    campaign, _, raw = _setup(world)
    with world.session(raw) as s:
        _handed(s, 1)
        s.answer(wire.eval_result(1, ret=424242.0, length=20, outcome={"win": True}))
    campaign = world.sync(campaign)
    status, body, _ = world.strict_json(f"/api/campaigns/{campaign.slug}/")
    shown = campaign.eval_return == 424242.0 or "424242" in str(body)
    return Verdict(not shown, shown, f"eval_return {campaign.eval_return}, API {status}")


REGISTRY.add("forged_eval", "public_eval_return",
             "a handed-out evaluation claiming 424242: never the campaign's public evaluation return", public_figure)


def other_machine(world) -> Verdict:
    """Machine A is handed the evaluation; machine B, handed nothing, reports it."""
    campaign, _, raw_a = _setup(world)
    _, raw_b = world.token(campaign)
    with world.session(raw_a) as a:
        asked = _handed(a, 1)
    with world.session(raw_b) as b:
        reply = b.answer(wire.eval_result(1)) or {}
    counted = int(_evals(world, campaign, 1).get("episodes", 0))
    return Verdict(reply.get("type") != "ack", counted > 0,
                   f"A handed {asked}; B answered {answer_code(reply, None)}; {counted} counted")


REGISTRY.add("forged_eval", "other_machines_handout",
             "a machine reports the evaluation handed to another machine: not counted", other_machine)
