"""What each environment's episodes can be: the longest episode, the reward one step can pay, boss fights.

One table, read by the relay (a chunk's rewards and episode, an evaluation result, must be ones the
environment could have produced) and by the client (it can check its own data the same way). An
environment not in the table gets ``DEFAULT``: finite, within ``MAX_ABS_REWARD`` a step, an outcome
allowed (every environment a campaign may run is in the table: ``portal.campaigns.services``'s list).

The bounds (docs/protocol.md, "What an episode can be"):

- ``CartPole-v1``: 500 steps, +1 every step: an episode's return is its length.
- ``Acrobot-v1``: 500 steps, -1 a step until the goal (0 on reaching it).
- ``MountainCar-v0``: 200 steps, -1 every step: a return is minus its length.
- ``LunarLander-v2``: 1000 steps; a step pays the landing's or crash's +-100 plus the shaping and
  engine terms, so +-1000 a step is a generous bound.
- the Iudex arena (``soulsai/IudexArena-v0``, our simulator): 3000 steps; a step pays the boss's and
  the player's HP change as fractions (each within +-1), +-0.1 at the fight's end or 0.01 per metre
  walked towards the centre (at most ~1.3 in the arena's box, 1.5 with the observations'
  tolerance): +-3.5 a step. A boss fight: it has a winner.
- the real game (``SoulsGymIudex-v0``, ``SoulsGymIudexDemo-v0``): 3000 steps, a boss fight; the game's
  own reward jumps further (poses and HP jump between phases and at resets: the recorded fights in
  tests/data reach -37 and +21 a step), so +-100 a step.

A campaign's ``env_kwargs`` may set ``max_episode_steps`` (gymnasium's time limit): it replaces the
longest episode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

MAX_ABS_REWARD = 1e6  # no environment we run pays more per step; larger means a broken or hostile client
MAX_EPISODE_STEPS = 2**31 - 1  # an environment without a known time limit


@dataclass(frozen=True)
class EnvBounds:
    """What one environment's episodes can be."""

    max_length: int = MAX_EPISODE_STEPS  # steps of the longest episode
    reward_low: float = -MAX_ABS_REWARD  # the least one step can pay
    reward_high: float = MAX_ABS_REWARD  # the most one step can pay
    boss_fight: bool = False  # its episodes end with a winner (an ``outcome``)

    def return_range(self, length: int) -> tuple[float, float]:
        """The returns an episode of ``length`` steps can have (with float32 rounding slack)."""
        low, high = length * self.reward_low, length * self.reward_high
        slack = 1e-3 * max(1.0, abs(low), abs(high))
        return low - slack, high + slack

    def return_possible(self, episode_return: float, length: int) -> bool:
        low, high = self.return_range(length)
        return math.isfinite(episode_return) and low <= episode_return <= high


#: An environment not in the table (only a client validating its own data sees it: every environment a
#: campaign may run is in ENV_BOUNDS): finite, within MAX_ABS_REWARD a step, an outcome allowed.
DEFAULT = EnvBounds(boss_fight=True)
_ARENA = EnvBounds(max_length=3000, reward_low=-3.5, reward_high=3.5, boss_fight=True)
_SOULSGYM = EnvBounds(max_length=3000, reward_low=-100.0, reward_high=100.0, boss_fight=True)

ENV_BOUNDS: dict[str, EnvBounds] = {
    "CartPole-v1": EnvBounds(max_length=500, reward_low=1.0, reward_high=1.0),
    "Acrobot-v1": EnvBounds(max_length=500, reward_low=-1.0, reward_high=0.0),
    "MountainCar-v0": EnvBounds(max_length=200, reward_low=-1.0, reward_high=-1.0),
    "LunarLander-v2": EnvBounds(max_length=1000, reward_low=-1000.0, reward_high=1000.0),
    "soulsai/IudexArena-v0": _ARENA,
    "SoulsGymIudex-v0": _SOULSGYM,
    "SoulsGymIudexDemo-v0": _SOULSGYM,
}


def bounds_for(env_id: str | None, env_kwargs: dict[str, Any] | None = None) -> EnvBounds:
    """The bounds of a campaign's environment (``DEFAULT`` for one not in the table)."""
    bounds = ENV_BOUNDS.get(str(env_id), DEFAULT)
    limit = (env_kwargs or {}).get("max_episode_steps")
    if isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit <= MAX_EPISODE_STEPS:
        bounds = replace(bounds, max_length=limit)
    return bounds
