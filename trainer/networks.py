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


class NoisyLinear(nn.Module):
    """A linear layer with factorised Gaussian noise on its weights (Fortunato et al. 2017, section 3).

    weight = ``weight`` + ``weight_sigma`` * f(eps_out) f(eps_in)^T, bias = ``bias`` + ``bias_sigma`` *
    f(eps_out), f(x) = sign(x) sqrt(|x|): p + q noise draws per layer instead of p * q. In training
    mode the layer uses the noise of the last ``reset_noise``; in eval mode (greedy play, evaluation)
    the mean weights alone. The mean parameters keep ``nn.Linear``'s names, so the published file's
    ``<layer>.weight`` is what greedy clients play.
    """

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5):
        super().__init__()
        bound = in_features**-0.5
        # The paper's initialisation for factorised noise: mu ~ U(-1/sqrt(p), 1/sqrt(p)), sigma = sigma0/sqrt(p).
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma0 * bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma0 * bound))
        # Not in the state dict: noise is drawn, never saved or published.
        self.register_buffer("eps_in", torch.zeros(in_features), persistent=False)
        self.register_buffer("eps_out", torch.zeros(out_features), persistent=False)
        self.reset_noise()

    @torch.no_grad()
    def reset_noise(self) -> None:
        for eps in (self.eps_in, self.eps_out):
            eps.normal_()
            eps.copy_(eps.sign() * eps.abs().sqrt())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return nn.functional.linear(x, self.weight, self.bias)
        # The noisy weight matrix costs p * q multiply-adds, once per batch (a batch of 64 rows costs 64
        # times that in the product itself).
        weight = torch.addcmul(self.weight, self.weight_sigma, torch.outer(self.eps_out, self.eps_in))
        return nn.functional.linear(x, weight, torch.addcmul(self.bias, self.bias_sigma, self.eps_out))


class QNetwork(nn.Module):
    """An MLP Q-network: ReLU hidden layers, then a dueling (value + centred advantage) or plain head.

    With ``spec.n_quantiles`` N > 1 the head gives N quantiles per action (QR-DQN, Dabney et al. 2017):
    ``quantiles`` returns them, (B, n_actions, N), and ``forward`` their mean, the Q-values. With
    ``spec.noisy`` every layer is a ``NoisyLinear``; ``reset_noise`` draws new noise.
    """

    def __init__(self, spec: QNetworkSpec):
        super().__init__()
        self.spec = spec
        linear = NoisyLinear if spec.noisy else nn.Linear
        widths = (spec.obs_dim, *spec.hidden)
        self.layers = nn.ModuleList(linear(w_in, w_out) for w_in, w_out in zip(widths[:-1], widths[1:], strict=True))
        outputs = spec.n_actions * spec.n_quantiles
        if spec.dueling:
            self.value = linear(widths[-1], spec.n_quantiles)
            self.advantage = linear(widths[-1], outputs)
        else:
            self.head = linear(widths[-1], outputs)
        self.noisy_layers = [m for m in self.modules() if isinstance(m, NoisyLinear)]

    def reset_noise(self) -> None:
        """New noise in every noisy layer (nothing for a plain network)."""
        for layer in self.noisy_layers:
            layer.reset_noise()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values, (B, n_actions): for a QR network the mean of each action's quantiles."""
        if self.spec.n_quantiles > 1:
            return self.quantiles(obs).mean(dim=-1)
        x = self._torso(obs)
        if not self.spec.dueling:
            return self.head(x)
        advantage = self.advantage(x)
        # Centre the advantages so value and advantage are identifiable (Wang et al. 2016, eq. 9).
        return self.value(x) + advantage - advantage.mean(dim=-1, keepdim=True)

    def quantiles(self, obs: torch.Tensor) -> torch.Tensor:
        """Each action's quantiles, (B, n_actions, n_quantiles) (a plain network's: its Q-values, N = 1)."""
        x = self._torso(obs)
        shape = (x.shape[0], self.spec.n_actions, self.spec.n_quantiles)
        if not self.spec.dueling:
            return self.head(x).view(shape)
        advantage = self.advantage(x).view(shape)
        # The dueling split per quantile: value + centred advantage, each quantile its own stream.
        return self.value(x).unsqueeze(1) + advantage - advantage.mean(dim=1, keepdim=True)

    def _torso(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x


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
