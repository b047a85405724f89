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


def test_a_checkpoint_replayed_on_fresh_seeds_reports_its_return_and_for_a_boss_its_win_rate():
    """--confirm-episodes' re-play: a CartPole policy that always pushes left falls within a dozen steps
    of every start; an arena policy that stands still wins no fight."""
    from learning import replay_checkpoint

    spec = QNetworkSpec(obs_dim=4, n_actions=2, hidden=(8,), dueling=True)
    params = {name: np.zeros_like(value) for name, value in export_params(build_q_network(spec)).items()}
    params["advantage.bias"][0] = 1.0
    figures = replay_checkpoint(save_model(spec, params, version=1), "CartPole-v1", {}, episodes=5)
    assert figures["episodes"] == 5 and "win_rate" not in figures
    assert 7 <= figures["return"] <= 14, figures

    spec = QNetworkSpec(obs_dim=ENCODED_DIM, n_actions=N_ACTIONS, hidden=(8,), dueling=True)
    params = {name: np.zeros_like(value) for name, value in export_params(build_q_network(spec)).items()}
    params["advantage.bias"][NOOP] = 1.0
    figures = replay_checkpoint(save_model(spec, params, version=1), "soulsai/IudexArena-v0", {"boss_damage": 1.0}, 1)
    assert figures["win_rate"] == 0.0 and figures["return"] < 0
