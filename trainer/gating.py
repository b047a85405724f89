"""The roll-out gate: is an evaluated checkpoint clearly worse than the best one so far?

Pure maths, no I/O: ``portal.campaigns.tasks.evaluations_sync`` applies it to each checkpoint whose
evaluation completes and holds a clearly worse one back from what clients are welcomed with and what
the pages present as the agent (docs/trainer.md, "Roll-out gate").

"Clearly worse" needs both, so that neither a tiny nor a noisy difference holds a checkpoint back:

- **Margin**: boss fights compare win rates, and the best's must exceed the candidate's by more
  than ``margin`` (absolute: 0.1 is ten points); other environments compare mean returns, and the
  best's must exceed the candidate's by more than ``margin`` times the best's absolute mean.
- **Enough fights to tell**: boss fights, the two 95 % Wilson score intervals (Wilson 1927; at
  ``z``) do not overlap; mean returns, the difference exceeds ``z`` standard errors of the difference
  of two means (Welch: sqrt(s1²/n1 + s2²/n2), with each evaluation's sample standard deviation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Evaluated:
    """One checkpoint's complete evaluation, as the gate needs it."""

    version: int
    episodes: int
    mean_return: float
    return_std: float | None = None  # sample standard deviation of the returns (None: unknown)
    wins: int | None = None  # boss fights won (None: no boss fight)

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.episodes if self.wins is not None and self.episodes else None


def wilson_interval(wins: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a win rate of ``wins`` out of ``n`` (``(0, 1)`` for no fights)."""
    if n <= 0:
        return 0.0, 1.0
    p = wins / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def held_back_reason(candidate: Evaluated, best: Evaluated, *, margin: float, z: float = 1.96) -> str | None:
    """Why ``candidate`` is held back against ``best``, in words staff read, or None: roll it out.

    A candidate that is the best itself, or evaluated on a different footing (one a boss fight, the
    other not), is never held back.
    """
    if candidate.version == best.version or candidate.episodes <= 0 or best.episodes <= 0:
        return None
    if candidate.wins is not None and best.wins is not None:
        c_rate, b_rate = candidate.wins / candidate.episodes, best.wins / best.episodes
        if b_rate - c_rate <= margin:
            return None
        if (
            wilson_interval(candidate.wins, candidate.episodes, z)[1]
            >= wilson_interval(best.wins, best.episodes, z)[0]
        ):
            return None  # the intervals overlap: too few fights to tell
        return (
            f"held back: v{candidate.version} won {c_rate:.0%} of {candidate.episodes} fights "
            f"vs best v{best.version}'s {b_rate:.0%} of {best.episodes}"
        )
    if (candidate.wins is None) != (best.wins is None):
        return None
    gap = best.mean_return - candidate.mean_return
    if gap <= margin * abs(best.mean_return):
        return None
    if candidate.return_std is None or best.return_std is None or candidate.episodes < 2 or best.episodes < 2:
        return None  # no spread known: cannot tell noise from a worse policy
    se = math.sqrt(candidate.return_std**2 / candidate.episodes + best.return_std**2 / best.episodes)
    if gap <= z * se:
        return None
    return (
        f"held back: v{candidate.version} returned {candidate.mean_return:.4g} ± {candidate.return_std:.3g} "
        f"over {candidate.episodes} episodes vs best v{best.version}'s {best.mean_return:.4g} "
        f"± {best.return_std:.3g} over {best.episodes}"
    )


def best_of(evaluated: list[Evaluated]) -> Evaluated | None:
    """The best evaluation: the highest win rate in boss fights (more fights break ties), else the
    highest mean return; the newest among equals."""
    if not evaluated:
        return None

    def score(e: Evaluated) -> tuple:
        return (e.win_rate if e.win_rate is not None else -1.0, e.mean_return, e.version)

    return max(evaluated, key=score)
