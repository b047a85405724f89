#!/usr/bin/env python
"""DQN in one process: the learner's own agent, without the stack, for tuning (the Iudex arena by
default; any client env with --env).

The trainer's DQNAgent (the campaign defaults for --env, then --hyperparams) learns from chunks that
the client's own Chunker cuts (128 steps, as campaigns cut them) from --envs copies of the env played
epsilon-greedily with masks, as clients play them, but with the agent's current network instead of
published versions. Every --eval-every env steps it plays --eval-episodes greedy episodes (seeds
10000 and up) and reports their mean return, and for a boss fight the win rate. No servers and no
publishing: it starts in a second and runs on one core, so two settings can be compared side by side
on a 2-core machine before a run through the real stack (bench/learning.py, which runs the same
agent behind the relay with real clients) confirms the better one, and so the stack's cost in
samples can be read off against it.

Progress goes to stderr; the last line on stdout is JSON: the settings and the evaluation history
[{"env_steps", "return", "episodes"} and, for a boss fight, "win_rate" and "boss_hp_left"],
first_env_steps_to_win_rate (with --win-rate: the env steps of the first evaluation at or above it,
else null) and first_env_steps_to_target (with --target: the same for the mean return).

A noisy network (hyperparams "noisy": true) plays its training episodes with fresh noise per env and
step, and its evaluation episodes with its mean weights, as clients do.

Example:
  bench/arena_dqn.py --steps 150000
  bench/arena_dqn.py --boss-damage 0.4 --hyperparams '{"distributional": "qr", "noisy": true, "eps_start": 0, "eps_end": 0}'
  bench/arena_dqn.py --boss-damage 1.0 --hyperparams '{"eps_decay_samples": 100000}'
  bench/arena_dqn.py --env LunarLander-v2 --envs 2 --steps 100000 --eval-every 10000 --eval-episodes 100 --target 200
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from one_process import OneProcess  # noqa: E402  (bench/, on the path as this script's folder)

from client_app import iudex  # noqa: E402
from client_app.arena import scripted_action  # noqa: E402
from client_app.arena.rules import BOSS_DAMAGE  # noqa: E402
from client_app.envs import is_iudex  # noqa: E402
from client_app.masks import action_mask, episode_outcome  # noqa: E402
from trainer.agents import DQNAgent  # noqa: E402
from trainer.config import config_for  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default=iudex.ARENA_ID, help=f"gymnasium id (default {iudex.ARENA_ID})")
    parser.add_argument("--steps", type=int, default=150_000, help="env steps to train for (default 150000)")
    parser.add_argument("--envs", type=int, default=4, help="envs played side by side (default 4)")
    parser.add_argument("--hyperparams", default="{}", help="JSON overrides of the env's DQN defaults")
    parser.add_argument("--env-kwargs", default=None,
                        help="JSON env settings (default for the arena: {\"boss_damage\": --boss-damage})")
    parser.add_argument("--boss-damage", type=float, default=BOSS_DAMAGE,
                        help=f"the arena's boss_damage (default {BOSS_DAMAGE})")
    parser.add_argument("--eval-every", type=int, default=25_000, help="env steps between evaluations (default 25000)")
    parser.add_argument("--eval-episodes", type=int, default=20, help="greedy episodes per evaluation (default 20)")
    parser.add_argument("--win-rate", type=float, help="stop at the first evaluation at or above this win rate")
    parser.add_argument("--target", type=float, help="stop at the first evaluation whose mean return reaches this")
    parser.add_argument(
        "--backlog-chunks", type=int, default=0,
        help="chunks that wait, played and not yet trained on, as in the stack's stream when the learner "
        "is the limit (default 0: each chunk is trained on as soon as it is cut)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        args.env_kwargs = json.loads(args.env_kwargs) if args.env_kwargs is not None else (
            {"boss_damage": args.boss_damage} if is_iudex(args.env) else {})
        json.loads(args.hyperparams)
    except json.JSONDecodeError as exc:
        parser.error(f"--env-kwargs and --hyperparams take JSON objects: {exc}")
    return args


class Tuner(OneProcess):
    def __init__(self, args):
        torch.set_num_threads(1)
        torch.manual_seed(args.seed)
        super().__init__(args, chunk_steps=128)
        self.config = config_for(args.env, json.loads(args.hyperparams))
        self.agent = DQNAgent(self.config, obs_dim=self.obs_dim, n_actions=self.n_actions, action_start=0,
                              device=torch.device("cpu"))
        self.rng = np.random.default_rng(args.seed)

    def act(
        self, observations, masks, epsilon: float, *, greedy: bool = False, guided=None, raw=None
    ) -> np.ndarray:
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
        allowed = np.asarray([np.ones(self.n_actions, bool) if m is None else m for m in masks])
        actions = np.where(allowed, q, -np.inf).argmax(axis=1)
        guided = guided if guided is not None else [False] * len(actions)
        for i in np.flatnonzero(guided):
            actions[i] = scripted_action(raw[i])
        for i, mask in enumerate(allowed):
            if self.rng.random() < (min(epsilon, self.config.guide_epsilon) if guided[i] else epsilon):
                actions[i] = self.rng.choice(np.flatnonzero(mask))
        return actions

    def greedy(self, obs, mask) -> int:
        return int(self.act([obs], [mask], 0.0, greedy=True)[0])

    def run(self) -> dict:
        args, agent = self.args, self.agent
        # Which envs' episodes a guided campaign's scripted player plays (config.guide_share_at).
        guided = [bool(self.rng.random() < self.config.guide_share_at(0)) for _ in self.envs]
        state = [self.reset(i, guided=guided[i]) for i in range(len(self.envs))]
        samples, next_eval, history, start = 0, args.eval_every, [], time.monotonic()
        raw = [self.raw_obs.get(i) for i in range(len(self.envs))]
        guided_episodes = guided_wins = episodes = 0
        reached = target_reached = None
        waiting: deque = deque()  # chunks played and not yet ingested (--backlog-chunks)
        while samples < args.steps:
            actions = self.act(
                [s[0] for s in state], [s[1] for s in state], agent.exploration(), guided=guided, raw=raw
            )
            for i, env in enumerate(self.envs):
                obs, reward, terminated, truncated, info = env.step(int(actions[i]))
                done = terminated or truncated
                chunk = self.chunkers[i].step(
                    int(actions[i]), reward, obs, terminated, truncated, model_version=1,
                    mask=None if done else action_mask(info, self.n_actions),
                    outcome=episode_outcome(info) if done else None,
                )
                if chunk is not None:
                    waiting.append(chunk)
                    while len(waiting) > args.backlog_chunks:
                        samples += agent.ingest(waiting.popleft(), current_version=1)
                        agent.train(time.monotonic() + 60, lambda: False)
                if done:
                    episodes += 1
                    guided_episodes += guided[i]
                    guided_wins += bool(guided[i] and (info.get("outcome") or {}).get("win"))
                    guided[i] = bool(self.rng.random() < self.config.guide_share_at(samples))
                    state[i] = self.reset(i, guided=guided[i])
                    raw[i] = self.raw_obs.get(i)
                else:
                    state[i] = (obs, action_mask(info, self.n_actions))
                    raw[i] = info.get(iudex.RAW_OBS)
            if samples >= next_eval:
                next_eval += args.eval_every
                figures = {"env_steps": samples, **self.evaluate()}
                history.append(figures)
                print(f"{time.monotonic() - start:6.0f} s  {samples:,} env steps  epsilon {agent.exploration():.3f}  "
                      f"{self.describe(figures)}", file=sys.stderr, flush=True)
                if args.target is not None and target_reached is None and figures["return"] >= args.target:
                    target_reached = samples
                if args.win_rate is not None and self.boss and figures["win_rate"] >= args.win_rate:
                    reached = samples
                if (args.win_rate is not None and reached) or (args.target is not None and target_reached):
                    break
        result = {
            "env": args.env, "env_kwargs": self.kwargs, "hyperparams": json.loads(args.hyperparams),
            "envs": args.envs, "backlog_chunks": args.backlog_chunks, "seed": args.seed,
            "episodes": episodes, "guided_episodes": guided_episodes, "guided_wins": guided_wins,
            "first_env_steps_to_win_rate": reached, "first_env_steps_to_target": target_reached, "target": args.target,
            "wall_s": round(time.monotonic() - start, 1), "evaluations": history,
        }
        if self.boss:
            result["boss_damage"] = self.kwargs.get("boss_damage", BOSS_DAMAGE)
        return result


def main(argv=None) -> int:
    result = Tuner(parse_args(argv)).run()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
