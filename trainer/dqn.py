"""Deep Q-learning, the maths only: no Redis, no database, no files (the plumbing is ``trainer.learner``).

Mnih et al. 2015 (target network, Huber loss), van Hasselt et al. 2016 (double Q-learning),
Wang et al. 2016 (dueling head, in ``trainer.networks``), Sutton & Barto 2018 ch. 7 (n-step returns,
computed by ``trainer.replay``), Schaul et al. 2016 (prioritized replay, ``trainer.per``); opt-in:
Dabney et al. 2017 (QR-DQN: quantile regression, ``quantile_huber_loss``) and Fortunato et al. 2017
(NoisyNet, ``trainer.networks.NoisyLinear``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from client_app.policy import QNetworkSpec
from trainer.config import DQNConfig
from trainer.dqn_grad import HandGradients, large_margin, supported
from trainer.networks import build_q_network
from trainer.per import beta_at
from trainer.replay import Batch, stacked_obs

STATE_FORMAT = 1


def td_target(
    returns: torch.Tensor,
    discounts: torch.Tensor,
    next_q_target: torch.Tensor,
    next_q_online: torch.Tensor | None = None,
    next_masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """n-step TD targets y = G + discount * Q'(s_{t+m}, a*), with discount = gamma^m or 0 if terminated.

    With n = 1 this is the familiar r + gamma * (1 - done) * Q'(s', a*). With ``next_q_online``
    (double Q-learning) a* is the online network's argmax, valued by the target network; without it,
    a* is the target network's own argmax (plain DQN, which overestimates). With ``next_masks``, a*
    ranges over the actions allowed at s_{t+m} only: a forbidden action's value is never a target.
    """
    best = _best_next(next_q_target, next_q_online, next_masks)
    return returns + discounts * next_q_target.gather(1, best).squeeze(1)


def _best_next(
    next_values: torch.Tensor, next_q_online: torch.Tensor | None, next_masks: torch.Tensor | None
) -> torch.Tensor:
    """a*, (B, 1): the online network's argmax (double Q) or else the target network's own, over the
    actions allowed at the next observation."""
    scores = next_values if next_q_online is None else next_q_online
    if next_masks is not None:
        scores = scores.masked_fill(~next_masks, torch.finfo(scores.dtype).min)
    return scores.argmax(dim=1, keepdim=True)


def quantile_td_target(
    returns: torch.Tensor,
    discounts: torch.Tensor,
    next_quantiles_target: torch.Tensor,
    next_q_online: torch.Tensor | None = None,
    next_masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """QR-DQN's target distribution, (B, N): T theta_j = G + discount * theta'_j(s_{t+m}, a*).

    Dabney et al. 2017, algorithm 1, with n-step returns; a* maximises the mean of the quantiles, the
    Q-value: the online network's Q-values with double Q-learning (``next_q_online``), the target
    network's own otherwise, over the allowed actions only (``next_masks``), as in ``td_target``.
    ``next_quantiles_target`` is (B, n_actions, N).
    """
    best = _best_next(next_quantiles_target.mean(dim=2), next_q_online, next_masks)
    n = next_quantiles_target.shape[2]
    next_theta = next_quantiles_target.gather(1, best.unsqueeze(2).expand(-1, 1, n)).squeeze(1)
    return returns.unsqueeze(1) + discounts.unsqueeze(1) * next_theta


def quantile_midpoints(n: int, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """tau_hat_i = (2i + 1) / 2N, i = 0..N-1: the quantile levels the N outputs estimate (Dabney et al.
    2017, lemma 2: the midpoints minimise the 1-Wasserstein distance to the target distribution)."""
    return (2 * torch.arange(n, device=device, dtype=torch.float32) + 1) / (2 * n)


def quantile_huber_loss(
    quantiles: torch.Tensor, targets: torch.Tensor, taus: torch.Tensor, kappa: float = 1.0
) -> torch.Tensor:
    """The quantile Huber loss of each sample, (B,): sum_i mean_j rho^kappa_{tau_i}(T theta_j - theta_i).

    Dabney et al. 2017, eq. 10 and algorithm 1: rho^kappa_tau(u) = |tau - 1{u < 0}| * L_kappa(u) / kappa,
    L_kappa the Huber loss. ``quantiles`` theta_i (B, N) of the action taken, ``targets`` T theta_j
    (B, N'), ``taus`` the N levels of theta. The easy-to-miss step: the weight is |tau_i - 1{u < 0}| with
    u = target - estimate, so an estimate below a target sample is pushed up with weight tau_i.
    """
    u = targets.unsqueeze(1) - quantiles.unsqueeze(2)  # (B, N, N'): u_ij = T theta_j - theta_i
    huber = F.huber_loss(u, torch.zeros_like(u), reduction="none", delta=kappa)
    weight = (taus.view(1, -1, 1) - (u.detach() < 0).to(u.dtype)).abs()
    return (weight * huber / kappa).mean(dim=2).sum(dim=1)


def updates_allowed(samples: int, config: DQNConfig) -> int:
    """How many gradient updates the replay ratio allows after ``samples`` new samples were ingested.

    None before ``learning_starts``, then one more for every ``samples_per_update`` samples. The
    learner updates while it is behind this figure and reads new experience only once it caught up, so
    the ratio holds both ways (SB3 zoo's train_freq / gradient_steps, e.g. 256 / 128 for CartPole).
    """
    if samples < config.learning_starts:
        return 0
    return math.floor((samples - config.learning_starts) / config.samples_per_update) + 1


class Update(NamedTuple):
    """What one gradient step reports: metrics under stable names, and the batch's new TD errors."""

    metrics: dict[str, float]
    # (B,) float32, the new priorities' source, from before the step: y - Q(s, a); for QR-DQN, each
    # sample's quantile Huber loss (non-negative), as its TD error has no single value.
    td_errors: np.ndarray


class DQN:
    """An online Q-network trained towards a periodically copied target network."""

    def __init__(self, spec: QNetworkSpec, config: DQNConfig, *, device: str | torch.device = "cpu"):
        self.spec = spec
        self.config = config
        self.device = torch.device(device)
        self.q = build_q_network(spec).to(self.device)
        self.target = build_q_network(spec).to(self.device)
        self.target.load_state_dict(self.q.state_dict())
        self.target.requires_grad_(False)
        self.params = list(self.q.parameters())
        # Adam's fused kernel: one pass over all parameters instead of about ten PyTorch operations per
        # parameter tensor (the same update, up to rounding; about 6x less time on the CPU).
        self.optimizer = torch.optim.Adam(self.params, lr=config.lr, fused=True)
        self.updates = 0
        self.taus = quantile_midpoints(spec.n_quantiles, device=self.device) if spec.n_quantiles > 1 else None
        # The default networks' gradients by hand (trainer.dqn_grad: the same maths, a fraction of the
        # operations); QR-DQN and NoisyNet go through autograd.
        self.hand = HandGradients(self.q, self.target, self.params) if supported(spec) else None
        self._adam: tuple | None = None  # the fused kernel's argument lists, once Adam has its state

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array).to(self.device, non_blocking=True)

    def update(self, batch: Batch) -> Update:
        """One gradient step on a minibatch, its Huber loss weighted by the batch's IS weights."""
        # A guided campaign's steps where the guide played: the large-margin loss (DQfD) on those.
        guided = batch.demo is not None and self.config.demo_margin > 0 and self.config.demo_weight > 0
        if self.hand is not None and self.hand.host:
            # On the CPU the batch's arrays go straight to the compiled loops (no tensors made).
            figures, td_errors = self.hand.step_host(
                stacked_obs(batch.obs, batch.next_obs),
                batch.actions,
                batch.returns,
                batch.discounts,
                batch.weights,
                batch.next_masks,
                batch.demo if guided else None,
                max_grad_norm=self.config.max_grad_norm,
                double_q=self.config.double_q,
                margin=self.config.demo_margin,
                demo_weight=self.config.demo_weight,
            )
            self._adam_step()
            return self._report(figures, td_errors)
        actions = self._tensor(batch.actions).long()
        returns, discounts = self._tensor(batch.returns), self._tensor(batch.discounts)
        weights = self._tensor(batch.weights)
        next_masks = self._tensor(batch.next_masks).bool() if batch.next_masks is not None else None
        demo = self._tensor(batch.demo).float() if guided else None
        if self.spec.noisy:
            # Fresh noise for every update, independent in the online and the target network
            # (Fortunato et al. 2017, algorithm 1; one online draw serves both of its passes here).
            self.q.reset_noise()
            self.target.reset_noise()

        if self.hand is not None:
            per_sample, q, td_errors, grad_norm, margin_loss = self.hand.step(
                self._tensor(stacked_obs(batch.obs, batch.next_obs)),
                actions,
                lambda next_q_target, next_q_online: td_target(
                    returns, discounts, next_q_target, next_q_online, next_masks
                ),
                weights=weights,
                max_grad_norm=self.config.max_grad_norm,
                double_q=self.config.double_q,
                demo=demo,
                margin=self.config.demo_margin,
                demo_weight=self.config.demo_weight,
            )
            self._adam_step()
            # The means of the loss, Q(s, a) and the margin loss in one reduction, then one read.
            rows = [per_sample, q] if margin_loss is None else [per_sample, q, margin_loss]
            means = torch.stack(rows).mean(dim=1)
            return self._after_step(torch.cat([means, grad_norm.view(1)]), td_errors)
        obs, next_obs = self._tensor(batch.obs), self._tensor(batch.next_obs)
        if self.taus is None:
            with torch.no_grad():
                next_q_online = self.q(next_obs) if self.config.double_q else None
                y = td_target(returns, discounts, self.target(next_obs), next_q_online, next_masks)
            q_values = self.q(obs)
            q = q_values.gather(1, actions.unsqueeze(1)).squeeze(1)
            # Prioritized replay samples high-error transitions more often; the weights undo that bias
            # in expectation (all 1 for uniform sampling, where this is the plain mean Huber loss).
            per_sample = F.smooth_l1_loss(q, y, reduction="none")
            td_errors = (y - q).detach()
        else:
            with torch.no_grad():
                next_q_online = self.q(next_obs) if self.config.double_q else None
                y = quantile_td_target(
                    returns, discounts, self.target.quantiles(next_obs), next_q_online, next_masks
                )
            n = self.spec.n_quantiles
            theta_all = self.q.quantiles(obs)
            q_values = theta_all.mean(dim=2)
            theta = theta_all.gather(1, actions.view(-1, 1, 1).expand(-1, 1, n)).squeeze(1)
            per_sample = quantile_huber_loss(theta, y, self.taus)
            td_errors = per_sample.detach()
            q = theta.mean(dim=1)
        loss = (weights * per_sample).mean()
        margin_loss = None
        if demo is not None:
            margin_loss = large_margin(q_values, actions, demo, self.config.demo_margin, chosen=q)[0].mean() * self.config.demo_weight

        self.optimizer.zero_grad(set_to_none=True)
        (loss if margin_loss is None else loss + margin_loss).backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm, foreach=True)
        self.optimizer.step()
        figures = [loss.detach(), q.detach().mean()]
        if margin_loss is not None:
            figures.append(margin_loss.detach())
        return self._after_step(torch.stack([*figures, grad_norm]), td_errors)

    def _adam_step(self) -> None:
        """``self.optimizer.step()`` on the hand path, without its per-call bookkeeping.

        The hand path's ``.grad`` are fixed views of one buffer and Adam's state tensors are fixed once
        created, so the fused kernel's argument lists are gathered once (at the first step, which goes
        through ``optimizer.step()`` and creates the state) and reused: the calls that
        ``torch.optim.Adam(fused=True)`` makes (the step counters, then ``_fused_adam_``), the same
        numbers, minus about 0.15 ms of Python per update. ``load_state_dict`` replaces the state, and
        with it these lists.
        """
        if self._adam is None:
            self.optimizer.step()
            (group,) = self.optimizer.param_groups
            states = [self.optimizer.state[p] for p in self.params]
            # Every parameter's step count is the same: from here on they are one shared tensor, raised
            # by one add instead of a foreach over 8 (only this method steps a hand-path optimizer).
            counter = states[0]["step"]
            for state in states:
                state["step"] = counter
            self._adam = (
                [p.grad for p in self.params],
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [counter] * len(states),
                group,
            )
            return
        grads, exp_avgs, exp_avg_sqs, steps, group = self._adam
        beta1, beta2 = group["betas"]
        steps[0].add_(1)
        torch._fused_adam_(
            self.params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )

    def _after_step(self, figures: torch.Tensor, td_errors: torch.Tensor) -> Update:
        """``figures``: the TD loss, the mean Q(s, a), (the margin loss,) the gradient norm."""
        # One device-to-host read for the metrics and one for the TD errors (each is a sync on CUDA).
        return self._report(figures.tolist(), td_errors.cpu().numpy())

    def _report(self, figures: list[float], td_errors: np.ndarray) -> Update:
        """The step counted (the target copied when due) and reported; ``figures`` as ``_after_step``'s."""
        self.updates += 1
        if self.updates % self.config.target_update_every == 0:
            self.target.load_state_dict(self.q.state_dict())
        td_loss, q_mean, *margin, norm = figures
        metrics = {"losses/td_loss": td_loss, "losses/q_mean": q_mean, "losses/grad_norm": norm}
        if margin:
            metrics["losses/margin_loss"] = margin[0]
        return Update(metrics, td_errors)

    def beta(self) -> float:
        """The importance-sampling exponent for the next update (annealed with the update count)."""
        return beta_at(self.updates, self.config.per_beta0, self.config.per_beta_anneal_updates)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the online weights (those travel as the published safetensors)."""
        return {
            "format": STATE_FORMAT,
            "target": {k: v.detach().cpu() for k, v in self.target.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown learner state format {state.get('format')!r}")
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        # A state saved after ``_adam_step`` holds one step tensor shared by every parameter (torch.save
        # keeps the sharing): each gets its own again, or the library's step would raise it 8 times.
        for param_state in self.optimizer.state.values():
            param_state["step"] = param_state["step"].clone()
        self._adam = None
        for group in self.optimizer.param_groups:
            # A checkpoint written before the fused kernel would otherwise bring back the slow one.
            group.update(fused=True, foreach=None)
        self.updates = int(state["updates"])
