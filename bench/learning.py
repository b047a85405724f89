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
episodes (played greedily, never trained on). Progress goes to stderr; the last line of stdout is
JSON: reached, env_steps, wall_s, eval_return, eval_version, and the evaluation history.
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
            **({"win_rate": round(m.eval_win_rate, 3)} if m.eval_win_rate is not None else {}),
        }
        for m in rows
    ]


def run(args, stack: Stack) -> dict:
    from portal.campaigns.models import Campaign
    from trainer.config import config_for

    wanted = config_for(args.env, json.loads(args.hyperparams), algorithm=args.algo).eval_episodes
    target = args.target if args.target is not None else TARGETS.get(args.env, 0.0)
    budget = BUDGETS.get(args.env)
    max_steps = args.max_steps or (2 * budget[args.algo == "ppo"] if budget else 1_000_000)
    stack.start_servers()
    campaign = stack.campaign(
        slug="bench", env_id=args.env, algorithm=args.algo, hyperparams=json.loads(args.hyperparams),
        chunk_steps=args.chunk_steps,
    )
    tokens = stack.tokens(campaign, args.clients)
    start = time.monotonic()
    for i, token in enumerate(tokens):
        stack.start_client(token, f"client-{i}", max_sps=args.max_sps, seed=i)
    progress(f"{args.env} {args.algo}: {args.clients} clients, target {target}, at most {max_steps:,} env steps")
    result: dict = {"reached": False}
    next_line = 0.0
    while True:
        time.sleep(1.0)
        stack.check_alive()
        campaign = Campaign.objects.get(pk=campaign.pk)
        wall = time.monotonic() - start
        history = evaluations(campaign)
        reached = [
            e for e in history
            if e["episodes"] >= wanted and (
                e.get("win_rate", -1) >= args.win_rate if args.win_rate is not None else e["return"] >= target
            )
        ]
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
            break
        learned = history[-1]["samples"] if history else 0
        if max(learned, campaign.samples_total) >= max_steps or wall >= args.timeout:
            best = max(history, key=lambda e: e["return"]) if history else None
            result = {"reached": False, "env_steps": campaign.samples_total, "wall_s": round(wall, 1),
                      "eval_return": best["return"] if best else None,
                      "eval_version": best["version"] if best else None}
            break
    from portal.campaigns.tasks import stats_sync_campaign
    from portal.core.redis import get_redis
    from trainer.keys import CampaignKeys

    campaign = stats_sync_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    stats = get_redis().hgetall(CampaignKeys(campaign.pk).stats)
    result.update(
        env=args.env, algo=args.algo, clients=args.clients, target=target, max_sps=args.max_sps,
        samples_accepted=campaign.samples_total, eval_steps=int(stats.get(b"eval_steps", 0)),
        evaluations=evaluations(campaign),
    )
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
