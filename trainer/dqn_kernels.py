"""The element-wise part of the default DQN update on the CPU, compiled (Numba), in a few calls.

``trainer.dqn_grad.HandGradients`` writes the update's gradients out by hand: a dozen matrix products
(PyTorch's, on the CPU its BLAS) and, between them, small element-wise steps on (B, n_actions) and
(B, width) arrays: the TD target, the Huber loss and its gradient, the margin loss, the dueling head's
centring, the ReLUs' backward pass, the bias gradients, the gradient-norm clip. As PyTorch operations
those are some eighty calls per update, each a few microseconds of dispatch for a few hundred
nanoseconds of arithmetic: on the CPU, more time than the products themselves once those are fast.
Here they are five compiled loops over NumPy views of the same memory (the tensors' own storage), the
same maths: ``tests/trainer/test_dqn_grad.py`` runs them against autograd step by step.

Two facts the loops use: a row of dL/dQ has at most two non-zero entries (the action taken, and with
the margin loss the maximising one), so dL/dQ's products with the hidden layer and the head's weights
are sums over those entries only (B x 2 x width multiply-adds instead of B x n_actions x width); and a
float32 array's elements are float32 in Numba, so the arithmetic stays in the tensors' precision
(sums are accumulated in float64, then rounded).
"""

from __future__ import annotations

import numpy as np

from trainer.compiled import compiled

_LOWEST = np.float32(np.finfo(np.float32).min)  # a forbidden action's score (td_target's masked_fill)


@compiled
def td_loss_grad(
    q_all: np.ndarray,
    next_q_target: np.ndarray,
    actions: np.ndarray,
    returns: np.ndarray,
    discounts: np.ndarray,
    weights: np.ndarray,
    next_masks: np.ndarray,
    demo: np.ndarray,
    double_q: bool,
    margin: float,
    demo_weight: float,
    dq: np.ndarray,
    td_errors: np.ndarray,
) -> tuple[float, float, float]:
    """One pass over the batch: the TD targets, the weighted Huber loss, dL/dQ and the margin loss.

    ``q_all`` (2B, n): the online network's Q-values of the observations, then of the next
    observations; ``next_q_target`` (B, n) the target network's of the next observations. y = G +
    discount * Q'(s', a*), a* the first maximiser over the allowed actions (``next_masks`` (B, n), or
    (0, n) for all) of the online values (``double_q``) or the target's. Writes ``dq`` (B, n), the
    gradient of the mean weighted Huber loss plus ``demo_weight`` times the mean large-margin loss on
    the rows where ``demo`` (B,) is true (``demo`` of length 0: no margin loss), and ``td_errors`` (B,),
    y - Q(s, a). Returns (the mean weighted Huber loss, the mean Q(s, a), the mean margin loss times
    ``demo_weight``): ``trainer.dqn_grad.HandGradients.step``'s figures.
    """
    batch, n = dq.shape
    masked = next_masks.shape[0] > 0
    guided = demo.shape[0] > 0
    inv_batch = np.float32(1.0) / np.float32(batch)
    lowest = _LOWEST
    loss_sum = q_sum = margin_sum = 0.0
    for i in range(batch):
        best = 0
        best_score = lowest
        for a in range(n):
            score = q_all[batch + i, a] if double_q else next_q_target[i, a]
            if masked and not next_masks[i, a]:
                score = lowest
            if a == 0 or score > best_score:
                best, best_score = a, score
        y = returns[i] + discounts[i] * next_q_target[i, best]
        action = actions[i]
        if action < 0 or action >= n:  # compiled code reads without bounds checks: never past the row
            raise IndexError("an action index is outside the network's actions")
        q = q_all[i, action]
        diff = q - y
        size = abs(diff)
        huber = np.float32(0.5) * diff * diff if size < 1 else size - np.float32(0.5)
        loss_sum += weights[i] * huber
        q_sum += q
        td_errors[i] = -diff
        for a in range(n):
            dq[i, a] = 0
        dq[i, action] = weights[i] * min(max(diff, np.float32(-1.0)), np.float32(1.0)) * inv_batch
        if guided and demo[i]:
            # max_a [Q(s, a) + margin * (a != a_E)] - Q(s, a_E): +1 at the maximiser, -1 at a_E.
            top, beaten = action, q
            for a in range(n):
                shifted = q_all[i, a] + np.float32(margin) if a != action else q
                if shifted > beaten or (shifted == beaten and a < top):
                    top, beaten = a, shifted
            margin_sum += demo_weight * (beaten - q)
            step = np.float32(demo_weight) * inv_batch
            dq[i, action] -= step
            dq[i, top] += step
    return loss_sum / batch, q_sum / batch, margin_sum / batch


@compiled
def relu_backward(dh: np.ndarray, output: np.ndarray, bias_grad: np.ndarray) -> None:
    """``dh`` through a ReLU whose output was ``output`` (zero where that is not positive), in place;
    the layer's bias gradient, dh's column sums, into ``bias_grad``."""
    batch, width = dh.shape
    acc = np.zeros(width)
    for i in range(batch):
        for j in range(width):
            if output[i, j] <= 0:
                dh[i, j] = 0
            acc[j] += dh[i, j]
    for j in range(width):
        bias_grad[j] = acc[j]


@compiled
def head_backward(
    dq: np.ndarray,
    hidden: np.ndarray,
    head_weight: np.ndarray,
    grad_w: np.ndarray,
    grad_b: np.ndarray,
    dh: np.ndarray,
    hidden_bias_grad: np.ndarray,
) -> None:
    """The Q-values' layer backwards: ``grad_w`` = dq^T hidden (n, width), ``grad_b`` = dq's column
    sums, and ``dh`` = (dq @ ``head_weight``) through the last hidden layer's ReLU (zero where its
    output ``hidden`` is not positive), whose bias gradient (dh's column sums) goes to
    ``hidden_bias_grad``. ``hidden`` is (B, width): the observations' rows only."""
    batch, n = dq.shape
    width = hidden.shape[1]
    acc_w = np.zeros((n, width))
    acc_b = np.zeros(n)
    for i in range(batch):
        for j in range(width):
            dh[i, j] = 0
        for a in range(n):
            g = dq[i, a]
            if g != 0:
                acc_b[a] += g
                for j in range(width):
                    acc_w[a, j] += g * hidden[i, j]
                    dh[i, j] += g * head_weight[a, j]
    for a in range(n):
        grad_b[a] = acc_b[a]
        for j in range(width):
            grad_w[a, j] = acc_w[a, j]
    relu_backward(dh, hidden, hidden_bias_grad)


@compiled
def fold_dueling(
    adv_w: np.ndarray, adv_b: np.ndarray, value_w: np.ndarray, value_b: np.ndarray, weight: np.ndarray, bias: np.ndarray
) -> None:
    """The dueling head as one layer: q = v + a - mean(a), so ``weight`` = Wv + Wa - mean over actions
    of Wa (each row), ``bias`` = bv + ba - mean(ba)."""
    n, width = adv_w.shape
    for j in range(width):
        mean = 0.0
        for a in range(n):
            mean += adv_w[a, j]
        mean /= n
        for a in range(n):
            weight[a, j] = value_w[0, j] + (adv_w[a, j] - mean)
    mean = 0.0
    for a in range(n):
        mean += adv_b[a]
    mean /= n
    for a in range(n):
        bias[a] = value_b[0] + (adv_b[a] - mean)


@compiled
def dueling_grads(
    grad_w: np.ndarray,
    grad_b: np.ndarray,
    adv_w_grad: np.ndarray,
    adv_b_grad: np.ndarray,
    value_w_grad: np.ndarray,
    value_b_grad: np.ndarray,
) -> None:
    """The folded layer's gradients (``grad_w`` (n, width), ``grad_b`` (n,)) back to the dueling head's
    four tensors: the advantages' get them centred over the actions (C G, C = I - 1/n), the value's
    their sums over the actions."""
    n, width = grad_w.shape
    for j in range(width):
        total = 0.0
        for a in range(n):
            total += grad_w[a, j]
        value_w_grad[0, j] = total
        mean = total / n
        for a in range(n):
            adv_w_grad[a, j] = grad_w[a, j] - mean
    total = 0.0
    for a in range(n):
        total += grad_b[a]
    value_b_grad[0] = total
    mean = total / n
    for a in range(n):
        adv_b_grad[a] = grad_b[a] - mean


@compiled(reassociate=True)  # the sum of squares in vector lanes: about 9 µs instead of 80 for 98,000
def clip_norm(flat: np.ndarray, max_norm: float) -> float:
    """``clip_grad_norm_``'s rule on one flat gradient: its L2 norm; scaled in place by max_norm /
    (norm + 1e-6) when that is under 1. Returns the norm before clipping (NaN if a gradient is)."""
    total = 0.0
    for k in range(flat.shape[0]):
        value = np.float64(flat[k])
        total += value * value
    norm = np.sqrt(total)
    scale = max_norm / (norm + 1e-6)
    if scale < 1.0:
        factor = np.float32(scale)
        for k in range(flat.shape[0]):
            flat[k] *= factor
    return norm
