"""bench/learning.py's per-attack figures for the arena: what a policy did against each of Iudex's attacks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from learning import attack_outcomes  # noqa: E402

from client_app.iudex import ENCODED_DIM, N_ACTIONS, NOOP  # noqa: E402
from client_app.policy import QNetworkSpec, save_model  # noqa: E402
from trainer.networks import build_q_network, export_params  # noqa: E402


def test_an_agent_that_stands_still_never_punishes_and_gets_hit():
    """A Q-network that always prefers doing nothing: Iudex's attacks land and none is punished."""
    spec = QNetworkSpec(obs_dim=ENCODED_DIM, n_actions=N_ACTIONS, hidden=(8,), dueling=True)
    params = {name: np.zeros_like(value) for name, value in export_params(build_q_network(spec)).items()}
    params["advantage.bias"][NOOP] = 1.0
    outcomes = attack_outcomes(save_model(spec, params, version=1), {"boss_damage": 1.0}, fights=2)
    assert outcomes, "Iudex attacked in two fights"
    assert sum(row["seen"] for row in outcomes.values()) >= 5  # full strength: 4-5 hits kill
    assert all(row["punished"] == 0 for row in outcomes.values())
    assert all(0 <= row["avoided"] <= row["seen"] for row in outcomes.values())
    assert sum(row["avoided"] for row in outcomes.values()) < sum(row["seen"] for row in outcomes.values())
