"""Fixtures of the client's tests: a scripted relay on loopback and a model file to serve."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from client_app.policy import QNetworkSpec, save_model
from tests.client_app.scripted_relay import ScriptedRelay


@pytest.fixture
def relay():
    """A scripted relay on a free loopback port; tests change its fields before starting a client."""
    server = ScriptedRelay().start()
    yield server
    server.stop()


def cartpole_model(version: int, *, epsilon: float = 0.05, seed: int = 0) -> bytes:
    """A small CartPole Q-network, as the learner would publish it."""
    spec = QNetworkSpec(obs_dim=4, n_actions=2, hidden=(8,), dueling=True)
    rng = np.random.default_rng(seed)
    params = {
        name: rng.normal(0, 0.5, size=shape).astype(np.float32)
        for name, shape in spec.parameter_shapes().items()
    }
    return save_model(spec, params, version=version, epsilon=epsilon)


@pytest.fixture
def model_v3() -> tuple[str, bytes, str]:
    """(path, bytes, sha256) of a published model version 3."""
    data = cartpole_model(3)
    return "/campaigns/cartpole-demo/models/3.safetensors", data, hashlib.sha256(data).hexdigest()
