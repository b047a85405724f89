#!/usr/bin/env python
"""PPO in one process: the learner's own agent, without the stack (bench/arena_dqn.py's counterpart
for the actor-critic).

The trainer's PPOAgent (the campaign's PPO defaults for --env, then --hyperparams) learns from chunks
that the client's own Chunker cuts (--chunk-steps, 128 as campaigns cut them) from --envs copies of
the env, played as clients play them (the published model's ``Policy``: actions sampled with their
log-probabilities, masks applied), but always with the newest weights: the model is re-made after
every PPO iteration, and nothing is stale. Every --eval-every env steps it plays --eval-episodes
greedy episodes (seeds 10000 and up) and reports their mean return, and for a boss fight the win
rate. Against bench/learning.py --algo ppo (the same agent behind the relay, with real clients
playing published versions while the learner trains), it reads off what the stack costs in samples.

Progress goes to stderr; the last line on stdout is JSON: the settings, the evaluation history
[{"env_steps", "return", "episodes"} and, for a boss fight, "win_rate" and "boss_hp_left"], and
first_env_steps_to_target (with --target: the env steps of the first evaluation whose mean return
reaches it, else null), first_env_steps_to_win_rate (the same with --win-rate), iterations (PPO
updates, each followed by a new model) and dropped_samples
(samples too stale to learn from: none here, where every chunk is played by the newest model or the
one before it).

Example:
  bench/arena_ppo.py --env CartPole-v1 --envs 2 --steps 200000 --eval-every 5000 --eval-episodes 10 --target 475
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
from one_process import OneProcess  # noqa: E402  (bench/, on the path as this script's folder)

from client_app.masks import action_mask, episode_outcome  # noqa: E402
from client_app.policy import Policy, save_model  # noqa: E402
from trainer.agents import PPOAgent  # noqa: E402
from trainer.config import config_for  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium id (default CartPole-v1)")
    parser.add_argument("--steps", type=int, default=200_000, help="env steps to train for (default 200000)")
    parser.add_argument("--envs", type=int, default=2, help="envs played side by side (default 2)")
    parser.add_argument("--hyperparams", default="{}", help="JSON overrides of the env's PPO defaults")
    parser.add_argument("--env-kwargs", default="{}", help="JSON env settings")
    parser.add_argument("--chunk-steps", type=int, default=128, help="steps per chunk (default 128, the campaign default)")
    parser.add_argument("--eval-every", type=int, default=5_000, help="env steps between evaluations (default 5000)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="greedy episodes per evaluation (default 10)")
    parser.add_argument("--target", type=float, help="stop at the first evaluation whose mean return reaches this")
    parser.add_argument("--win-rate", type=float, help="boss fights: stop at the first evaluation at or above this win rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        args.env_kwargs = json.loads(args.env_kwargs)
        json.loads(args.hyperparams)
    except json.JSONDecodeError as exc:
        parser.error(f"--env-kwargs and --hyperparams take JSON objects: {exc}")
    if args.envs < 1 or args.chunk_steps < 1 or args.eval_every < 1 or args.eval_episodes < 1:
        parser.error("--envs, --chunk-steps, --eval-every and --eval-episodes must be positive")
    return args


class OneProcessPPO(OneProcess):
    def __init__(self, args):
        torch.set_num_threads(1)
        torch.manual_seed(args.seed)
        super().__init__(args, chunk_steps=args.chunk_steps)
        self.config = config_for(args.env, json.loads(args.hyperparams), algorithm="ppo")
        self.agent = PPOAgent(self.config, obs_dim=self.obs_dim, n_actions=self.n_actions,
                              action_start=self.start, device=torch.device("cpu"))
        self.rng = np.random.default_rng(args.seed)
        self.version = 0
        self.policy = self.publish()

    def publish(self) -> Policy:
        """The newest weights as clients would receive them (the same bytes a campaign publishes)."""
        self.version += 1
        data = save_model(self.agent.spec, self.agent.params(), version=self.version, obs_norm=self.agent.obs_norm())
        return Policy.from_bytes(data)

    def greedy(self, obs, mask) -> int:
        return self.policy.greedy(obs, mask)

    def run(self) -> dict:
        args, agent = self.args, self.agent
        state = [self.reset(i) for i in range(len(self.envs))]
        samples, next_eval, history, start = 0, args.eval_every, [], time.monotonic()
        reached = reached_win_rate = None
        while samples < args.steps:
            for i, env in enumerate(self.envs):
                obs, mask = state[i]
                action, logp = self.policy.step(obs, self.rng, mask)
                obs, reward, terminated, truncated, info = env.step(action + self.start)
                done = terminated or truncated
                chunk = self.chunkers[i].step(
                    action + self.start, reward, obs, terminated, truncated, model_version=self.version,
                    mask=None if done else action_mask(info, self.n_actions), logp=logp,
                    outcome=episode_outcome(info) if done else None,
                )
                if chunk is not None:
                    samples += int(agent.ingest(chunk, current_version=self.version))
                    if not agent.wants_data():
                        agent.train(time.monotonic() + 60, lambda: False)
                        self.policy = self.publish()
                        # A chunk never mixes two versions: the partial ones go in now, as clients send them.
                        for chunker in self.chunkers:
                            partial = chunker.flush()
                            if partial is not None:
                                samples += int(agent.ingest(partial, current_version=self.version))
                state[i] = self.reset(i) if done else (obs, action_mask(info, self.n_actions))
            if samples >= next_eval:
                next_eval += args.eval_every
                figures = {"env_steps": samples, **self.evaluate()}
                history.append(figures)
                print(f"{time.monotonic() - start:6.0f} s  {samples:,} env steps  v{self.version}  "
                      f"{self.describe(figures)}", file=sys.stderr, flush=True)
                if args.target is not None and figures["return"] >= args.target:
                    reached = samples
                if args.win_rate is not None and self.boss and figures["win_rate"] >= args.win_rate:
                    reached_win_rate = samples
                if reached or reached_win_rate:
                    break
        return {
            "env": args.env, "env_kwargs": self.kwargs, "hyperparams": json.loads(args.hyperparams),
            "envs": args.envs, "chunk_steps": args.chunk_steps, "seed": args.seed, "target": args.target,
            "first_env_steps_to_target": reached, "first_env_steps_to_win_rate": reached_win_rate,
            "wall_s": round(time.monotonic() - start, 1),
            "iterations": self.version - 1, "dropped_samples": agent.dropped_samples,
            "evaluations": history,
        }


def main(argv=None) -> int:
    result = OneProcessPPO(parse_args(argv)).run()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
