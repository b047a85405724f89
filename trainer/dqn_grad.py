"""The default DQN update's gradients, written out by hand (no autograd).

For the networks most campaigns train (``trainer.networks.QNetwork`` with ReLU hidden layers and a
dueling or plain head, one value per action, no noise) the loss of ``trainer.dqn.DQN.update`` (the
importance-weighted Huber loss of Q(s, a) against the TD target) has a short closed-form gradient.
Autograd reaches the same numbers through about a hundred small operations per update, each with its
bookkeeping; on the CPU that bookkeeping, not the arithmetic, was most of an update's time. Here:

- one forward pass of the online network over the observations and the next observations together
  (their 2B rows in one matrix product per layer; the next observations' rows serve double Q-learning's
  argmax), one of the target network over the next observations;
- the backward pass by hand, for the B rows of the observations only: for the Huber loss,
  dL/dQ(s, a) = w * clamp(Q(s, a) - y, -1, 1) / B; the dueling head's centring
  q = v + a - mean(a) passes dv = sum(dq) and da = dq - mean(dq); a ReLU passes the gradient where its
  output is positive (``threshold_backward``, autograd's own kernel);
- the gradients written into one flat buffer that the parameters' ``.grad`` are views of, so that the
  gradient-norm clip is one norm and one multiply.

The same maths as autograd's, up to float rounding (sums in another order):
``tests/trainer/test_dqn_grad.py`` runs both side by side, step by step, on every supported shape.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from client_app.policy import QNetworkSpec
from trainer import dqn_kernels as kernels
from trainer.networks import QNetwork

_relu_backward = torch.ops.aten.threshold_backward


def supported(spec: QNetworkSpec) -> bool:
    """Whether ``HandGradients`` computes this network's update (else autograd does)."""
    return spec.n_quantiles == 1 and not spec.noisy


def large_margin(
    q_values: torch.Tensor, actions: torch.Tensor, demo: torch.Tensor, margin: float, chosen: torch.Tensor | None = None
):
    """DQfD's large-margin loss per sample (Hester et al. 2018): max_a [Q(s, a) + margin * (a != a_E)]
    - Q(s, a_E), where the guide played a_E (``demo`` 1), else 0; and the maximising action (B,).
    ``chosen``: Q(s, a_E) when the caller has it already.

    Zero once the guide's action beats every other by the margin: it teaches the greedy policy the
    guide's choice where the guide played, without touching Q's scale elsewhere."""
    if chosen is None:
        chosen = q_values.gather(1, actions.unsqueeze(1)).squeeze(1)
    # Every action's value plus the margin, the guide's own without it: one max finds both.
    shifted = (q_values + margin).scatter_(1, actions.unsqueeze(1), chosen.unsqueeze(1))
    beaten, best = shifted.max(dim=1)
    return demo * (beaten - chosen), best


class Scratch(NamedTuple):
    """``HandGradients.step_host``'s arrays for one batch size, allocated once (tensors, and NumPy
    views of the same memory for the compiled loops)."""

    acts: list[torch.Tensor]  # (2B, width) per hidden layer: the online network's outputs
    target_acts: list[torch.Tensor]  # (B, width) per hidden layer: the target network's
    q_all: torch.Tensor  # (2B, n): Q(s, .) then Q(s', .)
    next_q_target: torch.Tensor  # (B, n): Q'(s', .)
    dq: torch.Tensor  # (B, n): dL/dQ
    dh: list[torch.Tensor]  # (B, width) per hidden layer: dL/d(its output), through its ReLU
    np_acts: list[np.ndarray]  # views: each hidden layer's outputs for the B observations
    np_dq: np.ndarray
    np_dh: list[np.ndarray]
    grad_w: np.ndarray  # (n, width): the folded head's weight gradient (the dueling head's split of it)
    grad_b: np.ndarray  # (n,)
    no_masks: np.ndarray  # (0, n) bool: every action allowed
    no_demo: np.ndarray  # (0,) bool: no margin loss


class HandGradients:
    """The update's forward and backward passes for one online network, its target and optimizer.

    On the CPU (``host``) the element-wise work between the matrix products is compiled loops
    (``trainer.dqn_kernels``, ``step_host``); elsewhere (CUDA) it is PyTorch operations (``step``). The
    same maths, up to float rounding."""

    def __init__(self, q: QNetwork, target: QNetwork, params: list[torch.nn.Parameter]):
        if not supported(q.spec):
            raise ValueError(
                "hand-written gradients cover plain ReLU Q-networks only (no quantiles, no noise)"
            )
        self.q, self.target, self.params = q, target, params
        self.dueling = q.spec.dueling
        # The parameters, gathered once: the optimizer and load_state_dict change them in place, so
        # these stay the network's (and the module attribute lookups leave the update's path).
        self.layers = [(layer.weight, layer.bias) for layer in q.layers]
        self.target_layers = [(layer.weight, layer.bias) for layer in target.layers]
        if self.dueling:
            self.head = (q.advantage.weight, q.advantage.bias, q.value.weight, q.value.bias)
            self.target_head = (target.advantage.weight, target.advantage.bias, target.value.weight, target.value.bias)
            # The centring C = I - 1/n: q = v + a - mean(a) = h (C Wa + Wv)^T + C ba + bv (Wv, bv
            # broadcast to every action), so the dueling head is one (n, width) layer.
            n = q.spec.n_actions
            first = params[0]
            self.centre = torch.eye(n, dtype=first.dtype, device=first.device) - 1.0 / n
        else:
            self.head = (q.head.weight, q.head.bias)
            self.target_head = (target.head.weight, target.head.bias)
        # The target's head layer, folded once per target copy (its tensors' versions tell).
        self._folded_target: tuple[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] | None = None
        # One flat gradient buffer; each parameter's .grad is a view of it (never set to None again:
        # every update overwrites every element).
        first = params[0]
        self.flat = torch.zeros(sum(p.numel() for p in params), dtype=first.dtype, device=first.device)
        at = 0
        for p in params:
            p.grad = self.flat[at : at + p.numel()].view_as(p)
            at += p.numel()
        # The compiled loops need float32 host memory; a test may turn them off to run ``step``'s path.
        self.host = first.device.type == "cpu" and first.dtype == torch.float32
        self._scratch: dict[int, Scratch] = {}
        if first.device.type == "cpu":
            # NumPy views of the tensors the compiled loops read and write, and the transposed weights
            # the products take, made once (the optimizer and load_state_dict write in place).
            self._np_head = [t.detach().numpy() for t in self.head]
            self._np_head_grads = [t.grad.numpy() for t in self.head]
            self._np_bias_grads = [bias.grad.numpy() for _, bias in self.layers]
            self._np_flat = self.flat.numpy()
            self._layers_t = [(weight.t(), bias) for weight, bias in self.layers]
            self._target_layers_t = [(weight.t(), bias) for weight, bias in self.target_layers]
            if self.dueling:
                n, width = self.head[0].shape
                self._host_fold = (torch.zeros(n, width), torch.zeros(n))
                self._np_host_fold = [t.numpy() for t in self._host_fold]

    def _fold(self, head: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """The Q-values' layer (weight, bias): the plain head's, or the dueling head folded into one."""
        if not self.dueling:
            return head[0], head[1]
        adv_w, adv_b, value_w, value_b = head
        return torch.addmm(value_w, self.centre, adv_w), torch.addmv(value_b, self.centre, adv_b)

    def _target_fold(self) -> tuple[torch.Tensor, torch.Tensor]:
        versions = tuple(t._version for t in self.target_head)
        if self._folded_target is None or self._folded_target[0] != versions:
            self._folded_target = (versions, self._fold(self.target_head))
        return self._folded_target[1]

    @staticmethod
    def _forward(
        layers: list[tuple[torch.Tensor, torch.Tensor]], head: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(the input and every hidden layer's output, the Q-values): ``QNetwork.forward``'s maths, with
        the dueling head folded into one layer (``_fold``)."""
        acts = [x]
        for weight, bias in layers:
            x = F.linear(x, weight, bias).relu_()  # in place: no second (rows, width) array
            acts.append(x)
        return acts, F.linear(x, head[0], head[1])

    @torch.no_grad()
    def step(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        td_target,
        *,
        weights: torch.Tensor,
        max_grad_norm: float,
        double_q: bool,
        demo: torch.Tensor | None = None,
        margin: float = 0.0,
        demo_weight: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Fill every parameter's ``.grad`` (clipped to ``max_grad_norm``) for one update.

        ``td_target(next_q_target, next_q_online)`` gives y from the next observations' Q-values (the
        next observations are the second half of ``obs``'s rows: ``obs`` is the observations and the
        next observations stacked). Returns, per sample, the weighted Huber loss (``DQN.update``'s
        loss is its mean), Q(s, a) and y - Q(s, a); the gradient norm before clipping; and with
        ``demo`` the large-margin loss per sample times ``demo_weight`` (its mean is added to the
        loss; None without). The means are left to the caller, which reads all its figures at once.
        """
        batch = obs.shape[0] // 2
        head = self._fold(self.head)
        acts, q_all = self._forward(self.layers, head, obs)
        _, next_q_target = self._forward(self.target_layers, self._target_fold(), obs[batch:])
        y = td_target(next_q_target, q_all[batch:] if double_q else None)
        q_values = q_all[:batch]
        q = q_values.gather(1, actions.unsqueeze(1)).squeeze(1)
        diff = q - y
        per_sample = weights * F.smooth_l1_loss(q, y, reduction="none")

        # dL/dQ(s, a) for the mean weighted Huber loss; zero for every other action.
        grad_q = (weights * diff.clamp(-1.0, 1.0)).div_(batch)
        margin_loss = best = g = None
        if demo is not None:
            # d/dQ of demo_weight * mean(large margin): +1 at the maximising action, -1 at the guide's.
            margin_loss, best = large_margin(q_values, actions, demo, margin, chosen=q)
            margin_loss = margin_loss.mul_(demo_weight)
            g = demo * (demo_weight / batch)
            grad_q = grad_q - g
        dq = torch.zeros_like(q_values).scatter_(1, actions.unsqueeze(1), grad_q.unsqueeze(1))
        if best is not None:
            dq.scatter_add_(1, best.unsqueeze(1), g.unsqueeze(1))
        hidden = acts[-1][:batch]
        if self.dueling:
            # G = dq^T h is the folded layer's weight gradient: Wa gets C G (C is symmetric), Wv the
            # sum of G's rows; likewise the biases from g = the column sums of dq.
            adv_w, adv_b, value_w, value_b = self.head
            grad_w = torch.mm(dq.t(), hidden)
            grad_b = dq.sum(dim=0)
            torch.mm(self.centre, grad_w, out=adv_w.grad)
            torch.sum(grad_w, dim=0, keepdim=True, out=value_w.grad)
            torch.mv(self.centre, grad_b, out=adv_b.grad)
            torch.sum(grad_b, dim=0, keepdim=True, out=value_b.grad)
        else:
            head_w, head_b = self.head
            torch.mm(dq.t(), hidden, out=head_w.grad)
            torch.sum(dq, dim=0, out=head_b.grad)
        dh = dq @ head[0]
        layers = self.layers
        for i in range(len(layers) - 1, -1, -1):
            weight, bias = layers[i]
            dh = _relu_backward(dh, acts[i + 1][:batch], 0)
            torch.mm(dh.t(), acts[i][:batch], out=weight.grad)
            torch.sum(dh, dim=0, out=bias.grad)
            if i:
                dh = dh @ weight

        # clip_grad_norm_'s rule: scale by max_norm / (norm + 1e-6) when that is under 1.
        norm = torch.linalg.vector_norm(self.flat)
        self.flat.mul_(torch.clamp(max_grad_norm / (norm + 1e-6), max=1.0))
        return per_sample, q, -diff, norm, margin_loss

    def _scratch_for(self, batch: int) -> Scratch:
        scratch = self._scratch.get(batch)
        if scratch is None:
            widths = [weight.shape[0] for weight, _ in self.layers]
            n = self.q.spec.n_actions
            empty = lambda *shape: torch.zeros(shape, dtype=torch.float32)  # noqa: E731
            acts = [empty(2 * batch, w) for w in widths]
            dq, dh = empty(batch, n), [empty(batch, w) for w in widths]
            scratch = self._scratch[batch] = Scratch(
                acts=acts,
                target_acts=[empty(batch, w) for w in widths],
                q_all=empty(2 * batch, n),
                next_q_target=empty(batch, n),
                dq=dq,
                dh=dh,
                np_acts=[a[:batch].numpy() for a in acts],
                np_dq=dq.numpy(),
                np_dh=[d.numpy() for d in dh],
                grad_w=np.zeros((n, widths[-1]), dtype=np.float32),
                grad_b=np.zeros(n, dtype=np.float32),
                no_masks=np.zeros((0, n), dtype=bool),
                no_demo=np.zeros(0, dtype=bool),
            )
        return scratch

    @staticmethod
    def _host_forward(layers_t, head, x: torch.Tensor, acts: list[torch.Tensor], q: torch.Tensor) -> None:
        """``_forward`` into ``acts`` and ``q`` (``layers_t``: (weight^T, bias) per layer): each layer
        one addmm and one in-place ReLU."""
        for (weight_t, bias), out in zip(layers_t, acts, strict=True):
            torch.addmm(bias, x, weight_t, out=out).relu_()
            x = out
        torch.addmm(head[1], x, head[0].t(), out=q)

    @torch.no_grad()
    def step_host(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        returns: np.ndarray,
        discounts: np.ndarray,
        weights: np.ndarray,
        next_masks: np.ndarray | None,
        demo: np.ndarray | None,
        *,
        max_grad_norm: float,
        double_q: bool,
        margin: float = 0.0,
        demo_weight: float = 0.0,
    ) -> tuple[list[float], np.ndarray]:
        """``step`` on the CPU from the batch's NumPy arrays: the matrix products are PyTorch's, the
        rest five compiled loops. ``obs`` (2B, d) is the observations and the next observations
        stacked; ``demo`` None: no margin loss. Returns ([the mean weighted Huber loss, the mean
        Q(s, a), (with ``demo``) the mean margin loss times ``demo_weight``, the gradient norm before
        clipping], y - Q(s, a) per sample)."""
        batch = obs.shape[0] // 2
        s = self._scratch_for(batch)
        x = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))
        if self.dueling:
            kernels.fold_dueling(*self._np_head, *self._np_host_fold)
            head, np_head_w = self._host_fold, self._np_host_fold[0]
        else:
            head, np_head_w = self.head, self._np_head[0]
        self._host_forward(self._layers_t, head, x, s.acts, s.q_all)
        self._host_forward(self._target_layers_t, self._target_fold(), x[batch:], s.target_acts, s.next_q_target)

        td_errors = np.empty(batch, dtype=np.float32)
        loss, q_mean, margin_loss = kernels.td_loss_grad(
            s.q_all.numpy(),
            s.next_q_target.numpy(),
            np.asarray(actions, dtype=np.int64),
            np.asarray(returns, dtype=np.float32),
            np.asarray(discounts, dtype=np.float32),
            np.asarray(weights, dtype=np.float32),
            s.no_masks if next_masks is None else np.asarray(next_masks, dtype=bool),
            s.no_demo if demo is None else np.asarray(demo, dtype=bool),
            double_q,
            margin,
            demo_weight,
            s.np_dq,
            td_errors,
        )
        last = len(self.layers) - 1
        grad_w, grad_b = (s.grad_w, s.grad_b) if self.dueling else self._np_head_grads
        kernels.head_backward(
            s.np_dq, s.np_acts[last], np_head_w, grad_w, grad_b, s.np_dh[last], self._np_bias_grads[last]
        )
        if self.dueling:
            kernels.dueling_grads(grad_w, grad_b, *self._np_head_grads)
        for i in range(last, -1, -1):
            weight = self.layers[i][0]
            torch.mm(s.dh[i].t(), s.acts[i - 1][:batch] if i else x[:batch], out=weight.grad)
            if i:
                torch.mm(s.dh[i], weight, out=s.dh[i - 1])
                kernels.relu_backward(s.np_dh[i - 1], s.np_acts[i - 1], self._np_bias_grads[i - 1])
        norm = kernels.clip_norm(self._np_flat, max_grad_norm)
        figures = [loss, q_mean] + ([margin_loss] if demo is not None else []) + [norm]
        return figures, td_errors
