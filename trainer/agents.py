"""The two learning algorithms behind one small interface the learner's loop drives.

An agent owns its networks, its data (replay buffer or rollout), its observation statistics and its
counters; ``trainer.learner`` owns the plumbing (lease, stream, publication, checkpoints) and asks:
``wants_data`` (read the stream now?), ``ingest`` (a chunk from it), ``train`` (one time slice of
learning), ``publish_due`` and ``published`` (weights, exploration and normaliser for clients).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import torch

from client_app.policy import ObsNorm, Policy, PolicyNetworkSpec, QNetworkSpec
from client_app.protocol import Chunk
from trainer.config import AlgorithmConfig, DQNConfig, PPOConfig, chunks_for
from trainer.dqn import DQN, updates_allowed
from trainer.networks import export_params, load_params
from trainer.normalizer import RunningMeanStd
from trainer.ppo import PPO, Rollout, gae, vtrace_chunks
from trainer.replay import pinned, replay_buffer_for

log = logging.getLogger(__name__)

# Unread chunks past which a DQN learner in large-batch mode doubles its batch (about half the relay's
# default high-water mark, SOULSAI_STREAM_HIGH_WATER = 64: the batch grows before clients are slowed).
LARGE_BATCH_BACKLOG = 32


class Agent:
    """What both algorithms share: the device, the observation statistics and the sample counters."""

    config: AlgorithmConfig
    spec: QNetworkSpec | PolicyNetworkSpec

    def __init__(
        self, config: AlgorithmConfig, *, obs_dim: int, n_actions: int, action_start: int, device: torch.device
    ):
        self.config = config
        self.device = device
        # On CUDA, batches go to the GPU from pinned host memory with non-blocking copies (the
        # networks' ``.to(device, non_blocking=True)``); on the CPU they stay plain NumPy arrays.
        self.pin_memory = device.type == "cuda"
        self.rng = np.random.default_rng()
        self.obs_dim = obs_dim
        self.n_actions = n_actions
        self.action_start = action_start
        self.normalizer = RunningMeanStd(obs_dim, clip=config.obs_norm_clip) if config.normalize_obs else None
        self.samples_total = 0  # env steps ingested over the campaign's life, used or dropped (epsilon, lr decay)
        self.metrics: dict[str, float] = {}
        # What came out non-finite in an update (the network diverged), or None: the learner then goes
        # back to its last good checkpoint instead of training on (or publishing) NaN.
        self.diverged: str | None = None

    def _observe(self, chunk: Chunk) -> np.ndarray:
        """The chunk's observations as flat float32 rows; updates the running statistics."""
        obs = np.asarray(chunk.obs, dtype=np.float32).reshape(chunk.steps + 1, -1)
        if self.normalizer is not None:
            # The last observation is the next chunk's first: count it once, with the next chunk,
            # unless the episode ended here.
            self.normalizer.update(obs if chunk.episode_done else obs[:-1])
        return obs

    def _normalize(self, obs: np.ndarray) -> np.ndarray:
        return self.normalizer.normalize(obs) if self.normalizer is not None else obs

    def _pinned(self, array: np.ndarray) -> np.ndarray:
        """``array`` in pinned host memory when training on CUDA (the copy to the GPU does not block)."""
        return pinned(array) if self.pin_memory else array

    def guide(self) -> dict[str, float]:
        """What a published model tells clients of a guide (save_model's keywords; none by default)."""
        return {}

    def void(self, machine_id: int) -> int:
        """Drop every sample machine ``machine_id`` sent that the agent still holds (staff voided its
        data); returns how many. The observation statistics keep what they saw: one machine's share of
        a running mean, within the campaign's bounds, fades as data comes in."""
        raise NotImplementedError

    def chunks_wanted(self, chunk_steps: int) -> int | None:
        """How many chunks the next read should take at most (None: the stream's batch)."""
        return None

    def obs_norm(self) -> ObsNorm | None:
        return self.normalizer.published() if self.normalizer is not None else None

    def base_state(self) -> dict[str, Any]:
        return {
            "samples_total": self.samples_total,
            "normalizer": self.normalizer.state_dict() if self.normalizer is not None else None,
        }

    def load_base_state(self, state: dict[str, Any]) -> None:
        self.samples_total = int(state["samples_total"])
        if self.normalizer is not None and state.get("normalizer") is not None:
            self.normalizer.load_state_dict(state["normalizer"])


class DQNAgent(Agent):
    """DQN fed by chunks, at a fixed replay ratio (``samples_per_update``) both ways."""

    algorithm = "dqn"

    def __init__(self, config: DQNConfig, *, obs_dim: int, n_actions: int, action_start: int, device: torch.device):
        super().__init__(config, obs_dim=obs_dim, n_actions=n_actions, action_start=action_start, device=device)
        self.spec = QNetworkSpec(
            obs_dim=obs_dim,
            n_actions=n_actions,
            hidden=tuple(config.hidden),
            dueling=config.dueling,
            n_quantiles=config.quantiles,
            noisy=config.noisy,
        )
        self.dqn = DQN(self.spec, config, device=device)
        self.buffer = replay_buffer_for(
            config, obs_dim=obs_dim, action_start=action_start, n_actions=n_actions, pin_memory=self.pin_memory
        )
        self.guided_samples = 0  # ingested from episodes the guide played (this run)...
        self.guide_checked = 0  # ...and of those, the steps whose action is the guide's (the margin's)
        self.run_samples = 0  # ingested by this run (drives the replay ratio with run_updates)
        self.run_updates = 0  # in batch_size units: a large-batch update counts as batch_scale of them
        self.batch_scale = 1  # large-batch mode: batch_size times this per update (config.large_batch_max)

    @property
    def updates(self) -> int:
        return self.dqn.updates

    def wants_data(self) -> bool:
        # Replay ratio both ways: learn while behind it, read only once caught up. Unread chunks then
        # wait in the stream, whose length is the relay's back-pressure signal.
        return self.run_updates >= updates_allowed(self.run_samples, self.config)

    def ingest(self, chunk: Chunk, *, current_version: int, machine_id: int = 0) -> int:
        obs = self._observe(chunk)
        steps = self.buffer.add_chunk(chunk, machine_id=machine_id, demo=self._guided_steps(chunk, obs))
        self.run_samples += steps
        self.samples_total += steps
        self.guided_samples += steps if chunk.guided else 0
        return steps

    def _guided_steps(self, chunk: Chunk, obs: np.ndarray) -> np.ndarray | None:
        """Of a chunk its client says the guide played, the steps whose action is the guide's, checked
        here from the observations (the scripted player reads nothing else): a client that lies about
        it can teach the margin loss nothing the guide would not. None when nothing is guided."""
        if not (chunk.guided and self.config.guide == "scripted" and self.config.demo_margin > 0):
            return None
        from client_app.arena.scripted import guide_actions

        actions = np.asarray(chunk.actions, dtype=np.int64) - self.buffer.action_start
        checked = guide_actions(obs[:-1]) == actions
        self.guide_checked += int(checked.sum())
        return checked

    def guide(self) -> dict[str, float]:
        """What a published model tells clients of the guide: its share of episodes and its epsilon."""
        share = self.config.guide_share_at(self.samples_total)
        return {"guide_share": share, "guide_epsilon": self.config.guide_epsilon} if share > 0 else {}

    def void(self, machine_id: int) -> int:
        return self.buffer.void(machine_id)

    def backlog(self, chunks: int) -> None:
        """(about once a second) How many chunks wait unread: large-batch mode doubles the batch while
        they pile up past LARGE_BATCH_BACKLOG and halves it once they are under half of that."""
        if chunks > LARGE_BATCH_BACKLOG:
            self.batch_scale = min(self.config.large_batch_max, 2 * self.batch_scale)
        elif chunks < LARGE_BATCH_BACKLOG // 2:
            self.batch_scale = max(1, self.batch_scale // 2)

    def train(self, until: float, publish_due) -> None:
        """Gradient updates until the replay ratio is met, a model is due or ``until`` (monotonic)."""
        while self.run_updates < updates_allowed(self.run_samples, self.config):
            scale = self.batch_scale
            # The observations and next observations come normalised, as halves of one array.
            norm = self.normalizer.published() if self.normalizer is not None else None
            batch = self.buffer.sample(scale * self.config.batch_size, self.rng, beta=self.dqn.beta(), norm=norm)
            update = self.dqn.update(batch)
            if not (np.isfinite(update.td_errors).all() and math.isfinite(update.metrics["losses/td_loss"])):
                self.diverged = "the TD errors"  # stop here: as priorities they would poison the buffer
                break
            self.buffer.update_priorities(batch.indices, update.td_errors)
            self.metrics = update.metrics
            self.run_updates += scale
            if publish_due() or time.monotonic() >= until:
                break

    def publish_due(self, *, version: int, updates_since: int, seconds_since: float) -> bool:
        if updates_since == 0:
            return False
        # The campaign's first model goes out at once: until then clients play at random.
        return version == 0 or (
            updates_since >= self.config.publish_every_updates and seconds_since >= self.config.publish_min_seconds
        )

    def exploration(self) -> float:
        return self.config.epsilon(self.samples_total)

    def params(self) -> dict[str, np.ndarray]:
        return export_params(self.dqn.q)

    def state_dict(self) -> dict[str, Any]:
        state = {"dqn": self.dqn.state_dict(), **self.base_state()}
        if self.config.checkpoint_replay:
            state["replay"] = self.buffer.state_dict()
        return state

    def load(self, policy: Policy, state: dict[str, Any]) -> None:
        load_params(self.dqn.q, policy.params)
        self.dqn.load_state_dict(state["dqn"])
        self.load_base_state(state)
        if self.config.checkpoint_replay and "replay" in state:
            # New transitions' priority; the TD errors of the old ones are re-learnt as they are replayed.
            self.buffer.load_state_dict(state["replay"])

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"epsilon": round(self.exploration(), 4), "buffer": len(self.buffer)}
        if self.config.large_batch_max > 1:
            stats["batch_size"] = self.batch_scale * self.config.batch_size
        if "losses/td_loss" in self.metrics:
            stats["td_loss"] = self.metrics["losses/td_loss"]
        if self.config.guide != "none":
            stats["guide_share"] = round(self.config.guide_share_at(self.samples_total), 4)
            stats["guided_samples"] = self.guided_samples
            stats["guide_checked"] = self.guide_checked
            if "losses/margin_loss" in self.metrics:
                stats["margin_loss"] = self.metrics["losses/margin_loss"]
        return stats


class PPOAgent(Agent):
    """PPO on a rollout gathered from whichever clients' chunks arrive, within the staleness bound."""

    algorithm = "ppo"

    def __init__(self, config: PPOConfig, *, obs_dim: int, n_actions: int, action_start: int, device: torch.device):
        super().__init__(config, obs_dim=obs_dim, n_actions=n_actions, action_start=action_start, device=device)
        self.spec = PolicyNetworkSpec(obs_dim=obs_dim, n_actions=n_actions, hidden=tuple(config.hidden))
        self.ppo = PPO(self.spec, config, device=device)
        # (chunk, its raw flat observations, the machine that sent it)
        self.pending: list[tuple[Chunk, np.ndarray, int]] = []
        self.pending_steps = 0
        self.dropped_samples = 0  # too stale, or without log-probabilities

    @property
    def updates(self) -> int:
        return self.ppo.updates

    def wants_data(self) -> bool:
        return self.pending_steps < self.config.rollout_steps

    def chunks_wanted(self, chunk_steps: int) -> int | None:
        # What fills the rollout, no more: a batch of 16 chunks overshot it (a 256-step rollout
        # trained on 512 steps or more), and the rollout's last chunks were played by a policy one
        # iteration older than they had to be.
        return max(1, chunks_for(self.config.rollout_steps - self.pending_steps, chunk_steps))

    def ingest(self, chunk: Chunk, *, current_version: int, machine_id: int = 0) -> int:
        if chunk.logp is None or chunk.model_version < current_version - self.config.staleness_bound:
            # Played by a policy too old for the ratio to correct (or by one that recorded no
            # log-probabilities): learning from it would pull the policy towards stale behaviour.
            self.dropped_samples += chunk.steps
            self.samples_total += chunk.steps  # env steps all the same: the budget counts them
            return 0
        obs = self._observe(chunk)
        self.pending.append((chunk, obs, machine_id))
        self.pending_steps += chunk.steps
        self.samples_total += chunk.steps
        return chunk.steps

    def _rollout(self) -> Rollout:
        config = self.config
        # Every chunk's T + 1 observations, normalised once: the critic values all of them (the last
        # one is the bootstrap), the surrogate takes the first T.
        all_obs = self._normalize(np.concatenate([obs for _, obs, _ in self.pending]))
        values = self.ppo.values(self._pinned(all_obs))
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "actions", "logp", "adv", "ret", "masks")}
        any_masks = any(chunk.masks is not None for chunk, _, _ in self.pending)
        vtrace = config.off_policy == "vtrace"
        at = 0
        for chunk, _, _ in self.pending:
            steps = chunk.steps
            chunk_obs, chunk_values = all_obs[at : at + steps], values[at : at + steps + 1]
            at += steps + 1
            if not vtrace:
                advantages, returns = gae(
                    np.asarray(chunk.rewards, dtype=np.float64),
                    chunk_values,
                    terminated=bool(chunk.terminated),
                    gamma=config.gamma,
                    lam=config.gae_lambda,
                )
                parts["adv"].append(advantages)
                parts["ret"].append(returns)
            parts["obs"].append(chunk_obs)
            parts["actions"].append(np.asarray(chunk.actions, dtype=np.int64) - self.action_start)
            parts["logp"].append(np.asarray(chunk.logp, dtype=np.float32))
            if any_masks:
                masks = chunk.masks if chunk.masks is not None else np.ones((steps + 1, self.n_actions), bool)
                parts["masks"].append(np.asarray(masks, dtype=bool)[:steps])
        obs, actions, logp = (np.concatenate(parts[k]) for k in ("obs", "actions", "logp"))
        masks = np.concatenate(parts["masks"]) if any_masks else None
        if vtrace:
            # V-trace with the networks as they stand (pi_old): the surrogate's ratio is then taken
            # against pi_old, and min(rho_clip, pi_old / mu) rides in the advantage (trainer.ppo).
            logp_old = self.ppo.log_probs(obs, actions, masks)
            returns, advantages = vtrace_chunks(
                np.concatenate([np.asarray(chunk.rewards, dtype=np.float64) for chunk, _, _ in self.pending]),
                values,
                logp_old - logp,
                lengths=np.array([chunk.steps for chunk, _, _ in self.pending]),
                terminated=np.array([bool(chunk.terminated) for chunk, _, _ in self.pending]),
                gamma=config.gamma,
                lam=config.gae_lambda,
                rho_clip=config.vtrace_rho_clip,
                c_clip=config.vtrace_c_clip,
            )
            logp = logp_old.astype(np.float32)
        else:
            advantages, returns = np.concatenate(parts["adv"]), np.concatenate(parts["ret"])
        return Rollout(
            obs=self._pinned(obs.astype(np.float32)),
            actions=self._pinned(actions),
            logp_old=self._pinned(logp),
            advantages=self._pinned(advantages),
            returns=self._pinned(returns),
            masks=self._pinned(masks) if masks is not None else None,
        )

    def train(self, until: float, publish_due) -> None:
        """One PPO iteration once a whole rollout is in (it runs to the end: a few hundred ms)."""
        if self.pending_steps < self.config.rollout_steps:
            return
        rollout = self._rollout()
        self.metrics = self.ppo.update(rollout, self.rng, lr=self.config.lr_at(self.samples_total))
        losses = [name for name, value in self.metrics.items() if not math.isfinite(value)]
        if losses:
            self.diverged = ", ".join(losses)
        self.metrics["charts/dropped_samples"] = float(self.dropped_samples)
        self.pending.clear()
        self.pending_steps = 0

    def void(self, machine_id: int) -> int:
        kept = [entry for entry in self.pending if entry[2] != machine_id]
        removed = self.pending_steps - sum(chunk.steps for chunk, _, _ in kept)
        self.pending = kept
        self.pending_steps -= removed
        return removed

    def publish_due(self, *, version: int, updates_since: int, seconds_since: float) -> bool:
        # The initial policy goes out at once (clients then send log-probabilities of a real policy),
        # then every iteration: the staleness bound counts versions, so each one must be published.
        if version == 0:
            return True
        return updates_since > 0 and seconds_since >= self.config.publish_min_seconds

    def exploration(self) -> float:
        return 0.0  # a stochastic policy explores by sampling

    def params(self) -> dict[str, np.ndarray]:
        return export_params(self.ppo.actor)

    def state_dict(self) -> dict[str, Any]:
        return {"ppo": self.ppo.state_dict(), **self.base_state()}

    def load(self, policy: Policy, state: dict[str, Any]) -> None:
        load_params(self.ppo.actor, policy.params)
        self.ppo.load_state_dict(state["ppo"])
        self.load_base_state(state)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"rollout": self.pending_steps, "dropped_samples": self.dropped_samples}
        for key in ("policy_loss", "value_loss", "entropy", "approx_kl"):
            if f"losses/{key}" in self.metrics:
                stats[key] = round(self.metrics[f"losses/{key}"], 5)
        return stats


def agent_for(
    algorithm: str, config: AlgorithmConfig, *, obs_dim: int, n_actions: int, action_start: int, device: torch.device
) -> DQNAgent | PPOAgent:
    kinds = {"dqn": DQNAgent, "ppo": PPOAgent}
    if algorithm not in kinds:
        raise ValueError(f"unknown algorithm {algorithm!r}")
    return kinds[algorithm](config, obs_dim=obs_dim, n_actions=n_actions, action_start=action_start, device=device)
