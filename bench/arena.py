#!/usr/bin/env python
"""Speed and difficulty of the Iudex arena simulator (soulsai/IudexArena-v0), unpaced.

Plays --episodes fights with each policy: a uniform random policy, a random policy that only picks
allowed actions (masked), and the hand-written scripted player (client_app.arena.scripted_action),
through gymnasium.make as the client makes it, and optionally with the encoder (--encoded), as the
client plays it. Seeds are 0..episodes-1, so figures repeat run to run.

Progress goes to stderr; the last line on stdout is JSON:

  steps_per_s (all steps, all policies), encoded_steps_per_s (with --encoded), boss_damage,
  and per policy: <policy>_win_rate, <policy>_mean_length, <policy>_mean_boss_hp_left.

--boss-damage plays Iudex at another share of his attack table's damage (the arena's boss_damage
setting; default: the arena's own, client_app.arena.rules.BOSS_DAMAGE), and --sloppy adds a scripted
player that takes a random allowed action with that probability (how forgiving the fight is).

Example:
  bench/arena.py --episodes 200 --encoded
  bench/arena.py --boss-damage 1.0 --sloppy 0.1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import client_app  # noqa: E402, F401  (registers the arena)
from client_app import iudex  # noqa: E402
from client_app.arena import scripted_action  # noqa: E402
from client_app.arena.rules import BOSS_DAMAGE  # noqa: E402
from client_app.envs import make_env  # noqa: E402


def play(env, policy: str, episodes: int, sloppy: float = 0.0) -> tuple[dict, int, float]:
    wins, lengths, boss_left = 0, [], []
    steps, start = 0, time.perf_counter()
    for seed in range(episodes):
        obs, info = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        n = 0
        while True:
            if policy == "random":
                action = int(rng.integers(iudex.N_ACTIONS))
            elif policy == "masked_random" or (policy == "sloppy_scripted" and rng.random() < sloppy):
                action = int(rng.choice(info["allowed_actions"]))
            else:
                action = scripted_action(obs)
            obs, _, terminated, truncated, info = env.step(action)
            n += 1
            if terminated or truncated:
                break
        outcome = info.get("outcome") or {}
        wins += bool(outcome.get("win"))
        boss_left.append(float(obs["boss_hp"][0]) / iudex.BOSS_MAX_HP)
        lengths.append(n)
        steps += n
    elapsed = time.perf_counter() - start
    figures = {
        f"{policy}_win_rate": wins / episodes,
        f"{policy}_mean_length": float(np.mean(lengths)),
        f"{policy}_mean_boss_hp_left": float(np.mean(boss_left)),
    }
    print(f"{policy}: {figures} ({steps / elapsed:,.0f} steps/s)", file=sys.stderr)
    return figures, steps, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=100, help="fights per policy (default: 100)")
    parser.add_argument("--encoded", action="store_true", help="also time random play through the encoder")
    parser.add_argument("--boss-damage", type=float, default=BOSS_DAMAGE,
                        help=f"share of the attack table's damage Iudex deals (default {BOSS_DAMAGE})")
    parser.add_argument("--sloppy", type=float, default=0.0,
                        help="also play the scripted player with this share of random actions (0-1)")
    args = parser.parse_args()

    env = gym.make(iudex.ARENA_ID, boss_damage=args.boss_damage)
    result: dict = {"episodes": args.episodes, "boss_damage": args.boss_damage}
    total_steps, total_s = 0, 0.0
    policies = ("random", "masked_random", "scripted") + (("sloppy_scripted",) if args.sloppy else ())
    for policy in policies:
        figures, steps, elapsed = play(env, policy, args.episodes, args.sloppy)
        result.update(figures)
        total_steps += steps
        total_s += elapsed
    if args.sloppy:
        result["sloppy"] = args.sloppy
    result["steps_per_s"] = total_steps / total_s
    if args.encoded:
        wrapped = make_env(iudex.ARENA_ID, {"boss_damage": args.boss_damage})
        wrapped.reset(seed=0)
        rng = np.random.default_rng(0)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < 3.0:
            _, _, terminated, truncated, _ = wrapped.step(int(rng.integers(iudex.N_ACTIONS)))
            steps += 1
            if terminated or truncated:
                wrapped.reset()
        result["encoded_steps_per_s"] = steps / (time.perf_counter() - start)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
