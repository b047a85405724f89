"""What the one-process benches share (bench/arena_dqn.py, bench/arena_ppo.py): envs played side by side
into the client's own Chunker, and greedy evaluation episodes on fixed seeds."""

from __future__ import annotations

import numpy as np

from client_app.chunker import Chunker
from client_app.envs import is_iudex, make_env
from client_app.masks import action_mask, episode_outcome
from client_app.spaces import space_to_spec

EVAL_SEED = 10_000  # evaluation episode k plays seed EVAL_SEED + k: every evaluation the same fights


class OneProcess:
    """``args.envs`` copies of ``args.env`` (settings ``args.env_kwargs``), a Chunker each; a subclass
    gives ``greedy(obs, mask)``, the action its evaluation episodes play (an index from 0)."""

    def __init__(self, args, *, chunk_steps: int):
        self.args = args
        self.kwargs = args.env_kwargs
        self.boss = is_iudex(args.env)
        self.envs = [make_env(args.env, self.kwargs) for _ in range(args.envs)]
        self.spec = space_to_spec(self.envs[0].observation_space)
        self.obs_dim = int(self.spec["shape"][0])
        self.n_actions = int(self.envs[0].action_space.n)
        self.start = int(getattr(self.envs[0].action_space, "start", 0))
        self.chunkers = [
            Chunker(chunk_steps=chunk_steps, observation_space=self.spec, n_actions=self.n_actions) for _ in self.envs
        ]
        self.next_seed = args.seed * 1_000_000

    def greedy(self, obs, mask) -> int:
        raise NotImplementedError

    def reset(self, i: int):
        """Start env ``i``'s next episode (a fresh seed) and its chunker's: (observation, mask)."""
        obs, info = self.envs[i].reset(seed=self.next_seed)
        self.next_seed += 1
        mask = action_mask(info, self.n_actions)
        self.chunkers[i].start_episode(obs, mask)
        return obs, mask

    def evaluate(self) -> dict:
        """``args.eval_episodes`` greedy episodes: mean return, and for a boss fight the win rate and the
        boss's HP left (the encoder reports them on every ending, the 3000-step cut too)."""
        env = make_env(self.args.env, self.kwargs)
        wins, returns, boss_left = 0, [], []
        for k in range(self.args.eval_episodes):
            obs, info = env.reset(seed=EVAL_SEED + k)
            total, done = 0.0, False
            while not done:
                action = self.greedy(obs, action_mask(info, self.n_actions))
                obs, reward, terminated, truncated, info = env.step(action + self.start)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
            if self.boss:
                outcome = episode_outcome(info)
                wins += bool(outcome["win"])
                boss_left.append(outcome["boss_hp"])
        env.close()
        n = self.args.eval_episodes
        figures = {"return": round(float(np.mean(returns)), 3), "episodes": n}
        if self.boss:
            figures.update(win_rate=wins / n, boss_hp_left=round(float(np.mean(boss_left)), 3))
        return figures

    def describe(self, figures: dict) -> str:
        """An evaluation's progress line: the mean return, and for a boss fight the win rate and HP left."""
        n = self.args.eval_episodes
        line = f"return {figures['return']:+.3f} over {n}"
        if self.boss:
            line = f"won {figures['win_rate']:.0%} of {n}  {line}  boss HP left {figures['boss_hp_left']:.0%}"
        return line
