"""Greedy evaluation of checkpoints, the server's side: when to ask, the request, the results' figures.

The round trip, and who does what:

1. **Request** (here, called by the learner): every ``eval_every_samples`` samples the next published
   version is a checkpoint, and ``EvaluationSchedule.request`` writes ``{c<id>}:eval_request``
   (``CampaignKeys.eval_request``, fields ``REQUEST_FIELDS``: the model notice plus ``episodes``
   wanted and ``assigned`` so far) and the ``wanted`` field of the version's result hash.
2. **Hand-out** (the relay: its chunk store script, ``portal.relay.store``, see
   ``portal.relay.evaluation``): the ack of a chunk that ends an episode carries the request's
   ``{version, url, sha256}`` as its ``evaluate`` field while ``assigned < episodes``, counting it in
   ``assigned``.
3. **Result** (the client, ``client_app.evaluation``, plays the episode greedily and sends an ``eval``
   message; the relay's evaluation store script, ``portal.relay.evaluation``, adds it exactly once to
   ``{c<id>}:eval:<version>``, ``CampaignKeys.evals(version)``, fields ``RESULT_FIELDS``).
4. **Roll-up** (``evaluation_summary`` here, called by ``portal.campaigns.tasks.evaluations_sync``):
   a result hash becomes a checkpoint's figures; it counts for the campaign once it is complete.

Shared with the client (docs/protocol.md, "Evaluation episodes"): the ``evaluate`` field of the ack
and the ``eval`` message, both defined in ``client_app.protocol``. Shared with the relay's store
scripts (``portal/relay/``): the field names of both hashes below, which they read and write by name.
Nothing here imports Django: the learner and the portal's stats task import it alike.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from trainer.campaign import PublishedModel
from trainer.keys import CampaignKeys

REQUEST_TTL_S = 3600  # an evaluation nobody finished stops being handed out after this long
TIMEOUT_S = 120.0  # a new evaluation waits for the last one to finish, at most this long
TRAIL_EPISODES = 20  # training episodes behind the trailing return and length the budgeted schedule reads
PLATEAU_SPACINGS = 4  # a budgeted schedule evaluates at least this many spacings apart, improving or not

#: ``{c<id>}:eval_request``: the checkpoint's notice (version, url, sha256, as the ack's ``evaluate``),
#: the episodes wanted, and how many the relay has handed out.
REQUEST_FIELDS = ("version", "url", "sha256", "episodes", "assigned")
#: ``{c<id>}:eval:<version>``: ``wanted`` (written with the request); ``episodes``, ``return_sum``,
#: ``return_sq_sum`` (the returns' spread, for the roll-out gate), ``steps`` (every result); boss fights add ``fights`` and ``wins`` (the latter with the first win)
#: and, over the fights that reported HP left, ``hp_fights``, ``boss_hp_sum`` and ``player_hp_sum``.
RESULT_FIELDS = (
    "wanted", "episodes", "return_sum", "return_sq_sum", "steps", "fights", "wins", "hp_fights", "boss_hp_sum", "player_hp_sum",
)


def evaluation_request(client: redis.Redis, keys: CampaignKeys, *, model: PublishedModel, episodes: int) -> None:
    """Ask clients for ``episodes`` greedy episodes of ``model``, replacing any earlier request."""
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.eval_request)
    pipe.hset(keys.eval_request, mapping={**model, "episodes": episodes, "assigned": 0})
    pipe.expire(keys.eval_request, REQUEST_TTL_S)
    pipe.hset(keys.evals(model["version"]), "wanted", episodes)
    pipe.execute()


class EvaluationSchedule:
    """When the learner's next evaluated checkpoint is due, and the evaluation in progress.

    Evaluation episodes are volunteers' game time that trains nothing, so besides the spacing
    (``every_samples``) a budget holds them to ``max_share`` of the campaign's steps: the next
    evaluation is asked for only once the evaluation steps played so far (the campaign's
    ``eval_steps``, counted by the relay) plus what the last evaluation cost fit within ``max_share``
    of the steps trained on plus those. Short episodes (an agent that still loses fast) are evaluated
    every ``every_samples``; long ones (CartPole's 500-step episodes, a long boss fight) further
    apart, by themselves (docs/trainer.md, "Evaluation").

    Under a budget (``max_share`` < 1) the schedule also reads the training episodes the learner
    ingests (``observe``): the next evaluation's cost is forecast from their current length (not
    only from the last evaluation's, which an improving agent outgrows), and a due evaluation waits
    while the trailing training return is below the one at the last evaluation (an agent that got
    no better since is not worth the budget), for at most ``PLATEAU_SPACINGS`` spacings.
    """

    def __init__(
        self, client: redis.Redis, keys: CampaignKeys, *, every_samples: int, episodes: int, max_share: float = 1.0
    ):
        self.client = client
        self.keys = keys
        self.every_samples = every_samples  # 0: no evaluations
        self.episodes = episodes
        self.max_share = max_share  # of all client steps, evaluation steps included
        self.next_at = every_samples  # samples_total of the next evaluation
        self.pending: tuple[int, float] | None = None  # (version, monotonic time asked) in progress
        self.last_cost = 0  # env steps the last finished evaluation took
        self.trail: deque[tuple[float, int]] = deque(maxlen=TRAIL_EPISODES)  # training (return, length)
        self.trail_at_request: float | None = None  # trailing training return when the last was asked
        self.requested_at = 0  # samples_total of the last request

    def observe(self, episode_return: float, length: int) -> None:
        """A training episode the learner ingested ended with this return after this many steps."""
        self.trail.append((float(episode_return), int(length)))

    def trailing_return(self) -> float | None:
        return sum(r for r, _ in self.trail) / len(self.trail) if self.trail else None

    def forecast_cost(self) -> int:
        """Env steps the next evaluation will likely take: the last one's, or more when the training
        episodes have grown longer since (the agent improved: CartPole's greedy episodes go from 20
        to 500 steps between two evaluations)."""
        if not self.trail:
            return self.last_cost
        mean_length = sum(n for _, n in self.trail) / len(self.trail)
        return max(self.last_cost, round(self.episodes * mean_length))

    def schedule_after(self, samples_total: int) -> None:
        """The next evaluation comes at the next multiple of ``every_samples`` past the sample count."""
        if self.every_samples:
            self.next_at = (samples_total // self.every_samples + 1) * self.every_samples

    def due(self, samples_total: int) -> bool:
        """Time for the next evaluated checkpoint: enough new samples, and the last evaluation is
        finished (or timed out: its clients left), so that each one completes rather than being
        superseded half-way by the next."""
        if not self.every_samples or samples_total < self.next_at:
            return False
        if self.pending is not None:
            version, asked_at = self.pending
            done, steps = self.client.hmget(self.keys.evals(version), "episodes", "steps")
            if int(done or 0) < self.episodes and time.monotonic() - asked_at <= TIMEOUT_S:
                return False
            self.pending = None
            self.last_cost = int(steps or 0)
        return self.within_budget(samples_total) and self.improving(samples_total)

    def within_budget(self, samples_total: int) -> bool:
        """Another evaluation as costly as forecast keeps evaluation within ``max_share`` of all steps
        (the first one always goes: nothing is spent yet)."""
        if self.max_share >= 1.0:
            return True
        spent = int(self.client.hget(self.keys.stats, "eval_steps") or 0)
        if not spent and not self.last_cost:
            return True
        cost = self.forecast_cost()
        return spent + cost <= self.max_share * (samples_total + spent + cost)

    def improving(self, samples_total: int) -> bool:
        """Under a budget: the agent plays at least as well as when the last evaluation was asked for
        (trailing training return), or ``PLATEAU_SPACINGS`` spacings have passed since."""
        if self.max_share >= 1.0 or self.trail_at_request is None or not self.trail:
            return True
        if samples_total - self.requested_at >= PLATEAU_SPACINGS * self.every_samples:
            return True
        return self.trailing_return() >= self.trail_at_request

    def request(self, model: PublishedModel, *, samples_total: int) -> None:
        """Ask for this checkpoint's episodes (the relay hands them out one at a time, with the ack of
        an episode's last chunk: docs/protocol.md, "Evaluation episodes"), and schedule the next."""
        evaluation_request(self.client, self.keys, model=model, episodes=self.episodes)
        self.schedule_after(samples_total)
        self.requested_at = samples_total
        self.trail_at_request = self.trailing_return()
        self.pending = (int(model["version"]), time.monotonic())


@dataclass(frozen=True)
class EvaluationSummary:
    """The figures of one version's evaluation results so far."""

    episodes: int
    wanted: int  # episodes the learner asked for
    mean_return: float
    wins: int | None  # None when the episodes were no boss fights
    boss_hp_left: float | None  # mean fractions over the fights that reported HP left
    player_hp_left: float | None
    return_std: float | None = None  # sample standard deviation (None: under 2 episodes, or not recorded)

    @property
    def complete(self) -> bool:
        """All the episodes asked for are in: the result counts for the campaign."""
        return self.episodes >= self.wanted

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.episodes if self.wins is not None else None


def evaluation_summary(raw: Mapping[bytes, bytes]) -> EvaluationSummary | None:
    """Summarise a version's result hash (``HGETALL`` of ``CampaignKeys.evals``); None before any result."""
    data = {k.decode(): float(v) for k, v in raw.items()}
    episodes = int(data.get("episodes", 0))
    if not episodes:
        return None
    hp_fights = int(data.get("hp_fights", 0))  # none in results stored before HP was recorded
    return EvaluationSummary(
        episodes=episodes,
        # Without "wanted" (results of a version nobody asked to evaluate), any result is complete.
        wanted=int(data.get("wanted", 1)),
        mean_return=data.get("return_sum", 0.0) / episodes,
        wins=int(data.get("wins", 0)) if "fights" in data else None,  # "wins" appears with the first win
        boss_hp_left=data.get("boss_hp_sum", 0.0) / hp_fights if hp_fights else None,
        player_hp_left=data.get("player_hp_sum", 0.0) / hp_fights if hp_fights else None,
        return_std=return_std(data, episodes),
    )


def return_std(data: Mapping[str, float], episodes: int) -> float | None:
    """The sample standard deviation of the returns from their sum and sum of squares (results stored
    before the sum of squares was recorded have none)."""
    if episodes < 2 or "return_sq_sum" not in data:
        return None
    mean = data.get("return_sum", 0.0) / episodes
    return math.sqrt(max(0.0, (data["return_sq_sum"] - episodes * mean * mean) / (episodes - 1)))
