"""What the one-process benches share (bench/arena_dqn.py, bench/arena_ppo.py): envs played side by side
into the client's own Chunker, and greedy evaluation episodes on fixed seeds."""

from __future__ import annotations

import numpy as np

from client_app import iudex
from client_app.chunker import Chunker
from client_app.envs import is_iudex, make_env
from client_app.masks import action_mask, episode_outcome
from client_app.spaces import space_to_spec

EVAL_SEED = 10_000  # evaluation episode k plays seed EVAL_SEED + k: every evaluation the same fights


def greedy_episodes(env_id: str, env_kwargs: dict, episodes: int, *, seed: int, act) -> tuple[list[float], list[dict]]:
    """Play ``episodes`` episodes of a fresh env (seeds ``seed`` and up) with ``act(obs, mask)``, an
    action index from 0: (their returns, and for a boss fight each one's outcome, else empty)."""
    env = make_env(env_id, env_kwargs)
    n_actions = int(env.action_space.n)
    start = int(getattr(env.action_space, "start", 0))
    returns, outcomes = [], []
    for k in range(episodes):
        obs, info = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs, action_mask(info, n_actions)) + start)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        if is_iudex(env_id):
            outcomes.append(episode_outcome(info))  # the encoder reports it on every ending, the 3000-step cut too
    env.close()
    return returns, outcomes


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
        self.raw_obs: dict[int, dict] = {}  # env -> its last reset's observation dict, for an Iudex fight

    def greedy(self, obs, mask) -> int:
        raise NotImplementedError

    def reset(self, i: int, *, guided: bool = False):
        """Start env ``i``'s next episode (a fresh seed) and its chunker's (``guided``: a guided
        campaign's guide plays it): (observation, mask)."""
        obs, info = self.envs[i].reset(seed=self.next_seed)
        self.next_seed += 1
        if self.boss:
            self.raw_obs[i] = info[iudex.RAW_OBS]
        mask = action_mask(info, self.n_actions)
        self.chunkers[i].start_episode(obs, mask, guided=guided)
        return obs, mask

    def evaluate(self) -> dict:
        """``args.eval_episodes`` greedy episodes: mean return, and for a boss fight the win rate and the
        boss's HP left."""
        n = self.args.eval_episodes
        returns, outcomes = greedy_episodes(self.args.env, self.kwargs, n, seed=EVAL_SEED, act=self.greedy)
        figures = {"return": round(float(np.mean(returns)), 3), "episodes": n}
        if self.boss:
            wins = sum(bool(o["win"]) for o in outcomes)
            figures.update(win_rate=wins / n, boss_hp_left=round(float(np.mean([o["boss_hp"] for o in outcomes])), 3))
        return figures

    def describe(self, figures: dict) -> str:
        """An evaluation's progress line: the mean return, and for a boss fight the win rate and HP left."""
        n = self.args.eval_episodes
        line = f"return {figures['return']:+.3f} over {n}"
        if self.boss:
            line = f"won {figures['win_rate']:.0%} of {n}  {line}  boss HP left {figures['boss_hp_left']:.0%}"
        return line
