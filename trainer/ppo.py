"""Proximal Policy Optimisation, the maths only: no Redis, no database, no files.

Schulman et al. 2017 (clipped surrogate), Schulman et al. 2016 (GAE). The rollout comes from many
clients at once, each chunk played by whichever published version that client had: the ratio is
taken against the log-probabilities the clients recorded (the behaviour policy), so data a version
or two old is still corrected for, and ``trainer.agents`` drops anything older than the bound.

With ``off_policy: "vtrace"`` (APPO: IMPALA's V-trace inside PPO's clipped surrogate), the
advantages and the critic's targets are V-trace's, computed with the networks as they stand when the
iteration starts (pi_old); the surrogate's ratio is then taken against pi_old, not the behaviour
policy, and the truncated weight min(rho_clip, pi_old / mu) rides in the advantage. The weight of a
sample, pi / mu = (pi / pi_old) * (pi_old / mu), is so split in two: the first factor is PPO's trust
region around the current policy, the second V-trace's truncated correction for the version played
(Hilton et al. 2021's "decoupled" PPO; RLlib's APPO does the same up to a cap of 2 on mu / pi_old).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

from client_app.policy import PolicyNetworkSpec
from trainer.config import PPOConfig
from trainer.networks import PolicyNetwork, ValueNetwork

STATE_FORMAT = 1


def gae(
    rewards: np.ndarray, values: np.ndarray, *, terminated: bool, gamma: float, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates of one sequence of T steps, and the critic's targets.

    ``values`` holds V(obs[0..T]): T + 1 values, the last one the bootstrap after the final step. It
    is used unless the sequence ended by termination (a truncated episode or a chunk cut in the middle
    of one did not end in the MDP, so it bootstraps). Returns (advantages, returns = advantages + V).
        delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)
        A_t     = delta_t + gamma * lam * A_{t+1},   A_T = 0
    """
    steps = rewards.shape[0]
    next_values = np.asarray(values[1:], dtype=np.float64).copy()
    if terminated:
        next_values[-1] = 0.0
    deltas = rewards.astype(np.float64) + gamma * next_values - values[:steps]
    advantages = np.zeros(steps, dtype=np.float64)
    running = 0.0
    for t in range(steps - 1, -1, -1):
        running = deltas[t] + gamma * lam * running
        advantages[t] = running
    return advantages.astype(np.float32), (advantages + values[:steps]).astype(np.float32)


def vtrace(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    log_rhos: np.ndarray,
    *,
    gamma: float,
    lam: float = 1.0,
    rho_clip: float = 1.0,
    c_clip: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """V-trace targets and policy-gradient advantages (Espeholt et al. 2018, IMPALA, section 4).

    Arrays have time on the last axis: one sequence (T,) or a batch of them (B, T), each row its own
    sequence. ``values`` is V(x_t) and ``next_values`` V(x_{t+1}) under the current critic, 0 after a
    termination (a truncation or a chunk's end bootstraps from the last observation, as ``gae``).
    ``log_rhos`` is log pi(a_t | x_t) - log mu(a_t | x_t): target against behaviour policy. Zero
    rewards, values and next values pad a shorter row on the right (their deltas are 0).
        rho_t   = min(rho_clip, pi/mu),   c_t = lam * min(c_clip, pi/mu)
        delta_t = rho_t * (r_t + gamma * V(x_{t+1}) - V(x_t))
        v_t - V(x_t) = delta_t + gamma * c_t * (v_{t+1} - V(x_{t+1})),   0 past the sequence's end
        A_t     = rho_t * (r_t + gamma * v_{t+1} - V(x_t))
    Returns (v_t, A_t). With pi == mu and lam = 1, v_t is the discounted return bootstrapped at the
    end (GAE(1)'s target); with lam < 1 it is GAE(lam)'s target (lam folded into c,
    as the paper suggests).
    """
    log_rhos = np.asarray(log_rhos, dtype=np.float64)
    # exp of the clipped log: no overflow for a behaviour probability near 0.
    rhos = np.exp(np.minimum(log_rhos, np.log(rho_clip)))
    cs = lam * np.exp(np.minimum(log_rhos, np.log(c_clip)))
    values = np.asarray(values, dtype=np.float64)
    next_values = np.asarray(next_values, dtype=np.float64)
    rewards = np.asarray(rewards, dtype=np.float64)
    deltas = rhos * (rewards + gamma * next_values - values)
    # One reverse scan over time, vectorised over the rows: acc[t] = v_t - V(x_t).
    acc = np.zeros(deltas.shape[:-1] + (deltas.shape[-1] + 1,), dtype=np.float64)
    for t in range(deltas.shape[-1] - 1, -1, -1):
        acc[..., t] = deltas[..., t] + gamma * cs[..., t] * acc[..., t + 1]
    vs = values + acc[..., :-1]
    # v_{t+1} = V(x_{t+1}) + (v_{t+1} - V(x_{t+1})); past the end the correction is 0: the bootstrap.
    advantages = rhos * (rewards + gamma * (next_values + acc[..., 1:]) - values)
    return vs.astype(np.float32), advantages.astype(np.float32)


def vtrace_chunks(
    rewards: np.ndarray,
    values: np.ndarray,
    log_rhos: np.ndarray,
    *,
    lengths: np.ndarray,
    terminated: np.ndarray,
    gamma: float,
    lam: float,
    rho_clip: float,
    c_clip: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``vtrace`` over chunks laid end to end: rewards and log_rhos (N,), values (N + chunks,), each
    chunk's T + 1 values (the last its bootstrap, unused where ``terminated``). Every chunk is its own
    sequence: it bootstraps from its last observation unless its episode terminated there. The
    chunks go into one zero-padded (chunks, longest) batch, scanned once. Returns (v_t, A_t), (N,).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    rows = np.repeat(np.arange(lengths.size), lengths)
    starts = np.cumsum(lengths) - lengths
    cols = np.arange(rows.size) - starts[rows]
    value_at = np.arange(rows.size) + rows  # the step's V(x_t) in ``values`` (each chunk has one extra)
    next_values = values[value_at + 1].astype(np.float64)
    next_values[(cols == lengths[rows] - 1) & np.asarray(terminated, dtype=bool)[rows]] = 0.0
    shape = (lengths.size, int(lengths.max()))
    padded = [np.zeros(shape) for _ in range(4)]
    for grid, flat in zip(padded, (rewards, values[value_at], next_values, log_rhos), strict=True):
        grid[rows, cols] = flat
    vs, advantages = vtrace(*padded, gamma=gamma, lam=lam, rho_clip=rho_clip, c_clip=c_clip)
    return vs[rows, cols], advantages[rows, cols]


class Rollout(NamedTuple):
    """Steps gathered for one policy update (any number of clients and chunks, concatenated)."""

    obs: np.ndarray  # (N, obs_dim) float32, already normalised
    actions: np.ndarray  # (N,) int64, indices from 0
    logp_old: np.ndarray  # (N,) float32, the ratio's anchor: the client's log mu(a | s) (V-trace: pi_old's)
    advantages: np.ndarray  # (N,) float32
    returns: np.ndarray  # (N,) float32, the critic's regression targets
    masks: np.ndarray | None  # (N, n_actions) bool or None


def masked_logits(logits: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    if masks is None:
        return logits
    return logits.masked_fill(~masks, torch.finfo(logits.dtype).min)


class PPO:
    """An actor (published to clients) and a critic (kept here), trained with one Adam optimiser."""

    def __init__(self, spec: PolicyNetworkSpec, config: PPOConfig, *, device: str | torch.device = "cpu"):
        self.spec = spec
        self.config = config
        self.device = torch.device(device)
        self.actor = PolicyNetwork(spec).to(self.device)
        self.critic = ValueNetwork(spec.obs_dim, tuple(config.hidden)).to(self.device)
        self.optimizer = torch.optim.Adam(
            [*self.actor.parameters(), *self.critic.parameters()], lr=config.lr, eps=1e-5
        )
        self.updates = 0  # gradient steps
        self.iterations = 0  # rollouts trained on

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array)).to(self.device, non_blocking=True)

    @torch.no_grad()
    def values(self, obs: np.ndarray) -> np.ndarray:
        """V(s) for a batch of (normalised) observations."""
        return self.critic(self._tensor(obs).float()).cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def log_probs(self, obs: np.ndarray, actions: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """log pi(a | s) under the current actor, for a batch of (normalised) observations."""
        logits = self.actor(self._tensor(obs).float())
        logits = masked_logits(logits, self._tensor(masks).bool() if masks is not None else None)
        log_probs = torch.log_softmax(logits, dim=-1)
        chosen = log_probs.gather(1, self._tensor(actions).long().unsqueeze(1)).squeeze(1)
        return chosen.cpu().numpy().astype(np.float64)

    def update(self, rollout: Rollout, rng: np.random.Generator, *, lr: float | None = None) -> dict[str, float]:
        """``epochs`` passes of shuffled minibatches over the rollout; returns the last pass's metrics."""
        config = self.config
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        obs = self._tensor(rollout.obs).float()
        actions = self._tensor(rollout.actions).long()
        logp_old = self._tensor(rollout.logp_old).float()
        advantages = self._tensor(rollout.advantages).float()
        returns = self._tensor(rollout.returns).float()
        masks = self._tensor(rollout.masks).bool() if rollout.masks is not None else None
        n = obs.shape[0]
        sums = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0, "clip_fraction": 0.0}
        batches = 0
        for _ in range(config.epochs):
            order = torch.as_tensor(rng.permutation(n), device=self.device)
            for start in range(0, n, config.minibatch_size):
                idx = order[start : start + config.minibatch_size]
                if idx.numel() < 2:
                    continue
                logits = masked_logits(self.actor(obs[idx]), masks[idx] if masks is not None else None)
                log_probs = torch.log_softmax(logits, dim=-1)
                logp = log_probs.gather(1, actions[idx].unsqueeze(1)).squeeze(1)
                # Entropy over allowed actions only: masked ones have probability 0 (0 * log 0 := 0).
                probs = log_probs.exp()
                entropy = -(probs * torch.where(probs > 0, log_probs, torch.zeros_like(log_probs))).sum(-1).mean()
                adv = advantages[idx]
                if config.normalize_advantage:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                log_ratio = logp - logp_old[idx]
                ratio = log_ratio.exp()
                surrogate = torch.min(
                    ratio * adv, torch.clamp(ratio, 1 - config.clip_range, 1 + config.clip_range) * adv
                )
                policy_loss = -surrogate.mean()
                value_loss = F.mse_loss(self.critic(obs[idx]), returns[idx])
                loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy

                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(
                    [*self.actor.parameters(), *self.critic.parameters()], config.max_grad_norm
                )
                self.optimizer.step()
                self.updates += 1
                with torch.no_grad():
                    sums["policy_loss"] += float(policy_loss)
                    sums["value_loss"] += float(value_loss)
                    sums["entropy"] += float(entropy)
                    # Schulman's k3 estimator of KL(old || new), always >= 0.
                    sums["approx_kl"] += float(((ratio - 1) - log_ratio).mean())
                    sums["clip_fraction"] += float(((ratio - 1).abs() > config.clip_range).float().mean())
                batches += 1
        self.iterations += 1
        return {f"losses/{k}": v / max(batches, 1) for k, v in sums.items()}

    def state_dict(self) -> dict[str, Any]:
        """Everything but the actor's weights (those travel as the published safetensors)."""
        return {
            "format": STATE_FORMAT,
            "critic": {k: v.detach().cpu() for k, v in self.critic.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            "iterations": self.iterations,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown PPO state format {state.get('format')!r}")
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        self.iterations = int(state["iterations"])
