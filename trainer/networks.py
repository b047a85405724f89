"""The PyTorch twins of the clients' NumPy networks (``client_app.policy``).

Same parameter names, same shapes, same forward pass: the learner trains these modules and publishes
``export_params`` of them, which ``client_app.policy.q_values`` / ``policy_logits`` evaluate on
volunteers' machines. PPO's critic (``ValueNetwork``) stays on the server.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from client_app.policy import PolicyNetworkSpec, QNetworkSpec


class QNetwork(nn.Module):
    """An MLP Q-network: ReLU hidden layers, then a dueling (value + centred advantage) or plain head."""

    def __init__(self, spec: QNetworkSpec):
        super().__init__()
        self.spec = spec
        widths = (spec.obs_dim, *spec.hidden)
        self.layers = nn.ModuleList(
            nn.Linear(w_in, w_out) for w_in, w_out in zip(widths[:-1], widths[1:], strict=True)
        )
        if spec.dueling:
            self.value = nn.Linear(widths[-1], 1)
            self.advantage = nn.Linear(widths[-1], spec.n_actions)
        else:
            self.head = nn.Linear(widths[-1], spec.n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs
        for layer in self.layers:
            x = torch.relu(layer(x))
        if not self.spec.dueling:
            return self.head(x)
        advantage = self.advantage(x)
        # Centre the advantages so value and advantage are identifiable (Wang et al. 2016, eq. 9).
        return self.value(x) + advantage - advantage.mean(dim=-1, keepdim=True)


class PolicyNetwork(nn.Module):
    """PPO's actor: tanh hidden layers, then one logit per action (orthogonal init, as in SB3)."""

    def __init__(self, spec: PolicyNetworkSpec):
        super().__init__()
        self.spec = spec
        widths = (spec.obs_dim, *spec.hidden)
        self.layers = nn.ModuleList(
            nn.Linear(w_in, w_out) for w_in, w_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.head = nn.Linear(widths[-1], spec.n_actions)
        _orthogonal(self.layers, self.head, head_gain=0.01)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return self.head(x)


class ValueNetwork(nn.Module):
    """PPO's critic: the same MLP shape as the actor, one output."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        widths = (obs_dim, *hidden)
        self.layers = nn.ModuleList(
            nn.Linear(w_in, w_out) for w_in, w_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.head = nn.Linear(widths[-1], 1)
        _orthogonal(self.layers, self.head, head_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return self.head(x).squeeze(-1)


def _orthogonal(layers: nn.ModuleList, head: nn.Linear, *, head_gain: float) -> None:
    # Orthogonal weights, zero biases, a small policy head: PPO's usual start (Andrychowicz et al. 2021).
    for layer in layers:
        nn.init.orthogonal_(layer.weight, gain=2**0.5)
        nn.init.zeros_(layer.bias)
    nn.init.orthogonal_(head.weight, gain=head_gain)
    nn.init.zeros_(head.bias)


def build_q_network(spec: QNetworkSpec) -> QNetwork:
    """A freshly initialised network whose ``state_dict`` matches ``spec.parameter_shapes()`` exactly."""
    return QNetwork(spec)


def export_params(module: nn.Module) -> dict[str, np.ndarray]:
    """The module's parameters as float32 NumPy arrays (copies, on the CPU), ready for ``save_model``."""
    return {
        name: t.detach().to("cpu", torch.float32).numpy().copy() for name, t in module.state_dict().items()
    }


def load_params(module: nn.Module, params: dict[str, np.ndarray]) -> None:
    """Load NumPy parameters (e.g. from a published safetensors file); names and shapes must match."""
    state = {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in params.items()}
    module.load_state_dict(state, strict=True)
