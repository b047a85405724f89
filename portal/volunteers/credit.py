"""Credit, the pure maths: what a volunteer's accepted steps are worth, recent credit, badges.

Credit is BOINC's idea (a "cobblestone" is a fixed amount of a reference machine's work) applied to
environment steps: **one credit is one second of a volunteer machine's time spent playing**, so
campaigns are comparable whatever their environment. An accepted step of a campaign earns
``seconds_per_step(env)`` credit:

- SoulsGym (the real game): 0.1 s of game time per step, divided by the campaign's ``game_speed``;
- the simulated Iudex arena: 0.001 s (the arena steps in about 0.7 ms plus the policy's forward pass);
- CartPole: 0.0002 s (about 0.13 ms plus the policy);
- any other environment: 0.001 s.

So an hour of the real game (36,000 steps) earns 3,600 credit, and CartPole needs 18 million accepted
steps for the same. Only accepted steps count: chunks the relay refused never reach the counters, and
voided data is taken off them.

Recent credit (RAC, BOINC's "recent average credit"): an exponentially decaying average with a
half-life of 7 days, in credit per day. Each hour's credit weighs ``2 ** (-age / half_life)``; the sum
times ``ln 2 / half_life`` is a steady volunteer's credit per day (a volunteer giving ``c`` a day for
weeks has a recent credit of ``c``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

SOULSGYM_STEP_SECONDS = 0.1
STEP_SECONDS = {"soulsai/IudexArena-v0": 0.001, "CartPole-v1": 0.0002}
DEFAULT_STEP_SECONDS = 0.001
HALF_LIFE = timedelta(days=7)
# Hours older than this weigh under 2**-10 (0.1%): left out of recent credit, bounding the work.
RECENT_HORIZON = HALF_LIFE * 10

# Milestones of total credit (a badge each), and the top shares of recent credit (BOINC's scheme).
MILESTONES: tuple[tuple[float, str], ...] = (
    (60, "First minute"),
    (3_600, "One hour"),
    (86_400, "One day"),
    (604_800, "One week"),
    (2_592_000, "One month"),
)
TOP_SHARES: tuple[tuple[float, str], ...] = ((0.01, "Top 1%"), (0.05, "Top 5%"), (0.25, "Top 25%"))


def seconds_per_step(env_id: str, env_kwargs: dict | None = None) -> float:
    """Credit one accepted step of ``env_id`` earns (seconds of a volunteer machine's time)."""
    if str(env_id).startswith("SoulsGym"):
        try:
            speed = float((env_kwargs or {}).get("game_speed", 1.0))
        except (TypeError, ValueError):
            speed = 1.0
        return SOULSGYM_STEP_SECONDS / speed if speed > 0 and math.isfinite(speed) else SOULSGYM_STEP_SECONDS
    return STEP_SECONDS.get(env_id, DEFAULT_STEP_SECONDS)


class Bucket(NamedTuple):
    hour: datetime
    credit: float


def recent_credit(buckets: Iterable[Bucket], *, now: datetime, half_life: timedelta = HALF_LIFE) -> float:
    """Exponentially decaying average of hourly credit, in credit per day (see the module's doc)."""
    days = half_life / timedelta(days=1)
    total = 0.0
    for hour, credit in buckets:
        # The bucket's middle: an hour still filling counts from its half hour.
        age_days = max(0.0, (now - hour - timedelta(minutes=30)) / timedelta(days=1))
        total += credit * 2.0 ** (-age_days / days)
    return total * math.log(2) / days


def milestone_badges(total_credit: float) -> list[str]:
    return [name for threshold, name in MILESTONES if total_credit >= threshold]


def top_share_badge(rank: int, population: int) -> str | None:
    """The badge of the ``rank``-th (1 = most) recent credit among ``population`` volunteers with any."""
    if rank < 1 or population < 1:
        return None
    for share, name in TOP_SHARES:
        if rank <= max(1, math.floor(population * share)):
            return name
    return None
