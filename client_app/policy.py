"""Policy networks that clients run, in NumPy (volunteers need no PyTorch).

The learner trains the same architectures in PyTorch (``trainer.networks``) with the same parameter
names, and publishes weights as safetensors whose metadata carries the architecture, the model
version and the exploration rate. This module is the single definition of that file format:

- ``mlp_q`` (DQN): ReLU MLP -> Q-values (dueling or plain); clients act epsilon-greedily. Two
  options, recorded in the architecture only when on (a plain network's metadata is unchanged):
  ``n_quantiles`` > 1, a QR-DQN head of that many quantiles per action (Dabney et al. 2017), whose
  Q-value is the mean of its quantiles; ``noisy``, NoisyNet layers (Fortunato et al. 2017) whose every
  weight and bias has a ``<name>_sigma`` twin: training play draws fresh factorised Gaussian noise
  each step (the exploration), greedy play and evaluation use the mean weights alone.
- ``mlp_pi`` (PPO): tanh MLP -> action logits; clients sample from the softmax and send the
  log-probability of each action they took (the learner's critic is not published).
- Optional observation normalisation, the learner's running statistics at publication:
  tensors ``obs_norm.mean`` and ``obs_norm.std`` and metadata ``obs_norm_clip``; the network sees
  clip((obs - mean) / std, -clip, clip).

Action masks (bool, one per action) restrict both exploration and the greedy choice.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save


@dataclass(frozen=True)
class QNetworkSpec:
    """An MLP Q-network: obs -> hidden ReLU layers -> Q-values (dueling: value + centred advantage)."""

    obs_dim: int
    n_actions: int
    hidden: tuple[int, ...] = (256, 256)
    dueling: bool = True
    kind: str = "mlp_q"
    n_quantiles: int = 1  # > 1: QR-DQN, this many quantiles per action (the Q-value is their mean)
    noisy: bool = False  # NoisyNet layers: weights mean + sigma * factorised noise

    def to_json(self) -> str:
        data = asdict(self)
        # Written only when on, so that a plain network's metadata stays what it always was.
        if self.n_quantiles == 1:
            del data["n_quantiles"]
        if not self.noisy:
            del data["noisy"]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> QNetworkSpec:
        spec = spec_from_json(text)
        if not isinstance(spec, cls):
            raise ValueError(f"expected a Q-network, got {spec.kind!r}")
        return spec

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of every parameter, in the layout of torch.nn.Linear (out, in)."""
        shapes = _mlp_shapes(self.obs_dim, self.hidden)
        width = self.hidden[-1] if self.hidden else self.obs_dim
        # The head's rows: per action its n_quantiles quantiles, action-major (row a * N + i).
        n, outputs = self.n_quantiles, self.n_actions * self.n_quantiles
        if self.dueling:
            shapes["value.weight"], shapes["value.bias"] = (n, width), (n,)
            shapes["advantage.weight"], shapes["advantage.bias"] = (outputs, width), (outputs,)
        else:
            shapes["head.weight"], shapes["head.bias"] = (outputs, width), (outputs,)
        if self.noisy:
            shapes.update({f"{name}_sigma": shape for name, shape in shapes.items()})
        return shapes

    def linear_names(self) -> list[str]:
        """The prefixes of the network's linear layers, input first (``layers.0``, ..., the head's)."""
        heads = ["value", "advantage"] if self.dueling else ["head"]
        return [f"layers.{i}" for i in range(len(self.hidden))] + heads


@dataclass(frozen=True)
class PolicyNetworkSpec:
    """An MLP policy: obs -> hidden tanh layers -> one logit per action (PPO's actor)."""

    obs_dim: int
    n_actions: int
    hidden: tuple[int, ...] = (64, 64)
    kind: str = "mlp_pi"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = _mlp_shapes(self.obs_dim, self.hidden)
        width = self.hidden[-1] if self.hidden else self.obs_dim
        shapes["head.weight"], shapes["head.bias"] = (self.n_actions, width), (self.n_actions,)
        return shapes


NetworkSpec = QNetworkSpec | PolicyNetworkSpec


def _mlp_shapes(obs_dim: int, hidden: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    width = obs_dim
    for i, h in enumerate(hidden):
        shapes[f"layers.{i}.weight"] = (h, width)
        shapes[f"layers.{i}.bias"] = (h,)
        width = h
    return shapes


def spec_from_json(text: str) -> NetworkSpec:
    """The architecture recorded in a model file's metadata."""
    data = json.loads(text)
    kind = data.get("kind")
    common = dict(
        obs_dim=int(data["obs_dim"]),
        n_actions=int(data["n_actions"]),
        hidden=tuple(int(h) for h in data["hidden"]),
    )
    if kind == "mlp_q":
        n_quantiles = int(data.get("n_quantiles", 1))
        if not 1 <= n_quantiles <= 1024:
            raise ValueError(f"n_quantiles must be 1 to 1024, got {n_quantiles}")
        return QNetworkSpec(
            **common,
            dueling=bool(data["dueling"]),
            n_quantiles=n_quantiles,
            noisy=bool(data.get("noisy", False)),
        )
    if kind == "mlp_pi":
        return PolicyNetworkSpec(**common)
    raise ValueError(f"unknown network kind {kind!r}; this client may be too old")


def noisy_params(
    spec: QNetworkSpec, params: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """One draw of a noisy network's weights: mean + sigma * factorised Gaussian noise.

    Fortunato et al. 2017, eq. 10-11: per linear layer, eps_in ~ N(0, 1) per input and eps_out per
    output, f(x) = sign(x) sqrt(|x|); the weight's noise is f(eps_out) f(eps_in)^T, the bias's
    f(eps_out). The same as ``trainer.networks.NoisyLinear`` in training mode.
    """
    drawn: dict[str, np.ndarray] = {}
    for name in spec.linear_names():
        weight, bias = params[f"{name}.weight"], params[f"{name}.bias"]
        eps_in = _scaled_noise(rng, weight.shape[1])
        eps_out = _scaled_noise(rng, weight.shape[0])
        drawn[f"{name}.weight"] = weight + params[f"{name}.weight_sigma"] * np.outer(eps_out, eps_in)
        drawn[f"{name}.bias"] = bias + params[f"{name}.bias_sigma"] * eps_out
    return drawn


def _scaled_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    x = rng.standard_normal(size).astype(np.float32)
    return np.sign(x) * np.sqrt(np.abs(x))


def quantile_values(spec: QNetworkSpec, params: dict[str, np.ndarray], obs: np.ndarray) -> np.ndarray:
    """Each action's quantiles for a batch of flat observations, (B, obs_dim) -> (B, n_actions, N).

    N = ``spec.n_quantiles`` (1 for a plain Q-network). A noisy network's ``params`` are its mean
    weights as published (greedy play), or one draw of ``noisy_params`` (training play).
    """
    x = np.asarray(obs, dtype=np.float32)
    for i in range(len(spec.hidden)):
        x = np.maximum(x @ params[f"layers.{i}.weight"].T + params[f"layers.{i}.bias"], 0.0)
    shape = (x.shape[0], spec.n_actions, spec.n_quantiles)
    if not spec.dueling:
        return (x @ params["head.weight"].T + params["head.bias"]).reshape(shape)
    value = (x @ params["value.weight"].T + params["value.bias"]).reshape(x.shape[0], 1, spec.n_quantiles)
    advantage = (x @ params["advantage.weight"].T + params["advantage.bias"]).reshape(shape)
    return value + advantage - advantage.mean(axis=1, keepdims=True)


def q_values(spec: QNetworkSpec, params: dict[str, np.ndarray], obs: np.ndarray) -> np.ndarray:
    """Q-values for a batch of flat observations, shape (B, obs_dim) -> (B, n_actions).

    A QR network's Q-value is the mean of the action's quantiles; a noisy one's, with the mean weights
    unless ``params`` is a draw of ``noisy_params``.
    """
    quantiles = quantile_values(spec, params, obs)
    return quantiles[..., 0] if spec.n_quantiles == 1 else quantiles.mean(axis=-1)


def policy_logits(spec: PolicyNetworkSpec, params: dict[str, np.ndarray], obs: np.ndarray) -> np.ndarray:
    """Action logits for a batch of flat observations, shape (B, obs_dim) -> (B, n_actions)."""
    x = np.asarray(obs, dtype=np.float32)
    for i in range(len(spec.hidden)):
        x = np.tanh(x @ params[f"layers.{i}.weight"].T + params[f"layers.{i}.bias"])
    return x @ params["head.weight"].T + params["head.bias"]


def masked_log_softmax(logits: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """log pi(a) over the allowed actions (-inf for masked ones), for one row of logits."""
    z = np.asarray(logits, dtype=np.float64)
    if mask is not None:
        z = np.where(mask, z, -np.inf)
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


@dataclass(frozen=True)
class ObsNorm:
    """Observation normalisation as published: clip((obs - mean) / std, -clip, clip)."""

    mean: np.ndarray
    std: np.ndarray
    clip: float = 10.0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(obs, dtype=np.float32) - self.mean) / self.std, -self.clip, self.clip)


# No trained network has a weight anywhere near this; finite weights of 3e38 still overflow every
# output to infinity, so a file holding one is as broken as one holding NaN.
MAX_ABS_PARAM = 1e6


def non_finite(params: dict[str, np.ndarray]) -> list[str]:
    """The names of the arrays holding a NaN or an infinity."""
    return [name for name, value in params.items() if not np.isfinite(value).all()]


def unusable_params(params: dict[str, np.ndarray]) -> list[str]:
    """The names of the network parameters a policy cannot run on: NaN, infinite, or past
    ``MAX_ABS_PARAM`` (the learner refuses to publish them and clients refuse to load them)."""
    return [
        name
        for name, value in params.items()
        if not np.isfinite(value).all() or (value.size and float(np.abs(value).max()) > MAX_ABS_PARAM)
    ]


def read_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` map of a safetensors file, read from its JSON header."""
    if len(data) < 8:
        raise ValueError("not a safetensors file: too short")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8 or header_len > 100 * 1024 * 1024:
        raise ValueError("not a safetensors file: bad header length")
    header = json.loads(data[8 : 8 + header_len])
    return dict(header.get("__metadata__") or {})


def save_model(
    spec: NetworkSpec,
    params: dict[str, np.ndarray],
    *,
    version: int,
    epsilon: float = 0.0,
    obs_norm: ObsNorm | None = None,
    guide_share: float = 0.0,
    guide_epsilon: float = 0.0,
) -> bytes:
    """Serialise a model as safetensors bytes with its architecture, exploration rate and normaliser,
    and for a guided campaign the share of training episodes its guide plays (``Policy.guide_share``)."""
    metadata = {"arch": spec.to_json(), "version": str(int(version)), "epsilon": repr(float(epsilon))}
    if guide_share > 0:
        metadata["guide_share"] = repr(float(guide_share))
        metadata["guide_epsilon"] = repr(float(guide_epsilon))
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}
    if obs_norm is not None:
        metadata["obs_norm_clip"] = repr(float(obs_norm.clip))
        tensors["obs_norm.mean"] = np.ascontiguousarray(obs_norm.mean, dtype=np.float32)
        tensors["obs_norm.std"] = np.ascontiguousarray(obs_norm.std, dtype=np.float32)
    return st_save(tensors, metadata=metadata)


class Policy:
    """A published model, ready to act: epsilon-greedy over Q-values, or sampling from logits.

    ``step`` returns the action index (from 0) and, for a stochastic policy, its log-probability;
    ``greedy`` is what evaluation episodes play. Masks restrict both to the allowed actions.
    """

    def __init__(
        self,
        spec: NetworkSpec,
        params: dict[str, np.ndarray],
        *,
        version: int,
        epsilon: float = 0.0,
        obs_norm: ObsNorm | None = None,
        guide_share: float = 0.0,
        guide_epsilon: float = 0.0,
    ):
        expected = spec.parameter_shapes()
        if set(params) != set(expected):
            raise ValueError(f"model parameters {sorted(params)} do not match the architecture {sorted(expected)}")
        for name, shape in expected.items():
            if tuple(params[name].shape) != shape:
                raise ValueError(f"parameter {name} has shape {params[name].shape}, expected {shape}")
        # A diverged learner's weights: NaN actions would crash the client (or play nonsense).
        broken = unusable_params(params)
        if broken:
            raise ValueError(
                f"parameter {broken[0]} holds NaN or infinite values, or values beyond ±{MAX_ABS_PARAM:g}: "
                "the model is broken"
            )
        epsilon, guide_share, guide_epsilon = float(epsilon), float(guide_share), float(guide_epsilon)
        for name, value in (("exploration rate", epsilon), ("guide's share", guide_share),
                            ("guide's exploration rate", guide_epsilon)):
            if not 0.0 <= value <= 1.0:  # NaN included
                raise ValueError(f"the {name} must be in [0, 1], got {value!r}")
        if obs_norm is not None:
            for name, value in (("mean", obs_norm.mean), ("std", obs_norm.std)):
                if value.shape != (spec.obs_dim,) or not np.isfinite(value).all():
                    raise ValueError(f"obs_norm.{name} must be {spec.obs_dim} finite numbers")
            if not (obs_norm.std > 0).all():
                raise ValueError("obs_norm.std must be positive")
            if not (math.isfinite(obs_norm.clip) and obs_norm.clip > 0):
                raise ValueError(f"obs_norm_clip must be a positive number, got {obs_norm.clip!r}")
        self.spec = spec
        self.params = params
        self.version = version
        self.epsilon = epsilon
        self.obs_norm = obs_norm
        # A guided campaign's: the share of training episodes the scripted player plays (an Iudex
        # fight's client only), with guide_epsilon of its actions at random (trainer.config.DQNConfig).
        self.guide_share = guide_share
        self.guide_epsilon = guide_epsilon

    @classmethod
    def from_bytes(cls, data: bytes) -> Policy:
        metadata = read_metadata(data)
        try:
            spec = spec_from_json(metadata["arch"])
            version = int(metadata["version"])
            epsilon = float(metadata.get("epsilon", "0"))
            guide_share = float(metadata.get("guide_share", "0"))
            guide_epsilon = float(metadata.get("guide_epsilon", "0"))
            clip = float(metadata["obs_norm_clip"]) if "obs_norm_clip" in metadata else None
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"model file lacks valid metadata: {exc}") from None
        tensors = st_load(data)
        obs_norm = None
        if clip is not None:
            try:
                obs_norm = ObsNorm(tensors.pop("obs_norm.mean"), tensors.pop("obs_norm.std"), clip)
            except KeyError as exc:
                raise ValueError(f"model file lacks its normaliser tensor {exc}") from None
        return cls(
            spec, tensors, version=version, epsilon=epsilon, obs_norm=obs_norm, guide_share=guide_share,
            guide_epsilon=guide_epsilon,
        )

    @property
    def stochastic(self) -> bool:
        """Whether actions are sampled from a distribution (their log-probabilities go with chunks)."""
        return isinstance(self.spec, PolicyNetworkSpec)

    def scores(self, obs: np.ndarray, params: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Q-values or logits for one observation, shape (n_actions,); ``params``: other weights of
        the same network (a noisy network's draw), else the published ones (a noisy network's mean)."""
        x = np.asarray(obs, dtype=np.float32).reshape(1, -1)
        if self.obs_norm is not None:
            x = self.obs_norm(x)
        params = self.params if params is None else params
        if isinstance(self.spec, PolicyNetworkSpec):
            return policy_logits(self.spec, params, x)[0]
        return q_values(self.spec, params, x)[0]

    def greedy(self, obs: np.ndarray, mask: np.ndarray | None = None) -> int:
        """The best allowed action; a noisy network's by its mean weights (evaluation plays these)."""
        return _argmax(self.scores(obs), mask)

    def _greedy_noisy(self, obs: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None) -> int:
        # Training play of a noisy network: a fresh draw of the noise for every step.
        return _argmax(self.scores(obs, noisy_params(self.spec, self.params, rng)), mask)

    def step(
        self, obs: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None
    ) -> tuple[int, float | None]:
        """The action to play (an index from 0) and its log-probability (None for Q-policies)."""
        if isinstance(self.spec, PolicyNetworkSpec):
            logp = masked_log_softmax(self.scores(obs), mask)
            probs = np.exp(logp)
            action = int(rng.choice(probs.shape[0], p=probs / probs.sum()))
            return action, float(logp[action])
        if rng.random() < self.epsilon:
            return uniform_action(rng, self.spec.n_actions, mask)
        if self.spec.noisy:
            return self._greedy_noisy(obs, rng, mask), None
        return self.greedy(obs, mask), None

    def act(self, obs: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None) -> int:
        return self.step(obs, rng, mask)[0]


def _argmax(scores: np.ndarray, mask: np.ndarray | None) -> int:
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return int(np.argmax(scores))


def uniform_action(rng: np.random.Generator, n: int, mask: np.ndarray | None) -> tuple[int, float]:
    """A uniformly random allowed action (an index from 0) and its log-probability."""
    allowed = np.flatnonzero(mask) if mask is not None else None
    if allowed is None or allowed.size == 0:
        return int(rng.integers(n)), -math.log(n)
    return int(allowed[rng.integers(allowed.size)]), -math.log(allowed.size)


class RandomPolicy:
    """What a client plays before the campaign's first model is published (version 0)."""

    version = 0
    epsilon = 1.0
    guide_share = guide_epsilon = 0.0
    stochastic = True  # uniform over the allowed actions: its log-probabilities are exact

    def __init__(self, n_actions: int):
        self.n_actions = n_actions

    def step(
        self, obs: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None
    ) -> tuple[int, float | None]:
        return uniform_action(rng, self.n_actions, mask)

    def act(self, obs: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None) -> int:
        return self.step(obs, rng, mask)[0]

    def greedy(self, obs: np.ndarray, mask: np.ndarray | None = None) -> int:
        return self.step(obs, np.random.default_rng(), mask)[0]


def describe(policy: Any) -> str:
    return f"v{policy.version}" if policy.version else "random (no model yet)"
