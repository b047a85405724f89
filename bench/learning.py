#!/usr/bin/env python
"""Learning speed of the real stack: env steps and wall time until the evaluation return reaches a target.

Starts the whole platform headless (bench/stack.py: embedded Redis, the ASGI relay, a Celery worker
with beat running the learner), creates a campaign on --env with --algo and launches N real clients
(``python -m client_app run``). The learner asks clients for greedy evaluation episodes of a
checkpoint every ``eval_every_samples`` samples; the run ends when one checkpoint's mean evaluation
return reaches --target (default: 475 for CartPole-v1, 200 for LunarLander-v2), or when the
learner has taken --max-steps env steps, or after --timeout seconds.

``env_steps`` is the number of env steps the learner had taken when it published the checkpoint
that reached the target (for PPO including steps it dropped as stale); ``samples_accepted`` is what
the relay had stored when the result came in, and ``eval_steps`` the steps of the evaluation
episodes (played greedily, never trained on), and ``eval_share`` their share of all client steps
(the learner keeps it near ``eval_max_share``, 10% by default); ``policy_lag_versions`` is the mean
number of model versions by which the policy that played a trained-on sample was behind the learner's
(``policy_lag_samples``: the learner's distribution, versions behind -> [samples kept, dropped];
``chunk_age_samples``: samples by seconds from their chunk's cut to its ingestion, "<1" to ">=60",
and ``stream_age_samples`` the part of it spent in the stream);
``updates`` the learner's gradient updates and ``updates_per_sample`` their ratio to the samples it
ingested (DQN: 1 / ``samples_per_update`` once ``learning_starts`` is past; in large-batch mode,
``large_batch_max`` > 1, a batch k times larger is one of them, and ``batch_size_seconds`` counts the
seconds the learner spent at each batch size). ``--env-kwargs`` are the campaign's
env settings (the arena's ``{"boss_damage": 1.0}``: Iudex at full strength). Progress goes to
stderr; the last line of stdout is JSON: reached, env_steps, wall_s, eval_return, eval_version, and
the evaluation history, one entry per evaluated checkpoint with the number of ``episodes`` (for a
boss fight, ``fights``) behind its return and win rate.

For the arena, each evaluated checkpoint also plays --attack-fights greedy fights here, in this
process (fresh seeds, the campaign's env settings; no volunteer's time), and its entry gets
``attacks``: per Iudex attack, how many he started (``seen``), how many the agent came out of without
losing HP (``avoided``) and after how many Iudex lost HP before his next attack or within
PUNISH_WINDOW_S of its end (``punished``). That shows progress before the first wins.

A lucky evaluation does not count with ``--confirm-episodes N``: a checkpoint whose evaluation reached
the target is played again here, in this process, greedily on N fresh seeds (from 20000; the
campaign's env settings), and the run ends only at a checkpoint that reaches the target (or
--win-rate) there too. Its figures are ``confirmed_return`` (and ``confirmed_win_rate``) and each
checked entry of the history gets ``confirmed``; ``reached`` is then true only for a confirmed one.
Fix the schedule before the run (``--hyperparams '{"eval_every_samples": 10000, "eval_max_share": 1.0}'``):
the learner then evaluates every 10,000 samples whatever the evaluations cost.

The campaign's own evaluations are volunteers' game time, held to ``eval_max_share`` (10%) of client
steps: CartPole's 500-step episodes then get evaluated once in some 45,000 samples, too coarse to time
when an agent learned. ``--probe-every N`` measures learning speed apart from that budget: each time
the learner passes another N samples, the first model version published past the mark is played
here, greedily, on ``--probe-episodes`` fresh seeds (from 30000, the campaign's env settings; no
volunteer's time), and the run ends at the first probe that reaches the target (confirmed with
``--confirm-episodes`` as above). Those runs report ``probes`` (version, samples, episodes, return)
and ``reached_by`` "probe"; the campaign's own evaluations and ``eval_share`` are reported as always.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import Stack, progress  # noqa: E402

PUNISH_WINDOW_S = 2.0  # a hit on Iudex this long after his attack ended still punishes it
TARGETS = {"CartPole-v1": 475.0, "LunarLander-v2": 200.0, "soulsai/IudexArena-v0": 0.0}
BUDGETS = {  # issue 4's targets: (dqn, ppo) env steps
    "CartPole-v1": (50_000, 100_000),
    "LunarLander-v2": (200_000, 1_000_000),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium id of the campaign (default CartPole-v1)")
    parser.add_argument("--algo", choices=("dqn", "ppo"), default="dqn")
    parser.add_argument("--clients", type=int, default=2, help="real clients to run (default 2)")
    parser.add_argument("--target", type=float, help="evaluation return to reach (default per env)")
    parser.add_argument(
        "--win-rate", type=float, help="boss fights: evaluation win rate to reach instead of a return (0-1)"
    )
    parser.add_argument("--max-steps", type=int, help="give up after the learner took this many env steps "
                        "(default: twice the issue's budget for the env and algorithm, else 1M)")
    parser.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds (default 3600)")
    parser.add_argument("--max-sps", type=float, default=0.0, help="pace each client to this many steps/s (0: unpaced)")
    parser.add_argument("--hyperparams", default="{}", help="JSON overrides of the algorithm's defaults")
    parser.add_argument(
        "--env-kwargs", default="{}", help='JSON env settings of the campaign, e.g. \'{"boss_damage": 1.0}\''
    )
    parser.add_argument(
        "--attack-fights",
        type=int,
        default=10,
        help="arena: greedy fights per evaluated checkpoint played here for the per-attack figures (0: none)",
    )
    parser.add_argument(
        "--confirm-episodes",
        type=int,
        default=0,
        help="re-play a checkpoint that reached the target on this many fresh-seed greedy episodes here, "
        "and end only at one that reaches it there too (0: the run's evaluation decides)",
    )
    parser.add_argument(
        "--probe-every",
        type=int,
        default=0,
        help="play the model published past every N samples here, greedily, and end at the first that "
        "reaches the target (0: the campaign's evaluations decide)",
    )
    parser.add_argument("--probe-episodes", type=int, default=10, help="greedy episodes per probe (default 10)")
    parser.add_argument("--chunk-steps", type=int, help="steps per chunk (default: the campaign default)")
    parser.add_argument("--redis-url", help="use this Redis (its database is flushed) instead of an embedded one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, database)")
    return parser.parse_args(argv)


def evaluations(campaign) -> list[dict]:
    from portal.campaigns.models import ModelVersion

    rows = ModelVersion.objects.filter(campaign=campaign, eval_episodes__gt=0).order_by("version")
    return [
        {
            "version": m.version,
            "samples": m.samples_total,
            "episodes": m.eval_episodes,
            "return": round(m.eval_return, 2),
            **(
                {"fights": m.eval_episodes, "win_rate": round(m.eval_win_rate, 3)}
                if m.eval_win_rate is not None
                else {}
            ),
        }
        for m in rows
    ]


def attack_outcomes(weights: bytes, env_kwargs: dict, fights: int, seed: int = 10_000) -> dict[str, dict]:
    """Per Iudex attack, over ``fights`` greedy arena fights of a checkpoint: seen, avoided, punished.

    Read from the arena's state after each step, nothing changed in it: an attack starts when Iudex
    starts one (his grab's hold, ``ThrowAtk``, counts with the grab); the agent avoided it if it lost
    no HP from its start to the next attack or pause; it punished it if Iudex lost HP from its start
    until his next attack, or until PUNISH_WINDOW_S after it ended.
    """
    from client_app.arena.rules import ANIM_DT
    from client_app.envs import make_env
    from client_app.iudex import ARENA_ID
    from client_app.masks import action_mask
    from client_app.policy import Policy

    policy = Policy.from_bytes(weights)
    env = make_env(ARENA_ID, env_kwargs)
    arena = env.unwrapped
    n_actions = env.action_space.n
    window = round(PUNISH_WINDOW_S / ANIM_DT)
    counts: dict[str, dict] = {}

    def close(attack: dict) -> None:
        row = counts.setdefault(attack["name"], {"seen": 0, "avoided": 0, "punished": 0})
        row["seen"] += 1
        row["avoided"] += int(not attack["hurt"])
        row["punished"] += int(arena.b_hp < attack["boss_hp"])

    for fight in range(fights):
        obs, info = env.reset(seed=seed + fight)
        current, last_t, done = None, 0.0, False  # the attack being followed
        while not done:
            obs, _, terminated, truncated, info = env.step(policy.greedy(obs, action_mask(info, n_actions)))
            done = terminated or truncated
            attack = arena.b_attack
            name = attack.name if attack is not None else None
            new = name not in (None, "ThrowAtk") and (
                current is None
                or current["hurt"] is not None  # the one followed had ended: this is the next
                or attack is not current["attack"]  # chained into another attack
                or arena.b_t < last_t  # chained into the same one again
            )
            last_t = arena.b_t
            if current is not None:
                if current["hurt"] is None and (new or name is None or done):
                    current["hurt"] = arena.p_hp < current["player_hp"]  # it is over: did it hit?
                    current["since_end"] = 0
                elif current["hurt"] is not None:
                    current["since_end"] += 1
                if new or done or (current["hurt"] is not None and current["since_end"] >= window):
                    close(current)
                    current = None
            if new:
                current = {"name": name, "attack": attack, "player_hp": arena.p_hp, "boss_hp": arena.b_hp, "hurt": None}
    env.close()
    return counts


def replay_checkpoint(weights: bytes, env_id: str, env_kwargs: dict, episodes: int, seed: int = 20_000) -> dict:
    """A checkpoint's greedy play on ``episodes`` fresh seeds: mean return, and for a boss fight the win rate."""
    from one_process import greedy_episodes

    from client_app.envs import is_iudex
    from client_app.policy import Policy

    returns, outcomes = greedy_episodes(env_id, env_kwargs, episodes, seed=seed, act=Policy.from_bytes(weights).greedy)
    wins = sum(bool(o["win"]) for o in outcomes)
    figures = {"episodes": episodes, "return": round(sum(returns) / episodes, 2)}
    if is_iudex(env_id):
        figures["win_rate"] = round(wins / episodes, 3)
    return figures


def run(args, stack: Stack) -> dict:
    from portal.campaigns.models import Campaign
    from trainer.config import config_for

    wanted = config_for(args.env, json.loads(args.hyperparams), algorithm=args.algo).eval_episodes
    target = args.target if args.target is not None else TARGETS.get(args.env, 0.0)
    budget = BUDGETS.get(args.env)
    max_steps = args.max_steps or (2 * budget[args.algo == "ppo"] if budget else 1_000_000)
    stack.start_servers()
    env_kwargs = json.loads(args.env_kwargs)
    campaign = stack.campaign(
        slug="bench", env_id=args.env, algorithm=args.algo, hyperparams=json.loads(args.hyperparams),
        chunk_steps=args.chunk_steps, env_kwargs=env_kwargs,
    )
    tokens = stack.tokens(campaign, args.clients)
    start = time.monotonic()
    for i, token in enumerate(tokens):
        stack.start_client(token, f"client-{i}", max_sps=args.max_sps, seed=i)
    progress(f"{args.env} {args.algo}: {args.clients} clients, target {target}, at most {max_steps:,} env steps")
    confirmed: dict[int, dict] = {}  # version -> its re-play on fresh seeds

    def meets(figures: dict) -> bool:
        if args.win_rate is not None:
            return figures.get("win_rate", -1) >= args.win_rate
        return figures["return"] >= target

    def confirm(campaign, entry: dict) -> dict:
        from portal.campaigns.models import ModelVersion

        model = ModelVersion.objects.get(campaign=campaign, version=entry["version"])
        with model.weights.open("rb") as f:
            figures = replay_checkpoint(f.read(), args.env, env_kwargs, args.confirm_episodes)
        progress(
            f"v{entry['version']} @ {entry['samples']:,} reached {entry['return']} over {entry['episodes']} "
            f"episodes; on {args.confirm_episodes} fresh seeds: {figures['return']}"
            + (f" (won {figures['win_rate']:.0%})" if "win_rate" in figures else "")
        )
        return figures
    probes: list[dict] = []
    next_probe = args.probe_every  # samples of the next probe mark

    def probe(campaign) -> None:
        """Play the first version published past the next probe mark (once: a version published past
        two marks, as PPO's long rollouts are, is probed for the first)."""
        from portal.campaigns.models import ModelVersion

        nonlocal next_probe
        if campaign.samples_total < next_probe:
            return
        versions = ModelVersion.objects.filter(campaign=campaign)
        model = versions.filter(samples_total__gte=next_probe).order_by("version").first()
        if model is None or not model.weights:
            return
        while next_probe <= model.samples_total:
            next_probe += args.probe_every
        with model.weights.open("rb") as f:
            figures = replay_checkpoint(f.read(), args.env, env_kwargs, args.probe_episodes, seed=30_000)
        probes.append({"version": model.version, "samples": model.samples_total, **figures})
        progress(f"probe v{model.version} @ {model.samples_total:,}: {figures['return']}"
                 + (f" (won {figures['win_rate']:.0%})" if "win_rate" in figures else ""))

    from portal.core.redis import get_redis
    from trainer.keys import CampaignKeys

    result: dict = {"reached": False}
    next_line = 0.0
    # Large-batch mode (large_batch_max > 1): seconds the learner spent at each batch size.
    batch_seconds: dict[str, int] = {}
    while True:
        time.sleep(1.0)
        stack.check_alive()
        campaign = Campaign.objects.get(pk=campaign.pk)
        wall = time.monotonic() - start
        in_use = get_redis().hget(CampaignKeys(campaign.pk).learner, "batch_size")
        if in_use is not None:
            batch_seconds[in_use.decode()] = batch_seconds.get(in_use.decode(), 0) + 1
        history = evaluations(campaign)
        if args.probe_every > 0:
            probe(campaign)
            reached = [e for e in probes if meets(e)]
        else:
            reached = [e for e in history if e["episodes"] >= wanted and meets(e)]
        if args.confirm_episodes > 0:
            for entry in reached:
                if entry["version"] not in confirmed:
                    confirmed[entry["version"]] = confirm(campaign, entry)
            reached = [e for e in reached if meets(confirmed[e["version"]])]
        if wall >= next_line:
            latest = history[-1] if history else None
            progress(
                f"{wall:6.0f} s  v{campaign.model_version}  {campaign.samples_total:,} samples  "
                f"mean return {campaign.mean_return_recent or 0:.1f}  "
                + (f"eval v{latest['version']} @ {latest['samples']:,}: {latest['return']}" if latest else "no eval yet")
                + (f" (won {latest['win_rate']:.0%})" if latest and "win_rate" in latest else "")
            )
            next_line = wall + 10
        if reached:
            first = reached[0]
            result = {"reached": True, "env_steps": first["samples"], "wall_s": round(wall, 1),
                      "eval_return": first["return"], "eval_version": first["version"]}
            if "win_rate" in first:
                result["eval_win_rate"] = first["win_rate"]
            if first["version"] in confirmed:
                result["confirmed_return"] = confirmed[first["version"]]["return"]
                if "win_rate" in confirmed[first["version"]]:
                    result["confirmed_win_rate"] = confirmed[first["version"]]["win_rate"]
            break
        learned = history[-1]["samples"] if history else 0
        # A checkpoint within the budget whose evaluation is still being played may yet reach the target.
        unfinished = bool(history) and history[-1]["episodes"] < wanted and learned <= max_steps
        if args.probe_every > 0:  # the probes decide: one still due within the budget may yet reach it
            learned = probes[-1]["samples"] if probes else 0
            unfinished = next_probe <= max_steps
        if (max(learned, campaign.samples_total) >= max_steps and not unfinished) or wall >= args.timeout:
            best = max(history, key=lambda e: e["return"]) if history else None
            result = {"reached": False, "env_steps": campaign.samples_total, "wall_s": round(wall, 1),
                      "eval_return": best["return"] if best else None,
                      "eval_version": best["version"] if best else None}
            break
    from portal.campaigns.tasks import stats_sync_campaign

    campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    stats = get_redis().hgetall(CampaignKeys(campaign.pk).stats)
    eval_steps = int(stats.get(b"eval_steps", 0))
    # How old the policies were that played what the learner trained on: model versions behind the
    # learner's at ingestion, weighted by the samples kept (the learner's whole-run distribution).
    learner = get_redis().hgetall(CampaignKeys(campaign.pk).learner)
    lag_rows = json.loads(learner.get(b"policy_lag_samples") or "{}")
    kept = {int(lag): row[0] for lag, row in lag_rows.items()}
    policy_lag = round(sum(lag * n for lag, n in kept.items()) / max(1, sum(kept.values())), 2)
    updates, ingested = int(learner.get(b"updates", 0)), int(learner.get(b"samples_ingested", 0))
    chunk_ages = json.loads(learner.get(b"chunk_age_samples") or "{}")
    stream_ages = json.loads(learner.get(b"stream_age_samples") or "{}")
    history = evaluations(campaign)
    if args.env == "soulsai/IudexArena-v0" and args.attack_fights > 0:
        from portal.campaigns.models import ModelVersion

        for entry in history:
            model = ModelVersion.objects.get(campaign=campaign, version=entry["version"])
            with model.weights.open("rb") as f:
                entry["attacks"] = attack_outcomes(f.read(), env_kwargs, args.attack_fights)
            progress(f"v{entry['version']} @ {entry['samples']:,}: {entry['attacks']}")
    for entry in history:
        if entry["version"] in confirmed:
            entry["confirmed"] = confirmed[entry["version"]]
    result.update(
        env=args.env, algo=args.algo, clients=args.clients, target=target, max_sps=args.max_sps,
        env_kwargs=env_kwargs, samples_accepted=campaign.samples_total, eval_steps=eval_steps,
        policy_lag_versions=policy_lag, policy_lag_samples=lag_rows, chunk_age_samples=chunk_ages,
        stream_age_samples=stream_ages,
        updates=updates, updates_per_sample=round(updates / max(1, ingested), 3),
        eval_share=round(eval_steps / max(1, eval_steps + campaign.samples_total), 4),
        evaluations=history,
    )
    if batch_seconds:
        result["batch_size_seconds"] = dict(sorted(batch_seconds.items(), key=lambda kv: int(kv[0])))
    if args.probe_every > 0:
        result.update(reached_by="probe", probe_every=args.probe_every, probes=probes)
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    # A TERM (timeout, scaling.py giving up) unwinds like Ctrl-C: the stack's processes are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stack = Stack(redis_url=args.redis_url, keep=args.keep)
    try:
        result = run(args, stack)
    finally:
        stack.stop()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
