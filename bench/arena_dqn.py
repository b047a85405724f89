#!/usr/bin/env python
"""DQN on the Iudex arena in one process: the learner's own agent, without the stack, for tuning.

The trainer's DQNAgent (the campaign defaults for soulsai/IudexArena-v0, then --hyperparams) learns
from chunks that the client's own Chunker cuts from --envs arenas played epsilon-greedily with masks,
as clients play them, but with the agent's current network instead of published versions. Every
--eval-every env steps it plays --eval-episodes greedy fights (seeds 10000 and up) and reports the win
rate. No servers and no publishing: it starts in a second and runs on one core, so two settings of
the hyperparameters or of the arena's boss_damage can be compared side by side on a 2-core machine
before a run through the real stack (bench/learning.py) confirms the better one.

Progress goes to stderr; the last line on stdout is JSON: the settings and the evaluation history
[{"env_steps", "win_rate", "return", "boss_hp_left"}], and first_env_steps_to_win_rate (with
--win-rate: the env steps of the first evaluation at or above it, else null).

A noisy network (hyperparams "noisy": true) plays its training fights with fresh noise per arena and
step, and its evaluation fights with its mean weights, as clients do.

Example:
  bench/arena_dqn.py --steps 150000
  bench/arena_dqn.py --boss-damage 0.4 --hyperparams '{"distributional": "qr", "noisy": true, "eps_start": 0, "eps_end": 0}'
  bench/arena_dqn.py --boss-damage 1.0 --hyperparams '{"eps_decay_samples": 100000}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from client_app import iudex  # noqa: E402
from client_app.arena.rules import BOSS_DAMAGE  # noqa: E402
from client_app.chunker import Chunker  # noqa: E402
from client_app.envs import make_env  # noqa: E402
from client_app.masks import action_mask, episode_outcome  # noqa: E402
from client_app.spaces import space_to_spec  # noqa: E402
from trainer.agents import DQNAgent  # noqa: E402
from trainer.config import config_for  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150_000, help="env steps to train for (default 150000)")
    parser.add_argument("--envs", type=int, default=4, help="arenas played side by side (default 4)")
    parser.add_argument("--hyperparams", default="{}", help="JSON overrides of the arena's DQN defaults")
    parser.add_argument("--boss-damage", type=float, default=BOSS_DAMAGE,
                        help=f"the arena's boss_damage (default {BOSS_DAMAGE})")
    parser.add_argument("--eval-every", type=int, default=25_000, help="env steps between evaluations (default 25000)")
    parser.add_argument("--eval-episodes", type=int, default=20, help="greedy fights per evaluation (default 20)")
    parser.add_argument("--win-rate", type=float, help="stop at the first evaluation at or above this win rate")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


class Tuner:
    def __init__(self, args):
        torch.set_num_threads(1)
        torch.manual_seed(args.seed)
        self.args = args
        self.kwargs = {"boss_damage": args.boss_damage}
        self.config = config_for(iudex.ARENA_ID, json.loads(args.hyperparams))
        self.envs = [make_env(iudex.ARENA_ID, self.kwargs) for _ in range(args.envs)]
        spec = space_to_spec(self.envs[0].observation_space)
        n = self.envs[0].action_space.n
        self.agent = DQNAgent(self.config, obs_dim=spec["shape"][0], n_actions=n, action_start=0,
                              device=torch.device("cpu"))
        self.n_actions = n
        self.rng = np.random.default_rng(args.seed)
        self.chunkers = [Chunker(chunk_steps=128, observation_space=spec, n_actions=n) for _ in self.envs]
        self.next_seed = args.seed * 1_000_000

    def act(self, observations, masks, epsilon: float, *, greedy: bool = False) -> np.ndarray:
        obs = np.asarray(observations, dtype=np.float32)
        if self.agent.normalizer is not None:
            obs = self.agent.normalizer.normalize(obs)
        net = self.agent.dqn.q
        with torch.no_grad():
            if greedy or not net.spec.noisy:
                # Greedy play of a noisy network uses its mean weights (eval mode), as clients do.
                net.train(not greedy)
                q = net(torch.as_tensor(obs)).numpy()
                net.train(True)
            else:
                # Training play of a noisy network: each arena its own fresh noise every step, as each
                # client draws its own (client_app.policy.noisy_params).
                rows = []
                for row in obs:
                    net.reset_noise()
                    rows.append(net(torch.as_tensor(row[None]))[0])
                q = torch.stack(rows).numpy()
        actions = np.where(np.asarray(masks), q, -np.inf).argmax(axis=1)
        for i, mask in enumerate(masks):
            if self.rng.random() < epsilon:
                actions[i] = self.rng.choice(np.flatnonzero(mask))
        return actions

    def reset(self, i: int):
        obs, info = self.envs[i].reset(seed=self.next_seed)
        self.next_seed += 1
        mask = action_mask(info, self.n_actions)
        self.chunkers[i].start_episode(obs, mask)
        return obs, mask

    def evaluate(self) -> dict:
        env = make_env(iudex.ARENA_ID, self.kwargs)
        wins, returns, boss_left = 0, [], []
        for k in range(self.args.eval_episodes):
            obs, info = env.reset(seed=10_000 + k)
            mask, total = action_mask(info, self.n_actions), 0.0
            while True:
                obs, reward, terminated, truncated, info = env.step(int(self.act([obs], [mask], 0.0, greedy=True)[0]))
                total += reward
                mask = action_mask(info, self.n_actions)
                if terminated or truncated:
                    break
            outcome = episode_outcome(info)  # the encoder reports it on every ending, the 3000-step cut too
            wins += outcome["win"]
            boss_left.append(outcome["boss_hp"])
            returns.append(total)
        n = self.args.eval_episodes
        return {"win_rate": wins / n, "return": round(float(np.mean(returns)), 3),
                "boss_hp_left": round(float(np.mean(boss_left)), 3)}

    def run(self) -> dict:
        args, agent = self.args, self.agent
        state = [self.reset(i) for i in range(len(self.envs))]
        samples, next_eval, history, start = 0, args.eval_every, [], time.monotonic()
        reached = None
        while samples < args.steps:
            actions = self.act([s[0] for s in state], [s[1] for s in state], agent.exploration())
            for i, env in enumerate(self.envs):
                obs, reward, terminated, truncated, info = env.step(int(actions[i]))
                done = terminated or truncated
                chunk = self.chunkers[i].step(
                    int(actions[i]), reward, obs, terminated, truncated, model_version=1,
                    mask=None if done else action_mask(info, self.n_actions),
                    outcome=episode_outcome(info) if done else None,
                )
                if chunk is not None:
                    samples += agent.ingest(chunk, current_version=1)
                    agent.train(time.monotonic() + 60, lambda: False)
                state[i] = self.reset(i) if done else (obs, action_mask(info, self.n_actions))
            if samples >= next_eval:
                next_eval += args.eval_every
                figures = {"env_steps": samples, **self.evaluate()}
                history.append(figures)
                print(f"{time.monotonic() - start:6.0f} s  {samples:,} env steps  epsilon {agent.exploration():.3f}  "
                      f"won {figures['win_rate']:.0%} of {args.eval_episodes}  return {figures['return']:+.3f}  "
                      f"boss HP left {figures['boss_hp_left']:.0%}", file=sys.stderr, flush=True)
                if args.win_rate is not None and figures["win_rate"] >= args.win_rate:
                    reached = samples
                    break
        return {
            "boss_damage": args.boss_damage, "hyperparams": json.loads(args.hyperparams), "envs": args.envs,
            "seed": args.seed, "first_env_steps_to_win_rate": reached, "wall_s": round(time.monotonic() - start, 1),
            "evaluations": history,
        }


def main(argv=None) -> int:
    result = Tuner(parse_args(argv)).run()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
