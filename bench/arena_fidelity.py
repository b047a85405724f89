#!/usr/bin/env python
"""How closely the Iudex arena (soulsai/IudexArena-v0) fights like the real game, measured against the
recording in tests/data/iudex_recorded_episodes.json.

Rolls the arena out the way the recording was made (uniform random actions over all 20, allowed or
not; game_speed 3; SoulsGym's random start poses; --episodes fights, seeds --seed onwards) and prints, next
to the recording's figure, each quantity of client_app.arena.fidelity.METRICS (damage per hit, hits
to die, attacks per minute, chaining, the pause after attacks, turn rates, idle and strafe shares, the
attack mix, distances, stamina, parry cost, roll length, action availability, reward under both
formulas, lock-on, the player states) with its tolerance: the recording's 95% bootstrap interval
(fidelity.tolerances; docs/soulsgym.md, "How faithful the arena is"). Then the scripted player
(client_app.arena.scripted_action) plays --scripted-episodes fights: its win rate, mean hits taken,
and the share of fights it won untouched.

Progress goes to stderr; the table to stdout; the last line on stdout is JSON: {"boss_damage",
"episodes", "seed", "passed", "failed": [names], "metrics": {name: {"real", "tolerance", "arena", "pass"}},
"scripted": {"win_rate", "mean_hits_taken", "untouched_win_rate", "fights"}}. Exit status 0 when
every metric passes and the scripted player takes hits, 1 otherwise.

Example:
  bench/arena_fidelity.py --episodes 40
  bench/arena_fidelity.py --boss-damage 0.4 --episodes 20 --scripted-episodes 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client_app.arena import IudexArena, fidelity, scripted_action  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--episodes", type=int, default=40, help="random-play fights (default 40; the recording has 2)"
    )
    parser.add_argument(
        "--scripted-episodes", type=int, default=40, help="scripted-player fights (default 40)"
    )
    parser.add_argument(
        "--boss-damage", type=float, default=None, help="the arena's boss_damage (default: its own)"
    )
    parser.add_argument(
        "--boot", type=int, default=2000, help="bootstrap resamples for the tolerances (default 2000)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="first fight's seed: fights use seeds SEED.. (default 0)"
    )
    args = parser.parse_args(argv)

    kwargs = {"init_pose_randomization": True, "game_speed": 3.0}
    if args.boss_damage is not None:
        kwargs["boss_damage"] = args.boss_damage
    env = IudexArena(**kwargs)
    start = time.perf_counter()
    recording = fidelity.load_recording()
    real = fidelity.figures(recording)
    tol = fidelity.tolerances(recording, n_boot=args.boot)
    print(
        f"recording: {sum(f.steps for f in recording)} steps, tolerances in {time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    fights = []
    for k in range(args.episodes):
        fights.append(fidelity.rollout(env, fidelity.uniform_random, args.seed + k))
        if (k + 1) % 10 == 0 or k + 1 == args.episodes:
            print(f"random play: {k + 1}/{args.episodes} fights", file=sys.stderr)
    arena = fidelity.figures(fights)
    rows = fidelity.compare(arena, real, tol)
    scripted = []
    for k in range(args.scripted_episodes):
        scripted.append(fidelity.rollout(env, lambda obs, allowed, rng: scripted_action(obs), args.seed + k))
        if (k + 1) % 10 == 0 or k + 1 == args.scripted_episodes:
            print(f"scripted player: {k + 1}/{args.scripted_episodes} fights", file=sys.stderr)
    sfig = fidelity.scripted_figures(scripted)

    print(f"{'metric':24s} {'real':>9s} {'tolerance':>20s} {'arena':>9s}  ")
    for r in rows:
        lo, hi = r["tolerance"]
        print(
            f"{r['metric']:24s} {r['real']:9.3f} [{lo:8.3f}, {hi:8.3f}] {r['arena']:9.3f}  "
            f"{'pass' if r['pass'] else 'FAIL'}   {r['what']}"
        )
    print(
        f"scripted player (boss_damage {env.boss_damage}): win rate {sfig['win_rate']:.0%}, "
        f"{sfig['mean_hits_taken']:.1f} hits taken per fight, {sfig['untouched_win_rate']:.0%} won untouched"
    )
    failed = [r["metric"] for r in rows if not r["pass"]]
    takes_hits = sfig["mean_hits_taken"] > 0 and sfig["untouched_win_rate"] < 0.05
    result = {
        "boss_damage": env.boss_damage,
        "episodes": args.episodes,
        "seed": args.seed,
        "passed": len(rows) - len(failed),
        "failed": failed,
        "metrics": {r["metric"]: {k: r[k] for k in ("real", "tolerance", "arena", "pass")} for r in rows},
        "scripted": sfig,
        "scripted_takes_hits": takes_hits,
        "seconds": time.perf_counter() - start,
    }
    print(json.dumps(result))
    return 0 if not failed and takes_hits else 1


if __name__ == "__main__":
    sys.exit(main())
