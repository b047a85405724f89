"""Policy networks that clients run, in NumPy (volunteers need no PyTorch).

The learner trains the same architecture in PyTorch (``trainer.networks``) with the same parameter
names, and publishes weights as safetensors whose metadata carries the architecture, the model
version and the exploration rate. This module is the single definition of that file format.
"""

from __future__ import annotations

import json
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

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> QNetworkSpec:
        data = json.loads(text)
        if data.get("kind") != "mlp_q":
            raise ValueError(f"unknown network kind {data.get('kind')!r}; this client may be too old")
        return cls(
            obs_dim=int(data["obs_dim"]),
            n_actions=int(data["n_actions"]),
            hidden=tuple(int(h) for h in data["hidden"]),
            dueling=bool(data["dueling"]),
        )

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of every parameter, in the layout of torch.nn.Linear (out, in)."""
        shapes: dict[str, tuple[int, ...]] = {}
        width = self.obs_dim
        for i, h in enumerate(self.hidden):
            shapes[f"layers.{i}.weight"] = (h, width)
            shapes[f"layers.{i}.bias"] = (h,)
            width = h
        if self.dueling:
            shapes["value.weight"], shapes["value.bias"] = (1, width), (1,)
            shapes["advantage.weight"], shapes["advantage.bias"] = (self.n_actions, width), (self.n_actions,)
        else:
            shapes["head.weight"], shapes["head.bias"] = (self.n_actions, width), (self.n_actions,)
        return shapes


def q_values(spec: QNetworkSpec, params: dict[str, np.ndarray], obs: np.ndarray) -> np.ndarray:
    """Q-values for a batch of flat observations, shape (B, obs_dim) -> (B, n_actions)."""
    x = np.asarray(obs, dtype=np.float32)
    for i in range(len(spec.hidden)):
        x = np.maximum(x @ params[f"layers.{i}.weight"].T + params[f"layers.{i}.bias"], 0.0)
    if not spec.dueling:
        return x @ params["head.weight"].T + params["head.bias"]
    value = x @ params["value.weight"].T + params["value.bias"]
    advantage = x @ params["advantage.weight"].T + params["advantage.bias"]
    return value + advantage - advantage.mean(axis=-1, keepdims=True)


def read_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` map of a safetensors file, read from its JSON header."""
    if len(data) < 8:
        raise ValueError("not a safetensors file: too short")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8 or header_len > 100 * 1024 * 1024:
        raise ValueError("not a safetensors file: bad header length")
    header = json.loads(data[8 : 8 + header_len])
    return dict(header.get("__metadata__") or {})


def save_model(spec: QNetworkSpec, params: dict[str, np.ndarray], *, version: int, epsilon: float) -> bytes:
    """Serialise a model as safetensors bytes with its architecture and exploration rate."""
    metadata = {"arch": spec.to_json(), "version": str(int(version)), "epsilon": repr(float(epsilon))}
    return st_save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}, metadata=metadata)


class Policy:
    """An epsilon-greedy Q-network policy loaded from published safetensors bytes."""

    def __init__(self, spec: QNetworkSpec, params: dict[str, np.ndarray], *, version: int, epsilon: float):
        expected = spec.parameter_shapes()
        if set(params) != set(expected):
            raise ValueError(f"model parameters {sorted(params)} do not match the architecture {sorted(expected)}")
        for name, shape in expected.items():
            if tuple(params[name].shape) != shape:
                raise ValueError(f"parameter {name} has shape {params[name].shape}, expected {shape}")
        self.spec = spec
        self.params = params
        self.version = version
        self.epsilon = epsilon

    @classmethod
    def from_bytes(cls, data: bytes) -> Policy:
        metadata = read_metadata(data)
        try:
            spec = QNetworkSpec.from_json(metadata["arch"])
            version = int(metadata["version"])
            epsilon = float(metadata.get("epsilon", "0"))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"model file lacks valid metadata: {exc}") from None
        return cls(spec, st_load(data), version=version, epsilon=epsilon)

    def greedy(self, obs: np.ndarray) -> int:
        return int(np.argmax(q_values(self.spec, self.params, obs.reshape(1, -1))[0]))

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> int:
        if rng.random() < self.epsilon:
            return int(rng.integers(self.spec.n_actions))
        return self.greedy(obs)


class RandomPolicy:
    """What a client plays before the campaign's first model is published (version 0)."""

    version = 0
    epsilon = 1.0

    def __init__(self, n_actions: int):
        self.n_actions = n_actions

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> int:
        return int(rng.integers(self.n_actions))


def describe(policy: Any) -> str:
    return f"v{policy.version}" if policy.version else "random (no model yet)"
