"""Per-machine statistics of the experience a campaign receives, and an outlier score against the pool.

The learner sees every stored chunk with the machine that sent it, so it keeps, per machine, running
sums of what a poisoner has to change to matter: the reward per step, episode returns and lengths,
boss-fight wins, and the mean of each observation feature. ``MachineStats.flush`` adds them to one
Redis hash per campaign (``CampaignKeys.machine_stats``: "<machine id>:<field>" -> sum, with
HINCRBYFLOAT, so they outlive the learner); the portal's roll-up reads them back
(``MachineSums.parse``) and scores every machine with ``outlier_scores``.

The score follows fishtest's worker check: each machine's mean of a statistic is compared with the
pool's median, in units of a robust spread, and the machine's score is the largest of those
residuals. The spread is sqrt(se^2 + (1.4826 MAD)^2): the machine's own standard error (few episodes
give wide margins) plus the spread of the pool's machines (median absolute deviation, a standard
deviation for a normal pool; not moved by the outlier itself, unlike the pool's standard deviation),
floored so that a pool where every honest machine reports the same figure (CartPole's reward of 1
per step) still gives a finite score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from client_app.protocol import Chunk

MAX_FEATURES = 16  # observation features kept per machine (the first ones): bounded Redis fields
MAX_MACHINES = 4096  # machines with unflushed sums between two flushes (more are dropped until then)
MIN_EPISODES = 10  # a machine is scored once it finished this many episodes
FLOOR = 0.02  # the spread is at least this fraction of |median| (plus 1e-3): a pool that agrees exactly


@dataclass
class Sums:
    """Running sums of one machine's experience (all floats: they are added with HINCRBYFLOAT)."""

    steps: float = 0.0
    reward: float = 0.0
    reward_sq: float = 0.0
    episodes: float = 0.0
    ret: float = 0.0
    ret_sq: float = 0.0
    length: float = 0.0
    length_sq: float = 0.0
    fights: float = 0.0
    wins: float = 0.0
    obs: list[float] = field(default_factory=list)  # per feature: sum over steps
    obs_sq: list[float] = field(default_factory=list)

    def fields(self) -> dict[str, float]:
        out = {name: getattr(self, name) for name in SCALARS}
        for i, (s, q) in enumerate(zip(self.obs, self.obs_sq, strict=True)):
            out[f"obs{i}"], out[f"obs{i}_sq"] = s, q
        return out


SCALARS = ("steps", "reward", "reward_sq", "episodes", "ret", "ret_sq", "length", "length_sq", "fights", "wins")


class MachineStats:
    """What the learner adds up between two flushes, per machine (bounded: ``MAX_MACHINES``)."""

    def __init__(self) -> None:
        self.pending: dict[int, Sums] = {}

    def add(self, machine_id: int, chunk: Chunk) -> None:
        """Count one stored chunk of ``machine_id`` (a few NumPy reductions: microseconds)."""
        if machine_id <= 0:
            return
        sums = self.pending.get(machine_id)
        if sums is None:
            if len(self.pending) >= MAX_MACHINES:
                return
            sums = self.pending[machine_id] = Sums()
        rewards = np.asarray(chunk.rewards, dtype=np.float64)
        obs = np.asarray(chunk.obs, dtype=np.float64).reshape(chunk.steps + 1, -1)[:-1, :MAX_FEATURES]
        sums.steps += chunk.steps
        sums.reward += float(rewards.sum())
        sums.reward_sq += float((rewards * rewards).sum())
        if not sums.obs:
            sums.obs, sums.obs_sq = [0.0] * obs.shape[1], [0.0] * obs.shape[1]
        for i, (s, q) in enumerate(zip(obs.sum(axis=0), (obs * obs).sum(axis=0), strict=True)):
            sums.obs[i] += float(s)
            sums.obs_sq[i] += float(q)
        if chunk.episode_return is not None and chunk.episode_length is not None:
            sums.episodes += 1
            sums.ret += chunk.episode_return
            sums.ret_sq += chunk.episode_return**2
            sums.length += chunk.episode_length
            sums.length_sq += chunk.episode_length**2
        if chunk.outcome is not None and "win" in chunk.outcome:
            sums.fights += 1
            sums.wins += 1.0 if chunk.outcome["win"] else 0.0

    def flush(self, client, key: str) -> None:
        """Add the pending sums to the campaign's hash (one pipeline) and start again."""
        if not self.pending:
            return
        pipe = client.pipeline(transaction=False)
        for machine_id, sums in self.pending.items():
            for name, value in sums.fields().items():
                if value:
                    pipe.hincrbyfloat(key, f"{machine_id}:{name}", value)
        pipe.execute()
        self.pending.clear()


@dataclass(frozen=True)
class Evidence:
    """Why a machine stands out: its largest residuals, with the figures behind them."""

    machine_id: int
    score: float  # the largest |residual| over the statistics
    episodes: int
    # (statistic, the machine's mean, the pool's median, residual), largest |residual| first
    residuals: list[tuple[str, float, float, float]]

    def as_json(self) -> dict:
        return {
            "score": round(self.score, 2),
            "episodes": self.episodes,
            "residuals": [[name, round(mean, 4), round(median, 4), round(z, 2)] for name, mean, median, z in self.residuals],
        }


def parse_sums(raw: dict[bytes, bytes]) -> dict[int, dict[str, float]]:
    """The campaign's hash back as machine id -> field -> sum (junk and non-finite values skipped)."""
    out: dict[int, dict[str, float]] = {}
    for key, value in raw.items():
        machine, _, name = (key.decode() if isinstance(key, bytes) else key).partition(":")
        try:
            number = float(value)
            machine_id = int(machine)
        except ValueError:
            continue
        if math.isfinite(number):
            out.setdefault(machine_id, {})[name] = number
    return out


def _means(sums: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Each statistic's (mean, standard error) for one machine."""
    out = {}

    def mean_se(total: str, square: str, count: float) -> tuple[float, float]:
        mean = sums.get(total, 0.0) / count
        var = max(0.0, sums.get(square, 0.0) / count - mean * mean)
        return mean, math.sqrt(var / count)

    steps, episodes = sums.get("steps", 0.0), sums.get("episodes", 0.0)
    if steps > 0:
        out["reward per step"] = mean_se("reward", "reward_sq", steps)
        i = 0
        while f"obs{i}" in sums:
            # Steps within an episode are correlated: the error counts episodes, not steps.
            mean = sums[f"obs{i}"] / steps
            var = max(0.0, sums.get(f"obs{i}_sq", 0.0) / steps - mean * mean)
            out[f"observation {i} mean"] = (mean, math.sqrt(var / max(1.0, episodes)))
            i += 1
    if episodes > 0:
        out["episode return"] = mean_se("ret", "ret_sq", episodes)
        out["episode length"] = mean_se("length", "length_sq", episodes)
    fights = sums.get("fights", 0.0)
    if fights > 0:
        rate = sums.get("wins", 0.0) / fights
        out["win rate"] = (rate, math.sqrt(rate * (1 - rate) / fights))
    return out


def outlier_scores(
    sums: dict[int, dict[str, float]], *, min_episodes: int = MIN_EPISODES, top: int = 3
) -> dict[int, Evidence]:
    """Score every machine with at least ``min_episodes`` episodes against the pool of such machines.

    Needs three machines or more (a median of two says nothing about which one is odd); returns
    machine id -> its evidence.
    """
    scored = {m: _means(s) for m, s in sums.items() if s.get("episodes", 0.0) >= min_episodes}
    if len(scored) < 3:
        return {}
    names = sorted(set().union(*(means.keys() for means in scored.values())))
    residuals: dict[int, list[tuple[str, float, float, float]]] = {m: [] for m in scored}
    for name in names:
        values = {m: means[name] for m, means in scored.items() if name in means}
        if len(values) < 3:
            continue
        centre = float(np.median([mean for mean, _ in values.values()]))
        mad = float(np.median([abs(mean - centre) for mean, _ in values.values()]))
        floor = FLOOR * abs(centre) + 1e-3
        for machine, (mean, se) in values.items():
            spread = max(math.sqrt(se * se + (1.4826 * mad) ** 2), floor)
            residuals[machine].append((name, mean, centre, (mean - centre) / spread))
    out = {}
    for machine, items in residuals.items():
        items.sort(key=lambda item: -abs(item[3]))
        out[machine] = Evidence(
            machine_id=machine,
            score=abs(items[0][3]) if items else 0.0,
            episodes=int(sums[machine].get("episodes", 0)),
            residuals=items[:top],
        )
    return out
